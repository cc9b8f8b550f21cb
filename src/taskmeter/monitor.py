"""A background thread that refreshes running tasks and samples probes.

The thread starts on first use and sleeps on a condition variable: with
nothing registered it waits without a timeout, so an idle monitor costs no
wake-ups at all.  Each registered job runs at its own interval, on a fixed
cadence from the time it was added; a tick missed because a run was late or
slow is skipped, never made up by a run at once.  A job that
raises is counted and logged (rate-limited) and keeps its schedule.

The thread is not alive when the process forks: ``os.fork()`` in a process
with several threads may deadlock the child, and Python 3.12+ warns about it
(``DeprecationWarning``).  The thread stops just before the fork and starts
again in the parent right after, its jobs and their schedule kept.  A job it
is running is waited for :data:`_FORK_JOB_WAIT_S` at most, once per run: a
fork during a longer one (a refresh of a large task file, a slow disk) goes
ahead with the thread alive rather than wait.  The restart happens in the
``after_in_parent`` handler up to Python 3.12, and from 3.13 (which counts
threads after those handlers) at the forking thread's first call past
``os.fork()`` (see :mod:`taskmeter._past_fork`).
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _past_fork, settings
from ._log import debug_once, swallowed

_LONGEST_WAIT_S = 3600.0
"""The longest the thread sleeps at once while a job is due (it then looks again)."""

_FORK_JOB_WAIT_S = 0.05
"""How long a fork waits for a job the thread is running (a refresh of a small file takes
a millisecond), once per run of the job: a fork during a longer one goes ahead with the
thread alive, and later forks during the same run do not wait."""

_FORK_STOP_TIMEOUT_S = 0.1
"""How long a fork waits for the idle thread to end (it ends at once unless the machine
is starved; beyond it, the process forks with the thread alive)."""

_EXIT_WAIT_S = 0.05
"""How long a fork waits, after the thread said it ended, for the system thread to go."""


def next_due(due: float, interval: float, now: float) -> float:
    """When a job that was due at ``due`` runs next, ``now`` being the end of its run.

    The job keeps its cadence (``due + k * interval``) and skips the ticks it
    missed: a run that was late, or that took longer than the interval, is not
    followed by a catch-up run at once, but by the first tick after ``now``.
    """
    following = due + interval
    if following > now:
        return following
    missed = int((now - following) // interval) + 1
    following += missed * interval
    # Rounding may leave the sum a hair short of ``now``; one more tick then.
    return following if following > now else following + interval


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    interval: float = field(compare=False)
    callback: Callable[[], object] = field(compare=False)
    name: str = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class MonitorHandle:
    """Returned by :meth:`Monitor.add`; pass it to :meth:`Monitor.remove`."""

    __slots__ = ("_job",)

    def __init__(self, job: _Job) -> None:
        self._job = job


class Monitor:
    """Runs callbacks periodically on one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.default_interval = settings.monitor_interval()
        self.wakeups = 0
        """How many times the thread has woken up (an idle monitor does not)."""
        self._running_job: _Job | None = None
        self._cancelled = 0
        """How many jobs in ``_jobs`` are cancelled."""
        self._paused_for_fork = False
        """The thread was stopped for a fork, to start again in the parent after it."""
        self._fork_waited_for: tuple[_Job, int] | None = None
        """The run of a job (the job, its sequence number) a fork waited for."""

    def add(
        self,
        callback: Callable[[], object],
        interval: float | None = None,
        *,
        name: str = "job",
    ) -> MonitorHandle:
        """Call ``callback`` every ``interval`` seconds (default: the monitor's interval)."""
        period = self.default_interval if interval is None else float(interval)
        if not period > 0:
            raise ValueError(f"monitor interval must be positive, got {interval!r}")
        job = _Job(time.monotonic() + period, next(self._seq), period, callback, name)
        with self._cond:
            heapq.heappush(self._jobs, job)
            self._ensure_thread()
            self._cond.notify()
        return MonitorHandle(job)

    def remove(self, handle: MonitorHandle) -> None:
        """Stop calling a job (a no-op if it was already removed).

        The job lets go of its callback at once (a task's refresh holds the
        task and its records).  Removed jobs leave the schedule when they
        come first, or all at once when they are half of it: many short
        tasks saving files within one interval do not pile up there.
        """
        with self._cond:
            job = handle._job
            if job.cancelled:
                return
            job.cancelled = True
            job.callback = _removed
            if job is not self._running_job:
                self._cancelled += 1
            jobs = self._jobs
            # Drop cancelled jobs from the head so an empty monitor sleeps untimed.
            while jobs and jobs[0].cancelled:
                heapq.heappop(jobs)
                self._cancelled -= 1
            if self._cancelled > 16 and self._cancelled * 2 > len(jobs):
                self._jobs = [job for job in jobs if not job.cancelled]
                heapq.heapify(self._jobs)
                self._cancelled = 0

    @property
    def job_count(self) -> int:
        """Number of live jobs, the one running now included."""
        return len(self.job_names())

    def job_names(self) -> list[str]:
        """The names of the live jobs, the one running now included (for diagnostics)."""
        with self._cond:
            jobs = [*self._jobs, *([self._running_job] if self._running_job else [])]
            return [job.name for job in jobs if not job.cancelled]

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            thread = threading.Thread(target=self._run, name="taskmeter-monitor", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:
                # No thread can be started (a process at its limit): the jobs
                # stay registered and the next add() tries again; the tasks
                # still take their figures when they finish.
                swallowed("monitor.thread", exc)
                self._thread = None
                return
            self._thread = thread

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread (jobs stay registered and resume on the next :meth:`add`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                _wait_for_system_thread(thread)  # a fork right after counts no thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    self.wakeups += 1
                    if self._stopping:
                        if self._thread is threading.current_thread():
                            self._thread = None  # a later add() starts another at once
                        return
                    while self._jobs and self._jobs[0].cancelled:
                        heapq.heappop(self._jobs)
                        self._cancelled -= 1
                    if not self._jobs:
                        self._cond.wait()
                        continue
                    delay = self._jobs[0].due - time.monotonic()
                    if delay <= 0:
                        job = heapq.heappop(self._jobs)
                        self._running_job = job
                        break
                    # Bounded: a wait beyond threading.TIMEOUT_MAX raises
                    # (an interval of 1e10 s); it is just taken again.
                    self._cond.wait(delay if delay < _LONGEST_WAIT_S else _LONGEST_WAIT_S)
            try:
                job.callback()
            except Exception as exc:
                swallowed(f"monitor.{job.name}", exc)
            with self._cond:
                self._running_job = None
                if not job.cancelled:
                    job.due = next_due(job.due, job.interval, time.monotonic())
                    job.seq = next(self._seq)
                    heapq.heappush(self._jobs, job)

    def _before_fork(self) -> None:
        with self._cond:
            thread = self._thread
            if thread is None or thread is threading.current_thread():
                return
            busy = self._running_job
            run = None if busy is None else (busy, busy.seq)
            if run is not None and run == self._fork_waited_for:
                # An earlier fork waited for this run of the job already (a save of
                # a large tree): this one does not; the thread stays alive across it.
                debug_once(
                    "monitor.fork_during_job",
                    "a fork while the monitor runs %r: its thread stays alive across it",
                    busy.name if busy is not None else "",
                )
                return
            self._fork_waited_for = run
            self._stopping = True
            self._paused_for_fork = True
            self._cond.notify()
        # An idle thread ends at once; a job (a refresh of a small file: a
        # millisecond) is waited for briefly, once per run.
        thread.join(_FORK_STOP_TIMEOUT_S if busy is None else _FORK_JOB_WAIT_S)
        if not thread.is_alive():
            _wait_for_system_thread(thread)

    def _resume_after_fork(self) -> None:
        with self._cond:
            if not self._paused_for_fork:
                return  # not running at the fork (never started, or stopped by stop())
            self._paused_for_fork = False
            self._stopping = False  # a thread not yet ended (a starved one) carries on
            if len(self._jobs) > self._cancelled:  # else the next add() starts it
                self._ensure_thread()

    def _after_fork_in_child(self) -> None:
        # The thread does not exist in the child, and the jobs refer to the
        # parent's tasks; a child starts with an empty monitor.
        self._cond = threading.Condition()
        self._jobs = []
        self._cancelled = 0
        self._running_job = None  # the parent's thread was running it
        self._thread = None
        self._stopping = False
        self._paused_for_fork = False


def _wait_for_system_thread(thread: threading.Thread) -> None:
    # join() returns as the thread's state is cleared, a moment before the
    # system thread exits (a daemon thread's is not joined at the system
    # level); the fork-with-threads check counts system threads
    # (/proc/self/task on Linux).
    if thread.native_id is None:
        return
    path = f"/proc/self/task/{thread.native_id}"
    deadline = time.monotonic() + _EXIT_WAIT_S
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.0001)


def _removed() -> None:
    """The callback of a removed job (which lets go of its own)."""


_monitor: Monitor | None = None
_monitor_lock = threading.Lock()


def get_monitor() -> Monitor:
    """The process's monitor (created on first use)."""
    global _monitor
    monitor = _monitor
    if monitor is None:
        with _monitor_lock:
            if _monitor is None:
                _monitor = Monitor()
            monitor = _monitor
    return monitor


_THREADS_COUNTED_AFTER_PARENT_HANDLERS = sys.version_info >= (3, 13)
_fork = threading.local()
"""``frame``: the frame that called ``os.fork()`` in this thread, while it forks."""


def _before_fork() -> None:
    monitor = _monitor
    _fork.frame = None
    if monitor is not None:
        try:
            monitor._before_fork()
            if _THREADS_COUNTED_AFTER_PARENT_HANDLERS:
                _fork.frame = _past_fork.forking_frame()
        except Exception as exc:
            swallowed("monitor.fork", exc)


def _after_fork_in_parent() -> None:
    monitor = _monitor
    frame = getattr(_fork, "frame", None)
    _fork.frame = None
    if monitor is not None:
        try:
            if not (
                monitor._paused_for_fork
                and _past_fork.call_past_fork(monitor._resume_after_fork, frame)
            ):
                monitor._resume_after_fork()
        except Exception as exc:
            swallowed("monitor.fork", exc)


def _after_fork_in_child() -> None:
    global _monitor_lock
    _monitor_lock = threading.Lock()
    _fork.frame = None
    if _monitor is not None:
        _monitor._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
