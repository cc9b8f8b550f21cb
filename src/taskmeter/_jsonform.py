"""Extra fields that JSON cannot hold, written in the JSON form that loses least.

A task's extra fields are whatever the program gave it
(``Task("fold", n_items=np.int64(10))``).  pydantic writes JSON's own types and
the standard library's (dates, UUIDs, sets as arrays); for any other value it
calls :class:`ExtrasWriter` (its ``fallback``), and a value it cannot write at
all (bytes that are not UTF-8, a list that holds itself) is replaced by its
:func:`json_form` while the task's other fields are written as usual.  The task
in memory keeps its values; each field written so is named once in a warning, and so
is each extra field holding a float that is not finite (which JSON writes ``null``).
Text that is not valid Unicode (lone surrogates) in any field is written with those
bytes as ``\\xNN`` (see :mod:`taskmeter._text`), without a warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, SchemaSerializer, core_schema

from ._log import warn_once
from ._text import valid_values

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .task import Task

_MAX_DEPTH = 32
"""Containers nested deeper than this are written as their ``repr``."""
_ANY = SchemaSerializer(core_schema.any_schema())
"""Writes a value as pydantic writes an extra field."""
_CONVERSIONS = ("tolist", "item")
"""Methods giving plain Python values: an array's (NumPy, PyTorch) ``tolist``, a
scalar's ``item``."""


def json_form(value: object, depth: int = 0) -> Any:
    """A value of JSON's types (``dict`` with ``str`` keys, ``list``, ``str``, ``int``,
    ``float``, ``bool``, ``None``) standing for ``value``, losing as little as possible.

    An array (NumPy's, or anything with ``tolist()``) is its ``tolist()``, a scalar
    (with ``item()``) its ``item()``; bytes their UTF-8 text, or their ``repr`` if they
    are not UTF-8; a set a sorted list (in its own order where its items do not sort);
    a mapping, list or tuple is converted item by item; anything else is its ``repr``.
    Never raises.
    """
    if value is None or isinstance(value, str | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return _repr(value)
    try:
        return _converted(value, depth + 1)
    except Exception:  # a conversion or container that fails: its repr still says something
        return _repr(value)


def _converted(value: object, depth: int) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    if isinstance(value, set | frozenset):
        items = [json_form(item, depth) for item in value]
        try:
            return sorted(items)
        except TypeError:  # items of kinds that do not compare
            return items
    if isinstance(value, Mapping):
        return {_key(key): json_form(item, depth) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_form(item, depth) for item in value]
    for name in _CONVERSIONS:
        convert = getattr(value, name, None)
        if callable(convert):
            try:
                plain = convert()
            except Exception:  # item() of an array of several values, say
                continue
            if plain is not value:
                return json_form(plain, depth)
    return _repr(value)


def _key(key: object) -> str:
    return key if isinstance(key, str) else _repr(key)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type_name(value)} object>"


def type_name(value: object) -> str:
    """``numpy.int64``; ``bytes`` for a built-in type."""
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _writable(value: object, fallback: ExtrasWriter | None) -> bool:
    """Whether pydantic writes ``value`` to JSON (with ``fallback`` for unknown types), its
    text made valid Unicode (see :func:`taskmeter._text.valid_values`)."""
    try:
        _ANY.to_json(valid_values(value), fallback=fallback)
    except (PydanticSerializationError, RecursionError, ValueError):
        return False
    return True


