"""Is a task that a file says is running still running?  (Or was its process killed?)

A task file is rewritten while its task runs, so a process killed with
``SIGKILL`` leaves a valid file whose status is still ``running``.  A reader
tells the two apart:

* **on the host that ran the task** (the file's ``hostname`` is this one):
  the task is interrupted when its process (``pid``) no longer exists, is a
  zombie, or is a *different* process that got the same id afterwards: one
  that started after the task did (process ids are reused).  A process that
  started no later than the task (to the clock's precision) is the task's;
* a task whose process exists but is *stopped* (``SIGTSTP`` from Ctrl-Z,
  ``SIGTTIN``/``SIGTTOU`` for a background job that touched the terminal,
  ``SIGSTOP``, a debugger) is not interrupted, but not running either:
  :func:`stoppage` says so.  The file cannot: its status is LensKit's
  enumeration, which has no such value, and a stopped process does not
  rewrite its file anyway;
* **elsewhere**, or where the file names no process (LensKit's task files
  have no ``pid``), so that none can be checked: when the file has not been
  rewritten for longer than ``stale_after_s`` (by default three refresh
  intervals, ``TASKMETER_MONITOR_INTERVAL``, and at least 30 s).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _process, settings

if TYPE_CHECKING:
    from .task import Task

__all__ = ["CLOCK_SLACK_S", "Liveness", "default_stale_after", "interruption", "stoppage"]

CLOCK_SLACK_S = 2.0
"""How much later than the task a process may seem to have started and still be the
task's: a process's start time is known to the clock tick, from the boot time in
whole seconds, and the wall clock may have been adjusted since boot."""


def default_stale_after(monitor_interval_s: float | None = None) -> float:
    """Seconds without a rewrite after which a running task on another host is presumed
    interrupted: three refresh intervals, at least 30 s."""
    interval = settings.monitor_interval() if monitor_interval_s is None else monitor_interval_s
    return max(3 * interval, 30.0)


@dataclass(frozen=True)
class Liveness:
    """How to judge running tasks read from one file."""

    hostname: str
    """This host's name."""
    file_mtime: float | None = None
    """When the file was last rewritten (UNIX time); ``None`` for standard input."""
    now: float | None = None
    stale_after_s: float | None = None
    process_facts: dict[int, _ProcessFacts | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    """What is known of each process examined so far (filled as tasks are judged)."""

    @classmethod
    def here(cls, file_mtime: float | None = None, stale_after_s: float | None = None) -> Liveness:
        """Judged from this host, now."""
        return cls(_process.current_hostname(), file_mtime, time.time(), stale_after_s)

    def interruption(self, task: Task) -> str | None:
        """Why ``task`` (status running) is no longer running; ``None`` if it may be.

        The facts about each process are looked up once per :class:`Liveness`
        (a killed run's subtasks share its pid).
        """
        return interruption(
            task,
            hostname=self.hostname,
            file_mtime=self.file_mtime,
            now=self.now,
            stale_after_s=self.stale_after_s,
            _facts=self.process_facts,
        )

    def stoppage(self, task: Task) -> str | None:
        """Why ``task`` (status running, its process alive) is not running now: its
        process is stopped; ``None`` otherwise."""
        return stoppage(task, hostname=self.hostname, _facts=self.process_facts)


def _facts_of(pid: int, facts: dict[int, _ProcessFacts | None] | None) -> _ProcessFacts | None:
    if facts is None:
        return _process_facts(pid)
    if pid not in facts:
        facts[pid] = _process_facts(pid)
    return facts[pid]


def stoppage(
    task: Task, *, hostname: str, _facts: dict[int, _ProcessFacts | None] | None = None
) -> str | None:
    """Why ``task``, recorded as running on this host, is not running now although its
    process exists: the process is stopped (until ``SIGCONT``); ``None`` otherwise."""
    if getattr(task.status, "value", task.status) != "running":
        return None
    pid = task.pid
    if task.hostname != hostname or not isinstance(pid, int) or pid <= 0:
        return None
    facts = _facts_of(pid, _facts)
    if facts is None or not facts.stopped or _process_gone(pid, facts, task.start_time):
        return None
    return (
        f"process {pid} is stopped (Ctrl-Z, a background job reading the terminal, SIGSTOP "
        f"or a debugger); fg, or kill -CONT {pid}, resumes it"
    )


def interruption(
    task: Task,
    *,
    hostname: str,
    file_mtime: float | None = None,
    now: float | None = None,
    stale_after_s: float | None = None,
    _facts: dict[int, _ProcessFacts | None] | None = None,
) -> str | None:
    """Why ``task`` is not running any more although its status says so, or ``None``.

    Only tasks whose status is ``running`` are judged (others return ``None``).
    """
    if getattr(task.status, "value", task.status) != "running":
        return None
    pid = task.pid
    if task.hostname == hostname and isinstance(pid, int) and pid > 0:
        return _process_gone(pid, _facts_of(pid, _facts), task.start_time)
    if file_mtime is None:
        return None
    limit = default_stale_after() if stale_after_s is None else stale_after_s
    age = (time.time() if now is None else now) - file_mtime
    if age > limit:
        if task.hostname == hostname:
            return f"not refreshed for {age:.0f} s (the record names no process to check)"
        return f"not refreshed for {age:.0f} s (host {task.hostname} cannot be checked from here)"
    return None


@dataclass(frozen=True)
class _ProcessFacts:
    exists: bool
    created: float = 0.0
    zombie: bool = False
    stopped: bool = False


def _process_facts(pid: int) -> _ProcessFacts | None:
    """Whether process ``pid`` exists, when it started, whether it exited; ``None``:
    it exists but cannot be examined."""
    import psutil

    try:
        process = psutil.Process(pid)
        created = process.create_time()
        status = process.status()
    except psutil.ZombieProcess:  # where a zombie's start time cannot be read (macOS)
        return _ProcessFacts(exists=True, zombie=True)
    except psutil.NoSuchProcess:
        # /proc mounted with hidepid=1 or 2 (shared and hardened systems) hides
        # other users' processes: psutil finds none where one runs.
        return None if _hidden(pid) else _ProcessFacts(exists=False)
    except (psutil.AccessDenied, OSError):
        return None
    stopped = status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    return _ProcessFacts(True, created, status == psutil.STATUS_ZOMBIE, stopped)


def _hidden(pid: int) -> bool:
    """Whether process ``pid``, which psutil did not find, exists all the same: the
    kernel answers a null signal to it (with ``EPERM`` for another user's process)."""
    if os.name != "posix":
        return False  # os.kill ends the process on Windows, whatever the signal
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def _process_gone(pid: int, facts: _ProcessFacts | None, start_time: float | None) -> str | None:
    if facts is None:
        return None  # it exists; whose it is cannot be told
    if not facts.exists:
        return f"process {pid} is gone"
    if facts.zombie:
        return f"process {pid} has exited"
    if start_time is not None and facts.created > start_time + CLOCK_SLACK_S:
        return f"process {pid} is gone (the id now belongs to a process started later)"
    return None
