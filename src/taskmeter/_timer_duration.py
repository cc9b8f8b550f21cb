"""How long a timed method took, read back from the keys :func:`taskmeter.time_method` wrote.

lsst.utils' ``duration_from_timeMethod``, with the same arguments and
results, and errors that name the key at fault.  It needs neither the
OpenTelemetry SDK nor the timers themselves: it only parses metadata.
"""

from __future__ import annotations

import datetime
import math
import numbers
from typing import Any

__all__ = ["CLOCKS", "duration_from_time_method"]

CLOCKS = ("Cpu", "User", "System", "Utc")
"""The clocks a duration can be read from, as lsst.utils spells them."""

_CLOCK_BY_NAME = {clock.lower(): clock for clock in CLOCKS}


def duration_from_time_method(metadata: Any, method_name: str, clock: str = "Cpu") -> float | None:
    """Seconds between the last start and end of ``method_name`` in ``metadata``, on ``clock``.

    lsst.utils' ``duration_from_timeMethod`` (also importable under that
    name): ``clock`` is ``"Cpu"`` (the default), ``"User"`` or ``"System"``,
    read from ``<method_name>Start<Clock>Time`` and
    ``<method_name>End<Clock>Time``, or ``"Utc"``, the wall-clock time
    between the ISO 8601 timestamps ``<method_name>StartUtc`` and
    ``<method_name>EndUtc``.  A list value (keys of repeated calls) counts
    by its last element, so the last call is measured.  ``metadata`` is what
    :func:`~taskmeter.time_method`, :func:`~taskmeter.log_info` or
    lsst.utils wrote into: a mapping, a ``TaskMetadata`` (``method_name`` may
    then be a dotted path, ``"isr.run"``) or a ``PropertySet``; ``None``
    gives ``None``.

    Raises ``KeyError`` (its argument the key, as lsst.utils raises it) when
    a key is missing, ``ValueError`` for a clock not in :data:`CLOCKS`
    (matched ignoring case, where lsst.utils ignores case only for ``Utc``),
    an empty list, a timestamp that is not ISO 8601 or two numbers whose
    difference is not finite (an infinity, NaN, or past a float's range), and ``TypeError`` for
    values that are neither two numbers nor two timestamps.
    """
    if metadata is None:
        return None
    if not isinstance(method_name, str) or not method_name:
        raise TypeError(
            f"method_name must be a method's name (a non-empty str), not {method_name!r}"
        )
    if not isinstance(clock, str) or clock.lower() not in _CLOCK_BY_NAME:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    if not callable(getattr(metadata, "__getitem__", None)):
        raise TypeError(
            "metadata must be a mapping, a TaskMetadata or a PropertySet, "
            f"not {type(metadata).__name__}"
        )
    name = _CLOCK_BY_NAME[clock.lower()]
    suffix = "Utc" if name == "Utc" else f"{name}Time"
    start_key = f"{method_name}Start{suffix}"
    end_key = f"{method_name}End{suffix}"
    start = _last(metadata, start_key)
    end = _last(metadata, end_key)
    if isinstance(start, str) and isinstance(end, str):
        return _seconds_between(start_key, start, end_key, end)
    if _is_number(start) and _is_number(end):
        return _difference(start_key, start, end_key, end)
    raise TypeError(
        f"{start_key}={start!r} and {end_key}={end!r}: a duration needs two numbers "
        "(seconds) or two ISO 8601 timestamps"
    )


def _last(metadata: Any, key: str) -> Any:
    """``metadata[key]``, the last element if it is a list (a TaskMetadata gives that
    already); a missing key is ``KeyError(key)``, whatever the metadata raised."""
    try:
        value = metadata[key]
    except KeyError:
        raise KeyError(key) from None
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError(f"{key} is an empty list: no call of the method was recorded")
        return value[-1]
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _difference(start_key: str, start: Any, end_key: str, end: Any) -> float:
    """``end - start`` as a float; ``ValueError`` naming the keys unless it is finite."""
    try:
        seconds = float(end - start)
    except OverflowError:  # integers past a float's range
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(
            f"{end_key} - {start_key} is not a finite number ({_show(end)} - {_show(start)})"
        )
    return seconds


def _show(number: Any, limit: int = 40) -> str:
    """``repr(number)`` shortened; an int too long to print is said to be one."""
    try:
        text = repr(number)
    except ValueError:  # past sys.get_int_max_str_digits()
        return "an int too long to print"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _seconds_between(start_key: str, start: str, end_key: str, end: str) -> float:
    start_time = _timestamp(start_key, start)
    end_time = _timestamp(end_key, end)
    try:
        return (end_time - start_time).total_seconds()
    except TypeError:
        # One has a UTC offset and the other has none: they are not comparable.
        raise TypeError(
            f"{start_key}={start!r} and {end_key}={end!r}: one timestamp has a UTC "
            "offset and the other has none"
        ) from None


def _timestamp(key: str, text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not an ISO 8601 timestamp") from None
