"""CPU time of this process (user and system), from ``getrusage``."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..figures import Figures
from .base import Probe

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]


def _rusage_times() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _os_times() -> tuple[float, float]:  # pragma: no cover - Windows
    times = os.times()
    return times.user, times.system


class CpuTimeProbe(Probe):
    """User and system CPU time consumed by every thread of this process.

    The figure covers the whole process, so work done by other threads while
    a task is open is charged to that task too.  Worker processes are not
    included here; their tasks roll up through ``Task.total_cpu()``.
    """

    name = "cpu"

    def __init__(self, clock: Callable[[], tuple[float, float]] | None = None) -> None:
        if clock is None:
            clock = _rusage_times if resource is not None else _os_times
        self._clock = clock

    def begin(self, *, reset_peak: bool = True) -> tuple[float, float]:
        return self._clock()

    def read(self, state: tuple[float, float], figures: Figures) -> None:
        user, system = self._clock()
        user -= state[0]
        system -= state[1]
        figures.cpu_user_s = user if user > 0.0 else 0.0
        figures.cpu_system_s = system if system > 0.0 else 0.0
