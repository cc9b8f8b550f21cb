"""Human-readable formatting of durations, byte counts and energy."""

from __future__ import annotations

import math
from datetime import timedelta


def finite(value: float | None) -> float | None:
    """``value``, or ``None`` where it is not a finite number (a table shows ``-``, JSON
    ``null``): files are read with ``mistyped=``, which makes such figures absent, but a
    sum of two huge finite ones (a CPU total) can still overflow."""
    if value is None or math.isfinite(value):
        return value
    return None


def friendly_duration(elapsed: float | timedelta) -> str:
    """Short representation of a duration, in LensKit's format (``" 512ms"``, ``"1m3.25s"``)."""
    if isinstance(elapsed, timedelta):
        elapsed = elapsed.total_seconds()
    if elapsed < 1:
        return f"{elapsed * 1000: 0.0f}ms"
    if elapsed > 60 * 60:
        hours, rest = divmod(elapsed, 60 * 60)
        minutes, seconds = divmod(rest, 60)
        return f"{hours:0.0f}h{minutes:0.0f}m{seconds:0.2f}s"
    if elapsed > 60:
        minutes, seconds = divmod(elapsed, 60)
        return f"{minutes:0.0f}m{seconds:0.2f}s"
    return f"{elapsed:0.2f}s"


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

COMPACT_AFTER_S = 10_000 * 3600.0
"""From this duration (10,000 hours) on, :func:`friendly_seconds` writes hours in
scientific notation (``"2.78e+304h"``): a table cell stays a few characters wide."""


def friendly_bytes(count: float | None) -> str:
    """A byte count in binary units (``"512.0 MiB"``); ``"-"`` when unknown.

    The unit is chosen after rounding to the digits shown, so 1048575 bytes
    are ``1.0 MiB``, not ``1024.0 KiB``.  From 1024 PiB on, the count is
    written in bytes in scientific notation (``"1.00e+30 B"``).
    """
    if count is None:
        return "-"
    value = float(count)
    for unit in _BYTE_UNITS:
        text = f"{value:.0f}" if unit == "B" else f"{value:.1f}"
        if abs(float(text)) < 1024:
            return f"{text} {unit}"
        value /= 1024
    return f"{float(count):.2e} B"


def friendly_seconds(seconds: float | None) -> str:
    """A CPU or wall time in seconds, compact; ``"-"`` when unknown.

    LensKit's format (:func:`friendly_duration`), but rounded to the hundredth of
    a second shown before the unit is chosen, and a whole minute or hour is
    written in that unit: 119.999 s is ``2m0.00s``, not ``1m60.00s``; 60 s is
    ``1m0.00s`` and 3599.9999 s ``1h0m0.00s``, where :func:`friendly_duration`
    (whose boundaries are strict) writes ``60.00s`` and ``60m0.00s``.  From
    10,000 hours on, hours in scientific notation (``"1.00e+04h"``).
    """
    if seconds is None:
        return "-"
    if not seconds >= 0.9995:  # milliseconds (NaN too, as LensKit writes it)
        return friendly_duration(seconds).strip()
    seconds = round(seconds, 2)
    if seconds >= COMPACT_AFTER_S:
        return f"{seconds / 3600:.2e}h"
    if seconds >= 60 * 60:
        hours, rest = divmod(seconds, 60 * 60)
        minutes, rest = divmod(rest, 60)
        return f"{hours:0.0f}h{minutes:0.0f}m{rest:0.2f}s"
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes:0.0f}m{rest:0.2f}s"
    return f"{seconds:0.2f}s"


_ENERGY_UNITS = (("J", 1.0), ("kJ", 1e3), ("MJ", 1e6))


def friendly_energy(joules: float | None) -> str:
    """An energy in J, kJ or MJ (``"3.2 kJ"``); ``"-"`` when unknown.

    The unit is chosen after rounding to the digit shown, so 999.96 J is
    ``1.0 kJ``, not ``1000.0 J``.  From 1000 MJ on, joules in scientific
    notation (``"1.00e+12 J"``).
    """
    if joules is None:
        return "-"
    for unit, scale in _ENERGY_UNITS:
        text = f"{joules / scale:.1f}"
        if abs(float(text)) < 1000:
            return f"{text} {unit}"
    return f"{joules:.2e} J"
