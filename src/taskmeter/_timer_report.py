"""How :func:`taskmeter.time_this` reports a block: lsst.utils' message, memory
figures in the unit asked for, and structlog loggers as lsst.utils treats them."""

from __future__ import annotations

import logging
import math
import resource
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from ._log import logger as _taskmeter_logger
from ._log import swallowed
from ._rusage import maxrss_unit_bytes, peak_rss_bytes

__all__ = ["MemoryReadings", "enabled_for", "is_structlog", "memory_now", "memory_unit", "report"]

MemoryReadings = tuple[tuple[int, int], tuple[int, int]]
"""(current RSS of this process, of its children), (peak RSS of this process, of children)."""

_MEMORY_UNITS: dict[str, float] = {
    "B": 1,
    "byte": 1,
    "kB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
    "TB": 1000**4,
    "TiB": 1024**4,
    # astropy's names, which str() of the units lsst users pass gives (u.MiB: "Mibyte")
    "kbyte": 1000,
    "Kibyte": 1024,
    "Mbyte": 1000**2,
    "Mibyte": 1024**2,
    "Gbyte": 1000**3,
    "Gibyte": 1024**3,
    "Tbyte": 1000**4,
    "Tibyte": 1024**4,
}
_MAXRSS_UNIT = maxrss_unit_bytes()


def memory_unit(mem_unit: object) -> tuple[str, float]:
    """(the unit's name in the message, bytes per unit) for ``mem_unit``.

    A unit name (``B``, ``byte``, ``KiB``, ``MB``, ...) or anything with
    astropy's ``to("byte")`` that converts to bytes (any astropy unit of
    information: ``u.MiB``, ``u.kbyte``, ``u.bit``), named as astropy names
    it, as lsst.utils prints it.  Anything else: a warning, and bytes, as
    lsst.utils does.
    """
    if isinstance(mem_unit, str):
        scale = _MEMORY_UNITS.get(mem_unit)
        if scale is not None:
            return mem_unit, scale
    else:
        to = getattr(mem_unit, "to", None)
        if callable(to):
            try:
                scale = float(to("byte"))
            except Exception:  # astropy's UnitConversionError, or not a unit at all
                scale = math.nan
            if math.isfinite(scale) and scale > 0:
                return str(mem_unit), scale
    _taskmeter_logger.warning("Invalid memory unit '%s', using 'byte' instead", mem_unit)
    return "byte", 1


def memory_now() -> MemoryReadings:
    """The RSS now and the peak RSS, of this process and of its children (lsst.utils'
    ``get_current_mem_usage`` and ``get_peak_mem_usage``).  The own peak is the
    process's since it started, resets of the kernel's mark by taskmeter's tasks
    notwithstanding."""
    process = psutil.Process()
    with process.oneshot():
        current = process.memory_info().rss
        children = 0
        for child in process.children():
            try:
                children += child.memory_info().rss
            except psutil.Error:
                continue
    own = peak_rss_bytes(resource.getrusage(resource.RUSAGE_SELF))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _MAXRSS_UNIT
    return (current, children), (own, kids)


# ---------------------------------------------------------------- structlog

_get_structlog_context: Callable[[Any], object] | None = None
_structlog_looked_up = False


def is_structlog(log: object) -> bool:
    """Whether ``log`` is a structlog logger (structlog is imported only to tell)."""
    global _get_structlog_context, _structlog_looked_up
    if isinstance(log, logging.Logger | logging.LoggerAdapter):
        return False
    if not _structlog_looked_up:
        try:
            import structlog
        except ImportError:
            pass
        else:
            _get_structlog_context = structlog.get_context
        _structlog_looked_up = True
    if _get_structlog_context is None:
        return False
    try:
        _get_structlog_context(log)  # raises for anything but a structlog logger
    except Exception:
        return False
    return True


def enabled_for(log: Any, level: int) -> bool:
    """Whether ``log`` would emit at ``level`` (a stdlib or a structlog logger)."""
    check = getattr(log, "isEnabledFor", None) or getattr(log, "is_enabled_for", None)
    return True if check is None else bool(check(level))


# ---------------------------------------------------------------- the message


def _exception_text(error: BaseException) -> str:
    """lsst.utils' ``repr(error) @ file:line``, at the line that raised."""
    frames = list(traceback.walk_tb(error.__traceback__))
    if not frames:
        return repr(error)
    frame, line = frames[-1]
    return f"{error!r} @ {frame.f_code.co_filename}:{line}"


def report(
    log: Any,
    structured: bool,
    level: int,
    msg: str | None,
    args: Iterable[Any],
    kwargs: dict[str, Any] | None,
    result: Any,
    error: BaseException | None,
    memory_start: MemoryReadings | None,
    mem_child: bool,
    mem_fmt: str,
    unit: tuple[str, float],
) -> None:
    """Log lsst.utils' ``"<msg>: Took <s> seconds"`` line for a block, filling in
    ``result``'s memory figures; with a structlog logger the figures and
    ``kwargs`` go as key-value pairs, as lsst.utils passes them."""
    text = msg or ""
    params: list[Any] = list(args)
    text += "%sTook %.4f seconds"
    params += [": " if msg else "", result.duration]
    fields: dict[str, Any] = {"duration": result.duration}
    if error is not None:
        text += "%s"
        params.append(f" (timed code triggered exception of {_exception_text(error)!r})")
    if memory_start is not None:
        try:
            (current_end, children_end), (peak_end, peak_children_end) = memory_now()
            (current_start, children_start), (peak_start, peak_children_start) = memory_start
            current = current_end + (children_end if mem_child else 0)
            current_delta = current_end - current_start
            peak_delta = peak_end - peak_start
            if mem_child:
                current_delta += children_end - children_start
                peak_delta += peak_children_end - peak_children_start
            unit_name, unit_bytes = unit
            result.mem_current_usage = current / unit_bytes
            result.mem_current_delta = current_delta / unit_bytes
            result.mem_peak_delta = peak_delta / unit_bytes
            text += (
                f"; current memory usage: {result.mem_current_usage:{mem_fmt}} {unit_name}"
                f", delta: {result.mem_current_delta:{mem_fmt}} {unit_name}"
                f", peak delta: {result.mem_peak_delta:{mem_fmt}} {unit_name}"
            )
            fields["mem_current_usage"] = result.mem_current_usage
            fields["mem_current_delta"] = result.mem_current_delta
            fields["mem_peak_delta"] = result.mem_peak_delta
        except Exception as exc:
            swallowed("timer.memory", exc)
    if structured:
        if kwargs:
            fields.update(kwargs)
    else:
        # 4: past report, time_this and contextlib's __exit__, to the block.
        fields = {"stacklevel": 4}
        if kwargs is not None:
            text += " %s"
            params.append("; ".join(f"{k}={v!r}" for k, v in kwargs.items()))
    try:
        log.log(level, text, *params, **fields)
    except Exception as exc:
        swallowed("timer.log", exc)
