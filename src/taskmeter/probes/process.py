"""CPU time and peak RSS of this process from one ``getrusage`` per reading.

:class:`~taskmeter.probes.cpu.CpuTimeProbe` and
:class:`~taskmeter.probes.memory.PeakMemoryProbe` each read ``getrusage``;
this probe reads it once for both (and for the high-water mark's fold), so a
task costs three system calls (two ``getrusage`` and the ``clear_refs`` reset)
instead of five or six.  System calls dominate what a task costs: each one
also evicts the interpreter's working set from the caches.  Tasks use this
probe by default where ``getrusage`` exists.
"""

from __future__ import annotations

import resource

from ..figures import Figures
from .base import Probe
from .memory import rss_register
from .peaks import HighWaterSource, PeakTracker

_getrusage = resource.getrusage
_SELF = resource.RUSAGE_SELF


class _ProcessState(PeakTracker):
    """The starting CPU times of one task, and its peak tracker (one object for both)."""

    __slots__ = ("system_s", "user_s")

    def __init__(self, user_s: float, system_s: float) -> None:
        self.folded = None
        self.user_s = user_s
        self.system_s = system_s

    def start(self) -> resource.struct_rusage:
        """Take the starting reading (called under the register's lock, see
        :meth:`PeakRegister.open`) and keep its CPU times."""
        usage = _getrusage(_SELF)
        self.user_s = usage.ru_utime
        self.system_s = usage.ru_stime
        return usage


class ProcessProbe(Probe):
    """User and system CPU time, and peak RSS, of this process during each task.

    The figures are those of :class:`~taskmeter.probes.cpu.CpuTimeProbe` and
    :class:`~taskmeter.probes.memory.PeakMemoryProbe` (see them for what they
    cover), taken with fewer system calls.
    """

    name = "process"

    def __init__(self, source: HighWaterSource | None = None) -> None:
        self.register = rss_register(source)

    def begin(self, *, reset_peak: bool = True) -> _ProcessState:
        state = _ProcessState(0.0, 0.0)
        self.register.open(reset=reset_peak, tracker=state, read_usage=state.start)
        return state

    def read(self, state: _ProcessState, figures: Figures) -> None:
        usage = _getrusage(_SELF)
        user = usage.ru_utime - state.user_s
        system = usage.ru_stime - state.system_s
        figures.cpu_user_s = user if user > 0.0 else 0.0
        figures.cpu_system_s = system if system > 0.0 else 0.0
        figures.peak_memory_bytes = self.register.peak(state, usage)

    def end(self, state: _ProcessState) -> None:
        self.register.close(state)

    def finish(self, state: _ProcessState, figures: Figures) -> None:
        # read() and end() with one lock operation of the register.
        try:
            usage = _getrusage(_SELF)
            user = usage.ru_utime - state.user_s
            system = usage.ru_stime - state.system_s
        except BaseException:
            self.register.close(state)
            raise
        figures.cpu_user_s = user if user > 0.0 else 0.0
        figures.cpu_system_s = system if system > 0.0 else 0.0
        figures.peak_memory_bytes = self.register.finish(state, usage)
