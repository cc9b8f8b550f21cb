"""The resource readings lsst.utils' timers take, in lsst's units and order."""

from __future__ import annotations

import os
import platform
import resource  # POSIX only, as taskmeter is
import sys
import time

from .attributes import TIMER_KEY_SUFFIXES

__all__ = [
    "PROCESS_RSS_PEAK",
    "USAGE_SUFFIXES",
    "LifetimePeak",
    "maxrss_unit_bytes",
    "node_name",
    "peak_rss_bytes",
    "read_usage",
]

USAGE_SUFFIXES = TIMER_KEY_SUFFIXES[1:]
"""Key suffixes of :func:`read_usage`'s values, in lsst.utils' order (``Utc`` comes first)."""


def maxrss_unit_bytes(system: str = sys.platform) -> int:
    """Bytes per unit of ``ru_maxrss`` on ``system`` (a ``sys.platform`` or ``platform.system()``).

    Bytes on macOS, pages on Solaris and SunOS, KiB elsewhere (Linux, the
    BSDs), as lsst.utils and lsst.verify assume.
    """
    lowered = system.lower()
    if lowered.startswith("darwin"):
        return 1
    if "solaris" in lowered or "sunos" in lowered:
        return os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    return 1024


_MAXRSS_UNIT = maxrss_unit_bytes(platform.system())
_NODE = platform.node()


def node_name() -> str:
    """``platform.node()``, looked up once (lsst's ``nodeName``)."""
    return _NODE


class LifetimePeak:
    """The peak of a resettable high-water mark over the whole life of the process.

    Each task resets the kernel's RSS high-water mark, which also lowers
    ``getrusage``'s ``ru_maxrss``; the register that resets it folds the mark
    into :attr:`peak_bytes` first (under its lock), so ``max(ru_maxrss, peak_bytes)`` is
    the process's peak since it started.  ``None`` until the first reset; a
    forked child starts again at ``None``: its own ``ru_maxrss`` (its resident
    set at the fork, the parent's peak not included) is where its life starts.
    """

    __slots__ = ("peak_bytes",)

    def __init__(self) -> None:
        self.peak_bytes: int | None = None

    def fold(self, usage: resource.struct_rusage) -> None:
        """Fold ``usage.ru_maxrss`` (a reading taken just before a reset) in."""
        value = usage.ru_maxrss * _MAXRSS_UNIT
        peak = self.peak_bytes
        if peak is None or value > peak:
            self.peak_bytes = value

    def forget(self) -> None:
        """Start again with nothing folded in (in a forked child)."""
        self.peak_bytes = None


PROCESS_RSS_PEAK = LifetimePeak()
"""This process's RSS peak over the resets of its kernel high-water mark."""


def peak_rss_bytes(usage: resource.struct_rusage) -> int:
    """The process's peak RSS since it started, in bytes, from a ``getrusage`` just taken.

    ``ru_maxrss``, unless a reset of the kernel's mark lowered it below a peak
    folded in before the reset.  The reading must come first: a reset after
    it leaves ``usage`` at the level before the reset; one before it has
    folded that level into :data:`PROCESS_RSS_PEAK` already.
    """
    own = usage.ru_maxrss * _MAXRSS_UNIT
    folded = PROCESS_RSS_PEAK.peak_bytes
    if folded is not None and folded > own:
        return folded
    return own


def read_usage() -> tuple[float, float, float, int, int, int, int, int, int, int]:
    """This process's usage now, one value per :data:`USAGE_SUFFIXES` entry.

    ``CpuTime`` is :func:`time.process_time` and ``MaxResidentSetSize`` is in
    bytes, as lsst.utils writes them (metadata version 1): the process's peak
    since it started, resets of the kernel's mark by taskmeter's tasks
    notwithstanding (:func:`peak_rss_bytes`).
    """
    cpu = time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (
        cpu,
        usage.ru_utime,
        usage.ru_stime,
        peak_rss_bytes(usage),
        usage.ru_minflt,
        usage.ru_majflt,
        usage.ru_inblock,
        usage.ru_oublock,
        usage.ru_nvcsw,
        usage.ru_nivcsw,
    )
