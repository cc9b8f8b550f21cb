"""Values of a task file a viewer must not show, found before pydantic converts them.

pydantic's lax mode (LensKit's, and :meth:`Task.model_validate`'s, which must stay as
lax) reads ``"peak_memory": true`` as 1 byte and ``"subprocess": "yes"`` as true, and
its parser reads ``NaN``, ``Infinity`` and ``1e400`` (infinity) as figures.  A file
written by taskmeter or LensKit never holds a value of the wrong JSON type, nor a
negative duration, CPU time or memory, nor a figure that is not a finite number; a
hand-edited or foreign one may, and a viewer must not show such a value as if it had
been measured.  :func:`drop_bad_values` replaces each by what an absent field reads as,
and says where it was.
"""

from __future__ import annotations

import math
import operator
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_NUMBER = "a number"
_WHOLE_NUMBER = "a whole number"
_STRING = "a string"
_BOOLEAN = "true or false"

MEASURED_FIELDS = (
    "duration",
    "cpu_time",
    "cpu_user_time",
    "cpu_system_time",
    "peak_memory",
    "peak_gpu_memory",
)
"""Figures read from clocks and counters that only go forward: never negative in a file
taskmeter or LensKit writes."""


_EXPECTED: dict[str, str] = {
    **dict.fromkeys(
        (
            "start_time",
            "finish_time",
            *MEASURED_FIELDS,
            "system_power",
            "chassis_power",
            "cpu_power",
            "gpu_power",
            "pid",
        ),
        _NUMBER,
    ),
    **dict.fromkeys(("hostname", "machine", "parent_id", "trace_id", "span_id"), _STRING),
    "subprocess": _BOOLEAN,
}
"""The JSON type of each field pydantic would convert from another type, by field name
(``null`` is allowed too, except for ``hostname`` and ``subprocess``).  ``label``,
``task_id``, ``status`` and ``subtasks`` are left to pydantic, which refuses a value of
another type: such a file does not hold a task."""

WHOLE_NUMBER_FIELDS = frozenset(("peak_memory", "peak_gpu_memory", "pid"))
"""Numbers pydantic reads as integers: a finite one with a fraction (``1.5``) is refused
(``2.0`` is read as 2), so it is of the wrong type too; a whole one written with a
fraction or an exponent (``2.0``, ``1e20``) is read as that integer."""

SIGNED_FIELDS = ("start_time", "finish_time", "system_power", "cpu_power", "gpu_power")
"""Figures that must be finite but may be negative: LensKit's energy comes from a
Prometheus query its users write, which can return a negative value."""
LARGEST = sys.float_info.max
"""The largest finite figure (a whole number beyond it cannot be a float)."""

_FINITE = "a finite number"
_NOT_NEGATIVE = "a finite number >= 0"
_RANGES: dict[str, tuple[float, str]] = {
    **dict.fromkeys(MEASURED_FIELDS, (0.0, _NOT_NEGATIVE)),
    **dict.fromkeys((*SIGNED_FIELDS, "chassis_power"), (-LARGEST, _FINITE)),
}
"""The lowest value of each figure, and what the field holds, by field name."""

_NOT_NULL = frozenset(("hostname", "subprocess"))

_ABSENT: dict[str, object] = {"hostname": ""}
"""What a dropped value becomes, where the field's default would be wrong for a record read
from elsewhere (the reader's host name); other fields are removed, and read as absent
(``None``, ``subprocess`` false)."""


@dataclass(frozen=True)
class Mistyped:
    """A value of the wrong JSON type in a task file, or a figure out of its range."""

    path: str
    """Where it is (``subtasks.0.peak_memory``)."""
    label: object
    """The label of the task holding it (as the file has it)."""
    task_id: object
    """The id of that task (as the file has it)."""
    field: str
    """The field's name."""
    value: object
    """The value the file holds."""
    expected: str
    """What the field holds (``a number``, ``a finite number``)."""

    @property
    def out_of_range(self) -> bool:
        """Whether the value is a number out of the field's range (not of the wrong type)."""
        return self.expected in (_FINITE, _NOT_NEGATIVE)


def _has_type(value: object, expected: str) -> bool:
    if expected is _NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is _WHOLE_NUMBER:
        if isinstance(value, float):  # NaN and infinities: left to the range check
            return value.is_integer() or not math.isfinite(value)
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is _STRING:
        return isinstance(value, str)
    return isinstance(value, bool)


