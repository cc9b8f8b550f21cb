"""Probes that need periodic samples, taken on the monitor thread while they are in use.

A task never calls :meth:`~taskmeter.probes.base.Probe.sample` itself.  A
:class:`SampledProbe` registers its ``sample`` with the process's monitor
when the first of its tasks begins; the sampler removes itself at its first
tick with no task open, so a process with no open task pays for at most one
more sample.  Removing it lazily keeps a program that runs one top-level task
after another from adding and removing a monitor job on every task.  The
bookkeeping on the task's path is one lock and one counter.
"""

from __future__ import annotations

import os
import threading
import weakref

from .._log import swallowed
from ..monitor import MonitorHandle, get_monitor
from .base import Probe


class SampledProbe(Probe):
    """Base class for probes whose :meth:`sample` must run while one of their tasks is open.

    Subclasses call :meth:`_task_opened` from ``begin`` (keeping the token it
    returns in their state) and :meth:`_task_closed` from ``end``.  When
    :attr:`sample_interval` is ``None`` nothing is registered.  Override
    :meth:`_sampling_started` to take a first sample when sampling starts.
    """

    def __init__(self) -> None:
        self._sampling_lock = threading.Lock()
        self._open_tasks = 0
        self._sampling: MonitorHandle | None = None
        self._generation = 0
        self.sample_count = 0
        """How many periodic samples were taken (for tests and diagnostics)."""
        _sampled_probes.add(self)

    @property
    def sampling(self) -> bool:
        """Whether the probe's sampler is registered with the monitor now."""
        return self._sampling is not None

    @property
    def open_tasks(self) -> int:
        """Number of open tasks using this probe (in this process)."""
        return self._open_tasks

    def _task_opened(self) -> int:
        """Count a task in; start sampling if it is the first.  Returns a token for ``end``."""
        with self._sampling_lock:
            self._open_tasks += 1
            if self._sampling is None and self.sample_interval is not None:
                try:
                    self._sampling_started()
                except Exception as exc:  # a first sample that fails: the next ones may not
                    swallowed(f"probe.{self.name}.sample", exc)
                self._sampling = get_monitor().add(
                    self.tick, self.sample_interval, name=f"probe.{self.name}"
                )
            return self._generation

    def _task_closed(self, token: int) -> None:
        """Count a task out (the sampler stops at its next tick if none is left).

        A token from before a ``fork`` (a task the parent opened) is ignored:
        the child's monitor never ran that task's sampler.
        """
        with self._sampling_lock:
            if token != self._generation or self._open_tasks == 0:
                return
            self._open_tasks -= 1

    def _sampling_started(self) -> None:
        """Called (under the sampling lock) when the first task opens, before sampling."""

    def tick(self) -> None:
        """What the monitor runs: a sample, or the sampler's removal once no task is open."""
        if self.release_if_idle():
            return
        self.sample_count += 1
        self.sample()

    def release_if_idle(self) -> bool:
        """Remove the sampler now if no task is open; returns whether none is."""
        with self._sampling_lock:
            if self._open_tasks:
                return False
            if self._sampling is not None:
                get_monitor().remove(self._sampling)
                self._sampling = None
            return True

    def _after_fork_in_child(self) -> None:
        self._sampling_lock = threading.Lock()
        self._open_tasks = 0
        self._sampling = None
        self._generation += 1


_sampled_probes: weakref.WeakSet[SampledProbe] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for probe in list(_sampled_probes):
        probe._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
