"""The resource readings lsst.utils' timers take, in lsst's units and order."""

from __future__ import annotations

import os
import platform
import resource  # POSIX only, as taskmeter is
import sys
import time

from .attributes import TIMER_KEY_SUFFIXES

__all__ = ["USAGE_SUFFIXES", "maxrss_unit_bytes", "node_name", "read_usage"]

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


def read_usage() -> tuple[float, float, float, int, int, int, int, int, int, int]:
    """This process's usage now, one value per :data:`USAGE_SUFFIXES` entry.

    ``CpuTime`` is :func:`time.process_time` and ``MaxResidentSetSize`` is in
    bytes, as lsst.utils writes them (metadata version 1).
    """
    cpu = time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (
        cpu,
        usage.ru_utime,
        usage.ru_stime,
        usage.ru_maxrss * _MAXRSS_UNIT,
        usage.ru_minflt,
        usage.ru_majflt,
        usage.ru_inblock,
        usage.ru_oublock,
        usage.ru_nvcsw,
        usage.ru_nivcsw,
    )