class ExtrasWriter:
    """Writes the extra fields of one task tree's JSON, and warns about those it converts.

    Given as pydantic's ``fallback`` (called for each value of a type pydantic does not
    know), and writing a task's own fields (:meth:`task_json`) with its unwritable
    extra fields replaced.  :meth:`warn` then names each converted field once.
    """

    __slots__ = ("replaced", "used")

    def __init__(self) -> None:
        self.used = False
        """Whether pydantic called the fallback."""
        self.replaced: dict[str, str] = {}
        """The type of each extra field replaced whole, by name."""

    def __call__(self, value: object) -> Any:
        self.used = True
        return valid_values(json_form(value))

    def task_json(self, task: Task, exclude: set[str] | None = None) -> bytes:
        """The JSON of ``task`` without the fields in ``exclude``, an extra field that
        pydantic cannot write replaced by its :func:`json_form`.

        Raises pydantic's ``PydanticSerializationError`` for a problem elsewhere.
        """
        serializer = task.__pydantic_serializer__
        try:
            return serializer.to_json(task, exclude=exclude, fallback=self)
        except PydanticSerializationError:
            escaped = self._text_escaped_json(task, exclude)
            if escaped is not None:
                return escaped
            extra = task.__pydantic_extra__
            unwritable = {
                name: value
                for name, value in list((extra or {}).items())
                if not _writable(value, self)
            }
            if not unwritable:
                raise
        own_exclude = (exclude or set()) | set(unwritable)
        own = self._text_escaped_json(task, own_exclude)
        if own is None:
            own = serializer.to_json(task, exclude=own_exclude, fallback=self)
        for name, value in unwritable.items():
            self.replaced.setdefault(name, type_name(value))
        forms = _ANY.to_json(
            valid_values({name: json_form(value) for name, value in unwritable.items()})
        )
        return own[:-1] + (b"," if own != b"{}" else b"") + forms[1:]

    def _text_escaped_json(self, task: Task, exclude: set[str] | None) -> bytes | None:
        """The JSON of ``task`` without the fields in ``exclude``, its text made valid
        Unicode (lone surrogates, from bytes that are not UTF-8, as ``\\xNN``: see
        :func:`taskmeter._text.valid_text`); ``None`` if a value cannot be written so."""
        try:
            fields = task.__pydantic_serializer__.to_python(task, exclude=exclude, fallback=self)
            return _ANY.to_json(valid_values(fields), fallback=self)
        except (PydanticSerializationError, RecursionError, ValueError):
            return None

    def tree_json(self, task: Task) -> bytes:
        """The JSON of ``task`` with its subtasks, each task's unwritable extra fields
        replaced (see :meth:`task_json`).

        Raises :class:`taskmeter._deeptree.CycleError` if a task is below itself.
        """
        try:
            return task.__pydantic_serializer__.to_json(task, fallback=self)
        except PydanticSerializationError:
            from ._deeptree import deep_tree_json

            return deep_tree_json(task, self.task_json).encode()

    def warn(self, root: Task) -> None:
        """Warn, once per field name, about each extra field of ``root``'s tree that was
        written in a JSON form rather than as it is: a value JSON cannot hold, or one
        holding a float that is not finite (``inf``, ``-inf``, ``nan``: written ``null``)."""
        converted = dict(self.replaced)
        non_finite: dict[str, float] = {}
        for extra in _extras(root):
            for name, value in list(extra.items()):
                if name in converted or name in non_finite:
                    continue
                if self.used and not _writable(value, None):
                    converted[name] = type_name(value)
                    continue
                number = _non_finite(value)
                if number is not None:
                    non_finite[name] = number
        for name, kind in converted.items():
            warn_once(
                f"taskfile.extra.{name}",
                "extra field %r of a task holds a %s, which JSON cannot hold: task files "
                "hold a JSON form of it (its value, a list, or its repr); the task keeps "
                "the value itself",
                name,
                kind,
            )
        for name, number in non_finite.items():
            warn_once(
                f"taskfile.extra.{name}",
                "extra field %r of a task holds a float JSON cannot hold (%r): task files "
                "hold null in its place; the task keeps the value itself",
                name,
                number,
            )


def _non_finite(value: object, depth: int = 0) -> float | None:
    """The first float in ``value`` (itself, or in its lists, tuples, sets and mapping
    values) that is not finite (``inf``, ``-inf``, ``nan``); ``None`` if there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, str | int) or value is None or depth >= _MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        items: Iterable[object] = list(value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        return None
    for item in items:
        number = _non_finite(item, depth + 1)
        if number is not None:
            return number
    return None


def _extras(root: Task) -> Iterator[dict[str, Any]]:
    """The extra fields of each task of ``root``'s tree that has some, each task once.

    Runs on every write of a task file: a tree of 100,000 tasks, most of them leaves
    without extra fields, is walked in a few milliseconds (only tasks with subtasks are
    remembered, to visit each once).
    """
    expanded: set[int] = set()
    pending = [root]
    pop = pending.pop
    extend = pending.extend
    while pending:
        task = pop()
        extra = task.__pydantic_extra__
        subtasks = task.__dict__["subtasks"]
        if subtasks:
            if id(task) in expanded:
                continue
            expanded.add(id(task))
            extend(subtasks)
        if extra:
            yield extra
