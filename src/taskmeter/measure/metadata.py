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

__all__ = ["Metadata", "Reading", "load_metadata", "parse_metadata"]

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

    The format is chosen by the suffix (``.yaml``/``.yml``: YAML; ``.json``: JSON;
    otherwise JSON, then YAML if the text is not JSON).

    Raises:
        MetadataError: the file cannot be read or holds no metadata mapping;
            the message names the file.
    """
    file = Path(path)
    text = read_text_bounded(file, MAX_METADATA_FILE_BYTES, MetadataError)
    return _metadata_from_text(text, str(file), file.suffix.lower())


def parse_metadata(data: bytes | str, source: str = "metadata") -> Metadata:
    """The task metadata in ``data`` (what a file without a suffix would hold, read
    from standard input for example): JSON, or YAML when the text is not JSON.

    Raises:
        MetadataError: ``data`` is larger than a metadata file may be, not UTF-8,
            empty, or holds no metadata mapping; the message begins with ``source``.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_METADATA_FILE_BYTES:
            raise MetadataError(
                f"{source}: larger than {MAX_METADATA_FILE_BYTES} bytes, more than task "
                "metadata may hold"
            )
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MetadataError(f"{source}: not UTF-8 text ({exc})") from exc
    if not data.strip():
        raise MetadataError(f"{source} is empty: no task metadata")
    return _metadata_from_text(data, source, "")


def _yaml_after_json(text: str, source: str, json_error: json.JSONDecodeError) -> Any:
    """The YAML document ``text``, which is not JSON; if it is not YAML either, the
    error says why it is neither (text meant as JSON gets more than a YAML complaint)."""
    try:
        return parse_yaml(text, source, MetadataError)
    except MetadataError as exc:
        as_yaml = str(exc).removeprefix(f"{source}: ")
        raise MetadataError(f"{source}: not valid JSON ({json_error}), and {as_yaml}") from exc


def _metadata_from_text(text: str, source: str, suffix: str) -> Metadata:
    """The metadata in ``text``, parsed as ``suffix`` (``.json``, ``.yaml``, ``.yml``,
    or anything else: JSON, then YAML) says; errors begin with ``source``."""
    data: Any
    try:
        if suffix in (".yaml", ".yml"):
            data = parse_yaml(text, source, MetadataError)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                if suffix == ".json":
                    raise MetadataError(f"{source}: not valid JSON: {exc}") from exc
                data = _yaml_after_json(text, source, exc)
    except RecursionError as exc:
        raise MetadataError(f"{source}: nested too deeply to be task metadata") from exc
    if not isinstance(data, Mapping):
        raise MetadataError(
            f"{source}: expected a mapping of metadata keys, found {type(data).__name__}"
        )
    try:
        return Metadata(data)
    except TypeError as exc:
        raise MetadataError(f"{source}: {exc}") from exc
