"""Task metadata in every form LSST code produces, seen as one flat mapping.

lsst.verify searches a task's *full* metadata (``Task.getFullMetadata()``),
whose keys are ``<task path>.<item>`` with the task path's levels joined by
colons (``apPipe:ccdProcessor.runDataRefStartCpuTime``), for keys that
*contain* a fragment such as ``ccdProcessor.runDataRef`` + ``StartCpuTime``.
:class:`Metadata` gives that view of:

* a flat mapping (``{"isr.runStartCpuTime": [...]}``) or a nested one
  (``{"isr": {"runStartCpuTime": [...]}}``), values scalars or lists;
* an LSST ``TaskMetadata`` or ``PropertySet`` (anything with
  ``paramNames(topLevelOnly=False)`` and ``getArray``);
* the JSON or YAML form of a ``TaskMetadata`` (``{"scalars": ..., "arrays":
  ..., "metadata": ...}``), as LSST pipelines write it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import parse_yaml, read_text_bounded
from .errors import MetadataError, MetricComputationError

__all__ = ["Metadata", "Reading", "load_metadata"]

_TASK_METADATA_FIELDS = frozenset({"scalars", "arrays", "metadata"})
MAX_METADATA_FILE_BYTES = 256 * 1024 * 1024
"""Largest metadata file :func:`load_metadata` reads."""
MAX_METADATA_DEPTH = 1000
"""Deepest nesting of metadata mappings accepted (deeper is a mistake, or a cycle)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """The value found for one key: the last one recorded, and how many there were."""

    key: str
    """Where the value came from (a metadata key or a span attribute)."""
    value: object
    """The last value recorded under the key (lsst's ``getScalar``)."""
    count: int = 1
    """How many values the key holds (calls recorded)."""


def _is_task_metadata_form(value: Mapping[Any, Any]) -> bool:
    return (
        len(value) == 3
        and _TASK_METADATA_FIELDS.issuperset(value)
        and all(isinstance(value[name], Mapping) for name in _TASK_METADATA_FIELDS)
    )


def _is_property_set_like(value: object) -> bool:
    return callable(getattr(value, "paramNames", None)) and callable(
        getattr(value, "getArray", None)
    )


def _children(value: Any) -> Iterator[tuple[str, Any, bool]]:
    """The items of one level of metadata: ``(key, value, is_nested)``, in order."""
    if isinstance(value, Mapping):
        sections = (
            [value[name] for name in ("scalars", "arrays", "metadata")]
            if _is_task_metadata_form(value)
            else [value]
        )
        for section in sections:
            for key, child in section.items():
                if not isinstance(key, str):
                    raise TypeError(f"metadata keys must be strings, not {type(key).__name__}")
                yield key, child, isinstance(child, Mapping) or _is_property_set_like(child)
    elif _is_property_set_like(value):
        for name in value.paramNames(topLevelOnly=False):
            yield str(name), list(value.getArray(name)), False
    else:
        raise TypeError(
            "metadata must be a mapping, an LSST TaskMetadata or PropertySet, "
            f"not {type(value).__name__}"
        )


def _flatten_into(flat: dict[str, Any], prefix: str, value: Any) -> None:
    # Depth first and in order, as a recursion would be, but with a stack of
    # its own: hostile nesting (or a mapping that contains itself) gets a
    # clear error instead of the interpreter's recursion limit.
    stack: list[tuple[str, Iterator[tuple[str, Any, bool]]]] = [(prefix, _children(value))]
    while stack:
        path, items = stack[-1]
        for key, child, nested in items:
            if not nested:
                flat[path + key] = child
                continue
            if len(stack) >= MAX_METADATA_DEPTH:
                raise TypeError(
                    f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels "
                    "(does it contain itself?)"
                )
            stack.append((f"{path}{key}.", _children(child)))
            break
        else:
            stack.pop()


class Metadata:
    """A read-only, flat view of task metadata, searched as lsst.verify does."""

    __slots__ = ("_flat",)

    def __init__(self, source: object) -> None:
        if isinstance(source, Metadata):
            self._flat: dict[str, Any] = source._flat
            return
        flat: dict[str, Any] = {}
        _flatten_into(flat, "", source)
        self._flat = flat

    @classmethod
    def of(cls, source: object) -> Metadata:
        """``source`` itself if it is a :class:`Metadata`, else a view of it."""
        return source if isinstance(source, Metadata) else cls(source)

    def keys(self) -> Iterable[str]:
        """Every full key (``task:path.item``)."""
        return self._flat.keys()

    def __len__(self) -> int:
        return len(self._flat)

    def __contains__(self, key: object) -> bool:
        return key in self._flat

    def get(self, key: str) -> Any:
        """The raw value under ``key`` (a scalar or a list), or ``None``."""
        return self._flat.get(key)

    def find(self, fragment: str) -> Reading | None:
        """The one key containing ``fragment``, with its last value; ``None`` if none does.

        Raises:
            MetricComputationError: several keys contain ``fragment``, or the
                key holds an empty list.
        """
        matches = [key for key in self._flat if fragment in key]
        if not matches:
            return None
        if len(matches) > 1:
            raise MetricComputationError(
                f"{fragment!r} matches several metadata keys: {', '.join(sorted(matches))}"
            )
        return self.read(matches[0])

    def read(self, key: str) -> Reading | None:
        """The value under exactly ``key`` (its last one, if a list); ``None`` if absent.

        Raises:
            MetricComputationError: the key holds an empty list.
        """
        if key not in self._flat:
            return None
        value = self._flat[key]
        if isinstance(value, list | tuple):
            if not value:
                raise MetricComputationError(f"metadata key {key!r} holds an empty list")
            return Reading(key, value[-1], len(value))
        return Reading(key, value, 1)


def load_metadata(path: str | os.PathLike[str]) -> Metadata:
    """Read task metadata from a JSON or YAML file (a ``TaskMetadata`` as LSST writes it,
    or a flat or nested mapping).

    The format is chosen by the suffix (``.yaml``/``.yml``: YAML; otherwise
    JSON, then YAML if the text is not JSON).

    Raises:
        MetadataError: the file cannot be read or holds no metadata mapping;
            the message names the file.
    """
    file = Path(path)
    text = read_text_bounded(file, MAX_METADATA_FILE_BYTES, MetadataError)
    data: Any
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            data = parse_yaml(text, file, MetadataError)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                if file.suffix.lower() == ".json":
                    raise MetadataError(f"{file}: not valid JSON: {exc}") from exc
                data = parse_yaml(text, file, MetadataError)
    except RecursionError as exc:
        raise MetadataError(f"{file}: nested too deeply to be task metadata") from exc
    if not isinstance(data, Mapping):
        raise MetadataError(
            f"{file}: expected a mapping of metadata keys, found {type(data).__name__}"
        )
    try:
        return Metadata(data)
    except TypeError as exc:
        raise MetadataError(f"{file}: {exc}") from exc
