"""The one interface between a task and the sources of its figures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, TypeVar

from .._log import debug_once, swallowed
from ..figures import Figures
from .peaks import PeakTracker

ProbeStates = tuple[tuple["Probe", Any], ...]
"""Probes that have begun, each with the state its :meth:`Probe.begin` returned."""


class Probe(ABC):
    """A source of resource figures (CPU time, peak memory, energy, ...).

    A task calls :meth:`begin` when it starts, :meth:`read` whenever it wants
    its figures so far (on refresh and at the end), and :meth:`end` once when
    it finishes.  ``begin`` returns the probe's per-task state, which the task
    hands back on the other calls.  Probes must be cheap on these paths; any
    slow work (sampling a GPU, querying a server) belongs in :meth:`sample`,
    which the monitor calls from its own thread every :attr:`sample_interval`
    seconds while a task is open.

    A probe that cannot take a figure leaves it ``None``.  Exceptions raised by
    a probe are caught by the task, counted and logged once; they never reach
    the application.
    """

    name: ClassVar[str]
    """Short name, used in logs and in ``taskmeter.energy.*.source``."""

    sample_interval: float | None = None
    """Seconds between :meth:`sample` calls, or ``None`` if the probe needs none."""

    @abstractmethod
    def begin(self, *, reset_peak: bool = True) -> Any:
        """Take the starting reading of a task and return the state to keep.

        ``reset_peak`` asks probes that track a high-water mark to start a new
        one for this task (see :class:`taskmeter.probes.peaks.PeakRegister`).
        """

    @abstractmethod
    def read(self, state: Any, figures: Figures) -> None:
        """Write the figures of the interval since :meth:`begin` into ``figures``."""

    def end(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Release the per-task state; called once, after the last :meth:`read`."""

    def finish(self, state: Any, figures: Figures) -> None:
        """The last :meth:`read` and the :meth:`end`, in one call (when a task finishes).

        A probe may override it to do both at once (:class:`~taskmeter.probes.ProcessProbe`
        takes its register's lock once for both); it must release the state
        even when the reading fails.  :func:`finish_probes` calls an
        override only for the class that defines it and its subclasses that
        keep its ``read`` and ``end``: a subclass that changes either gets
        its own ``read`` then ``end``.
        """
        try:
            self.read(state, figures)
        finally:
            self.end(state)

    def sample(self) -> None:  # noqa: B027 - optional hook
        """Take a periodic sample (called by the monitor thread)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def begin_probes(probes: Iterable[Probe], reset_peak: bool) -> ProbeStates:
    """Begin each probe for one task or span; a probe that raises is counted,
    logged and left out.

    A ``BaseException`` (``KeyboardInterrupt`` arriving meanwhile) ends the
    probes begun so far, whose states would otherwise be lost with their
    peak trackers open, and goes on.
    """
    states = []
    try:
        for probe in probes:
            try:
                states.append((probe, probe.begin(reset_peak=reset_peak)))
            except Exception as exc:
                swallowed(f"probe.{probe.name}.begin", exc)
    except BaseException:
        end_probes(tuple(states))
        raise
    return tuple(states)


def read_probes(states: ProbeStates, figures: Figures) -> None:
    """Have each begun probe write its figures; one that raises is counted and logged."""
    for probe, state in states:
        try:
            probe.read(state, figures)
        except Exception as exc:
            swallowed(f"probe.{probe.name}.read", exc)


def finish_probes(states: ProbeStates, figures: Figures) -> None:
    """Have each begun probe write its last figures and end: :func:`read_probes` then
    :func:`end_probes`, probe by probe, through :meth:`Probe.finish` where a probe
    overrides it; one that raises is counted and logged.

    A ``BaseException`` (``KeyboardInterrupt`` arriving meanwhile) does not stop
    the others from ending (their peak trackers would stay open for good): the
    first one is raised once every probe has been called.
    """
    interrupted: BaseException | None = None
    for probe, state in states:
        try:
            cls = type(probe)
            fused = _fused_finish.get(cls)
            if fused is None:
                fused = _fused_finish[cls] = _finish_stands_for_read_and_end(cls)
            if fused:
                own = getattr(probe, "__dict__", None)
                if own and ("read" in own or "end" in own):  # replaced on the instance
                    fused = False
        except BaseException as exc:  # an interrupt: the probe still reads and ends
            if interrupted is None:
                interrupted = exc
            fused = False
        if not fused:
            try:
                probe.read(state, figures)
            except Exception as exc:
                swallowed(f"probe.{probe.name}.read", exc)
            except BaseException as exc:
                if interrupted is None:
                    interrupted = exc
            try:
                probe.end(state)
            except Exception as exc:
                swallowed(f"probe.{probe.name}.end", exc)
            except BaseException as exc:
                if interrupted is None:
                    interrupted = exc
        else:
            try:
                probe.finish(state, figures)
            except Exception as exc:
                swallowed(f"probe.{probe.name}.read", exc)
            except BaseException as exc:
                if interrupted is None:
                    interrupted = exc
                if isinstance(state, PeakTracker):
                    # Interrupted before it ended, maybe (at its first line): a peak
                    # tracker is closed again, which is harmless once closed, or it
                    # would stay open for good.  (Other probes' end() may count a
                    # task out: it is not called twice.)
                    try:
                        probe.end(state)
                    except BaseException as again:
                        swallowed(f"probe.{probe.name}.end", again)
    if interrupted is not None:
        raise interrupted


_read_then_end = Probe.finish
_fused_finish: dict[type[Probe], bool] = {}
"""Whether each probe class's own finish() replaces its read() and end() (see Probe.finish)."""


def _finish_stands_for_read_and_end(cls: type[Probe]) -> bool:
    if cls.finish is _read_then_end:
        return False
    owner: Any = next(c for c in cls.__mro__ if "finish" in vars(c))
    return cls.read is owner.read and cls.end is owner.end


def end_probes(states: ProbeStates) -> None:
    """End each begun probe; one that raises is counted and logged."""
    for probe, state in states:
        try:
            probe.end(state)
        except Exception as exc:
            swallowed(f"probe.{probe.name}.end", exc)


class HoldsProbeStates(Protocol):
    """An entry that holds the begun probes of a task or span."""

    probe_states: ProbeStates


_Entry = TypeVar("_Entry", bound=HoldsProbeStates)


def release_dropped(
    dropped: deque[_Entry],
    open_entries: dict[Any, _Entry],
    key_of: Callable[[_Entry], Any],
    log_key: str,
    message: str,
) -> None:
    """Forget the entries in ``dropped`` and end their probes.

    ``dropped`` holds entries of tasks or spans that were garbage-collected
    before they ended (their weak references' callback queued them; it may
    run inside any allocation, so it does nothing else).  Each leaves
    ``open_entries`` (under ``key_of(entry)``, if it is still the entry there)
    and has its probes ended, which closes its peak trackers; that would
    otherwise stay open for good, and be folded into at every reset.  Said
    once at debug level (``log_key``, ``message``).  Called outside every
    lock; threads may drain the same queue at once.
    """
    while dropped:
        try:
            entry = dropped.popleft()
        except IndexError:  # another thread took the last one
            return
        key = key_of(entry)
        if open_entries.get(key) is entry:
            open_entries.pop(key, None)
        states, entry.probe_states = entry.probe_states, ()
        end_probes(states)
        debug_once(log_key, message)
