"""Per-task peaks from one process-wide, resettable high-water mark.

The kernel (``VmHWM``), PyTorch (``max_memory_allocated``) and a sampled GPU
reading each keep *one* high-water mark for the whole process.  Resetting it
when a task starts stops a task from being charged for what an earlier sibling
used, but it would also erase the peak of every task that is still open
around it.  :class:`PeakRegister` keeps both right: before each reset it folds
the current high-water mark into every open task's tracker, so a task's peak
is the larger of what was folded into it and the high-water mark when it is
read.

A register belongs to the mark, not to a probe: :func:`shared_register`
gives every probe that reads the same physical mark (this process's kernel
RSS mark, PyTorch's CUDA peaks) the same register, so a reset made for one
probe's task folds into the tasks every other probe is tracking.  A register
can also keep the mark's peak over the life of the process
(:class:`LifetimeFold`), which a reset would otherwise erase.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Protocol

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]


class HighWaterSource(Protocol):
    """A process-wide high-water mark that may be resettable."""

    @property
    def resettable(self) -> bool:
        """Whether :meth:`reset` can start a new high-water mark."""

    def high_water(self, usage: Any = None) -> int | None:
        """The high-water mark since the last reset, or ``None`` if unknown.

        ``usage`` is a ``getrusage(RUSAGE_SELF)`` result taken just now, which a
        source may use instead of a system call of its own; others ignore it.
        """

    def reset(self) -> None:
        """Start a new high-water mark at the current level."""


class LifetimeFold(Protocol):
    """Where a register folds the RSS mark before each reset, for the process's lifetime peak."""

    def fold(self, usage: Any) -> None:
        """Fold the mark of ``usage`` (a ``getrusage`` result taken just before the reset) in."""

    def forget(self) -> None:
        """Start again with nothing folded in (in a forked child)."""


class PeakTracker:
    """The peak of one open task, as far as resets have folded it in."""

    __slots__ = ("folded",)

    def __init__(self) -> None:
        self.folded: int | None = None


class PeakRegister:
    """Fold-before-reset over every open task of a process, for one source."""

    def __init__(self, source: HighWaterSource, *, lifetime: LifetimeFold | None = None) -> None:
        """``lifetime``: where to fold ``getrusage``'s ``ru_maxrss`` before every
        reset (only for a source that is this process's kernel RSS mark)."""
        self.source = source
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._open: set[PeakTracker] = set()
        _registers.add(self)

    def open(
        self,
        *,
        reset: bool = True,
        usage: Any = None,
        tracker: PeakTracker | None = None,
        read_usage: Callable[[], Any] | None = None,
    ) -> PeakTracker:
        """Start tracking a task; reset the high-water mark if asked and possible.

        ``usage``: a ``getrusage`` result taken just now (see
        :meth:`HighWaterSource.high_water`); ``read_usage``: a function that
        takes one, called under the register's lock.  Prefer the latter: the
        mark folded into the open tasks must be read at the reset, or what
        other threads used between the reading and the reset (while this one
        waited for the lock) is lost from every open task's peak.
        ``tracker``: a new tracker to use (a probe's own subclass that also
        holds its other readings); by default one is made.
        """
        if tracker is None:
            tracker = PeakTracker()
        source = self.source
        # ``with``, never acquire() then ``try``: an interrupt (a Ctrl-C)
        # raised just after acquire() returns would leave the lock held, and
        # every later task of the process waiting for it.
        with self._lock:
            if read_usage is not None:
                usage = read_usage()
            if reset and source.resettable:
                lifetime = self.lifetime
                if lifetime is not None:
                    # Before every reset, not only beside open tasks: the reset
                    # lowers ru_maxrss, the process's peak as others read it.
                    if usage is None:
                        usage = resource.getrusage(resource.RUSAGE_SELF)
                    lifetime.fold(usage)
                trackers = self._open
                if trackers:
                    value = source.high_water() if usage is None else source.high_water(usage)
                    if value is not None:  # fold it into every open tracker
                        for other in trackers:
                            folded = other.folded
                            if folded is None or value > folded:
                                other.folded = value
                source.reset()
            self._open.add(tracker)
        return tracker

    def peak(self, tracker: PeakTracker, usage: Any = None) -> int | None:
        """The tracked task's peak so far (``usage`` as for :meth:`open`)."""
        with self._lock:
            source = self.source
            current = source.high_water() if usage is None else source.high_water(usage)
            folded = tracker.folded
        return _larger(current, folded)

    def finish(self, tracker: PeakTracker, usage: Any = None) -> int | None:
        """The tracked task's peak, and stop tracking it: :meth:`peak` then
        :meth:`close` under one lock.  The tracker is closed even if the
        reading fails."""
        with self._lock:
            self._open.discard(tracker)
            source = self.source
            current = source.high_water() if usage is None else source.high_water(usage)
            folded = tracker.folded
        if current is None:  # _larger, inline: this runs for every task
            return folded
        if folded is None or current > folded:
            return current
        return folded

    def close(self, tracker: PeakTracker) -> None:
        """Stop tracking a task."""
        with self._lock:
            self._open.discard(tracker)

    def forget_all(self) -> None:
        """Drop every tracker (done in a forked child, whose open tasks are the parent's)."""
        self._lock = threading.Lock()  # it may have been held at the fork
        self._open = set()
        if self.lifetime is not None:
            self.lifetime.forget()

    @property
    def open_count(self) -> int:
        """Number of tasks being tracked."""
        return len(self._open)


def _larger(current: int | None, folded: int | None) -> int | None:
    if current is None:
        return folded
    if folded is None or current > folded:
        return current
    return folded


_registers: weakref.WeakSet[PeakRegister] = weakref.WeakSet()
_shared: dict[Hashable, PeakRegister] = {}
_shared_lock = threading.Lock()


def shared_register(
    key: Hashable,
    make_source: Callable[[], HighWaterSource],
    *,
    lifetime: LifetimeFold | None = None,
) -> PeakRegister:
    """The one register of the physical mark named ``key``, made on first use.

    Every probe that reads that mark must fold and reset through one register:
    with one register each, a task opened through one probe resets the mark
    without folding it into the tasks another probe tracks, whose peaks are
    then lost.  ``make_source`` and ``lifetime`` are used only the first time.
    """
    register = _shared.get(key)
    if register is not None:
        return register
    with _shared_lock:
        register = _shared.get(key)
        if register is None:
            register = _shared[key] = PeakRegister(make_source(), lifetime=lifetime)
        return register


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # it may have been held at the fork
    for register in list(_registers):
        register.forget_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
