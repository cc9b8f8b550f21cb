"""Human-readable formatting of durations, byte counts and energy."""

from __future__ import annotations

from datetime import timedelta


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


def friendly_bytes(count: float | None) -> str:
    """A byte count in binary units (``"512.0 MiB"``); ``"-"`` when unknown."""
    if count is None:
        return "-"
    value = float(count)
    for unit in _BYTE_UNITS:
        if abs(value) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def friendly_seconds(seconds: float | None) -> str:
    """A CPU or wall time in seconds, compact; ``"-"`` when unknown.

    Rounded to the hundredth of a second shown before the unit is chosen, so
    119.999 s is ``2m0.00s``, not ``1m60.00s``.
    """
    if seconds is None:
        return "-"
    if seconds >= 0.9995:
        seconds = round(seconds, 2)
    return friendly_duration(seconds).strip()


def friendly_energy(joules: float | None) -> str:
    """An energy in J, kJ or MJ (``"3.2 kJ"``); ``"-"`` when unknown."""
    if joules is None:
        return "-"
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3)):
        if abs(joules) >= scale:
            return f"{joules / scale:.1f} {unit}"
    return f"{joules:.1f} J"