def drop_bad_values(document: object) -> list[Mistyped]:
    """Remove from ``document`` (a parsed task file) every value of the wrong JSON type and
    every figure out of its range (see :func:`in_range`), and list them, depth first.

    Each removed value reads as absent (see :data:`_ABSENT`); an ``energy_sources`` entry
    that is not a string is removed, and ``energy_sources`` itself if it is not an object.
    """
    found: list[Mistyped] = []
    pending: list[tuple[object, str]] = [(document, "")]
    seen: set[int] = set()
    while pending:
        task, prefix = pending.pop()
        if not isinstance(task, dict) or id(task) in seen:
            continue  # not a task: pydantic says so
        seen.add(id(task))
        problems = [
            *_drop_mistyped_fields(task),
            *_drop_out_of_range(task),
            *_drop_mistyped_sources(task),
        ]
        found.extend(
            Mistyped(prefix + where, task.get("label"), task.get("task_id"), field, value, expected)
            for where, field, value, expected in problems
        )
        subtasks = task.get("subtasks")
        if isinstance(subtasks, dict):  # LensKit's other form: id -> task
            subtasks = list(subtasks.values())
        if isinstance(subtasks, list):
            pending.extend(
                (sub, f"{prefix}subtasks.{index}.")
                for index, sub in reversed(list(enumerate(subtasks)))
            )
    return found


_Problem = tuple[str, str, object, str]
"""Where a value is in its task, its field, the value, and what the field holds."""


def _drop_mistyped_fields(task: dict[str, Any]) -> list[_Problem]:
    problems: list[_Problem] = []
    for field, expected in _EXPECTED.items():
        if field not in task:
            continue
        value = task[field]
        if value is None and field not in _NOT_NULL:
            continue
        if _has_type(value, expected):
            if field not in WHOLE_NUMBER_FIELDS:
                continue
            if _has_type(value, _WHOLE_NUMBER):
                if isinstance(value, float) and math.isfinite(value):
                    # 1e20 is the number 100000000000000000000, which pydantic reads
                    # as an integer only written so (as a float, up to 2**63).  The
                    # float's shortest text is the number written (1e23, not the
                    # float's 99999999999999991611392) when it has up to 15 significant digits.
                    task[field] = int(Decimal(repr(value)))
                continue
            expected = _WHOLE_NUMBER  # a number with a fraction
        problems.append((field, field, value, expected))
        if field in _ABSENT:
            task[field] = _ABSENT[field]
        else:
            del task[field]
    return problems


def in_range(values: dict[str, Any]) -> bool:
    """Whether a task's field values (validated: ``Task.__dict__``) hold finite figures, not
    negative where they cannot be (``None`` is absent, in range)."""
    for value in _measured(values):
        if value is not None and not 0 <= value <= LARGEST:
            return False
    for value in _signed(values):
        if value is not None and not -LARGEST <= value <= LARGEST:
            return False
    return True


_measured = operator.itemgetter(*MEASURED_FIELDS)
_signed = operator.itemgetter(*SIGNED_FIELDS)


def _drop_out_of_range(task: dict[str, Any]) -> list[_Problem]:
    """Remove the numbers (of the right type) of ``task`` out of their field's range: ``NaN``,
    infinities, whole numbers beyond a float, negative durations, CPU times and memory."""
    problems: list[_Problem] = []
    for field, (lowest, expected) in _RANGES.items():
        value = task.get(field)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue  # absent, null, or of the wrong type (removed already)
        if lowest <= value <= LARGEST:
            continue
        if field == "chassis_power" and "system_power" in task:
            continue  # not read: system_power is
        problems.append((field, field, value, expected))
        del task[field]
    return problems


def _drop_mistyped_sources(task: dict[str, Any]) -> list[_Problem]:
    if "energy_sources" not in task:
        return []
    sources = task["energy_sources"]
    if not isinstance(sources, dict):
        del task["energy_sources"]
        return [("energy_sources", "energy_sources", sources, "an object")]
    wrong = [key for key, value in sources.items() if not isinstance(value, str)]
    return [(f"energy_sources.{key}", "energy_sources", sources.pop(key), _STRING) for key in wrong]


def describe(source: str, found: list[Mistyped]) -> str:
    """One line about ``found`` in the file ``source``: the first value (its task by label
    and id, its field), and how many more there are."""
    from .render import terminal_text

    first = found[0]
    label = first.label if isinstance(first.label, str) else "?"
    if len(label) > 80:
        label = label[:79] + "…"
    task_id = f"id {first.task_id[:36]}" if isinstance(first.task_id, str) else "no id"
    shown = _json_text(first.value)
    path = first.path if len(first.path) <= 200 else "..." + first.path[-197:]
    more = len(found) - 1
    kinds = {item.out_of_range for item in found[1:]}
    what = (
        "out of range"
        if kinds == {True}
        else "of the wrong type"
        if kinds == {False}
        else "of the wrong type or out of range"
    )
    return terminal_text(
        f"{source}: task '{label}' ({task_id}): {path} is {shown}, not "
        f"{first.expected}: shown as absent"
        + (f" (and {more} more value{'s' if more != 1 else ''} {what})" if more else "")
    )


def _json_text(value: object) -> str:
    import json

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
