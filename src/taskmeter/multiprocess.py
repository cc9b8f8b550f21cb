"""Tasks in worker processes become subtasks of the task that started the workers.

A task that starts in a worker process (``multiprocessing`` with ``fork``,
``spawn`` or ``forkserver``, ``concurrent.futures.ProcessPoolExecutor``)
with no parent in its own process becomes a subtask of a task of the parent
process: its ``parent_id`` is that task's id, it is marked
``subprocess=True``, its span is a child of the parent task's span (one
trace), and when it finishes its record is sent back and added to the parent
task's ``subtasks``, so that the parent's ``total_cpu()`` includes it.

* **fork**: automatic.  The parent is the task running in the thread that
  forked the worker: a ``Process`` started, or a ``Pool`` or
  ``ProcessPoolExecutor`` created (or, for the executor, first used), inside
  the task.
* **spawn** and **forkserver**: a new interpreter knows nothing of the
  parent; one line tells it, either a context::

      ctx = taskmeter.multiprocess.get_context("spawn")
      with ProcessPoolExecutor(4, mp_context=ctx) as pool: ...

  or an initializer (for pools made outside the task, or with your own)::

      Pool(4, initializer=init_worker, initargs=(worker_context(),))

* A pool that outlives the task (reused by several tasks): wrap the function,
  and each call reports to the task current where it was wrapped::

      pool.map(with_parent(score), chunks)

The records travel through a private directory of the parent process (see
:mod:`taskmeter._workers`); a worker exports its spans before each record
is sent, since multiprocessing ends workers without running exit hooks.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any
from uuid import UUID

from . import _process, _workers, propagation
from ._log import swallowed, warn_once
from .task import Task, _active_stack, _running_task, state_of

__all__ = ["WorkerContext", "get_context", "init_worker", "with_parent", "worker_context"]


@dataclass(frozen=True)
class WorkerContext:
    """What a worker process needs to make its tasks subtasks of a parent task.

    Made in the parent by :func:`worker_context`; small and picklable, to be
    passed to the worker (as an initializer argument, say) and installed
    there with :meth:`install` or :func:`init_worker`.
    """

    parent_id: UUID
    """The parent task's id."""
    inbox: str | None
    """The parent process's directory for the records of its workers' tasks."""
    traceparent: str | None
    """The span the workers' task spans are children of (W3C ``traceparent``)."""
    tracestate: str | None
    """The W3C ``tracestate`` of that span, if any."""
    pid: int
    """The parent process's id."""

    def install(self) -> None:
        """Make this process's top-level tasks subtasks of the parent task.

        Call it in the worker process (it is what :func:`init_worker` does).
        It replaces a parent this process had (from a fork, or from ``taskmeter
        run``).  In the parent's own process it does nothing but warn.
        """
        if os.getpid() == self.pid:
            warn_once(
                "workers.install.same_process",
                "a worker context was installed in the process that made it (pid %d); "
                "ignored: it is meant for worker processes",
                self.pid,
            )
            return
        traceparent = propagation.parse_traceparent(self.traceparent) if self.traceparent else None
        propagation.inherit(
            propagation.Inherited(
                self.parent_id,
                Path(self.inbox) if self.inbox else None,
                traceparent,
                self.tracestate,
                flush_spans=True,
            )
        )
        _workers.register_exit_flush()


def worker_context(parent: Task | None = None) -> WorkerContext | None:
    """The context that makes a worker's tasks subtasks of ``parent``.

    Args:
        parent: A task running in this process; by default the current task.

    Returns:
        The context, or ``None`` when no task is current (passing ``None`` on
        to :func:`init_worker` is fine: the worker's tasks then have no parent).

    Raises:
        TypeError: ``parent`` is not a Task.
        ValueError: ``parent`` is not running in this process.
    """
    current = False
    if parent is None:
        parent = Task.current()
        if parent is None:
            return None
        current = True
    elif not isinstance(parent, Task):
        raise TypeError(f"parent must be a Task or None, not {type(parent).__name__}")
    else:
        current = parent is Task.current()
    state = state_of(parent)
    if parent.pid != _process.pid or not state.started:
        raise ValueError(f"{parent} is not running in this process; start it first")
    if state.finished:
        raise ValueError(f"{parent} has already finished")
    inbox: str | None = None
    try:
        inbox = str(_workers.expect_workers(parent).path)
    except Exception as exc:  # the tasks still join the trace; their records cannot come back
        swallowed("workers.inbox", exc)
    traceparent, tracestate = _workers.span_parent_of(parent, current=current)
    return WorkerContext(
        parent_id=parent.task_id,
        inbox=inbox,
        traceparent=propagation.format_traceparent(traceparent) if traceparent else None,
        tracestate=tracestate,
        pid=_process.pid,
    )


def init_worker(
    context: WorkerContext | None,
    initializer: Callable[..., object] | None = None,
    *initargs: Any,
) -> None:
    """An initializer for ``multiprocessing.Pool`` and ``ProcessPoolExecutor``.

    Installs ``context`` (see :meth:`WorkerContext.install`; ``None`` does
    nothing), then calls ``initializer(*initargs)`` if given::

        Pool(4, initializer=init_worker, initargs=(worker_context(), setup, arg))
    """
    if context is not None:
        if not isinstance(context, WorkerContext):
            raise TypeError(f"expected a WorkerContext or None, not {type(context).__name__}")
        context.install()
    if initializer is not None:
        initializer(*initargs)


class WithParent:
    """A picklable callable: ``function`` run with a worker context installed.

    Made by :func:`with_parent`.  In a worker process, the context is
    installed for the duration of the call, and the worker's previous parent
    restored after.  In the process that made it, in a thread where no task
    runs (a thread pool's), the call runs in a copy of the context variables
    of the place it was made, so its tasks are subtasks of the parent task
    there, their spans children of the span current there.
    """

    def __init__(self, function: Callable[..., Any], context: WorkerContext | None) -> None:
        if not callable(function):
            raise TypeError(f"expected a callable, not {type(function).__name__}")
        self.function = function
        self.context = context
        self._local: contextvars.Context | None = None
        """The context variables where it was made (not pickled)."""

    def __getstate__(self) -> dict[str, Any]:
        return {"function": self.function, "context": self.context}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.function = state["function"]
        self.context = state["context"]
        self._local = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        context = self.context
        if context is None:
            return self.function(*args, **kwargs)  # no parent
        if os.getpid() == context.pid:
            local = self._local
            if local is None or Task.current() is not None:
                return self.function(*args, **kwargs)  # where it was made, or under a task
            return local.copy().run(self.function, *args, **kwargs)
        previous = propagation.inherited
        _install(context)
        try:
            return self.function(*args, **kwargs)
        finally:
            propagation.inherit(previous)

    def __repr__(self) -> str:
        parent = self.context.parent_id if self.context is not None else None
        return f"WithParent({self.function!r}, parent={parent})"


def with_parent(function: Callable[..., Any], parent: Task | None = None) -> WithParent:
    """``function``, whose tasks in a worker process or thread become subtasks of ``parent``.

    For pools that outlive a task, or serve several: each call carries the
    parent (by default the task current now), whichever task was current
    when the pool's workers started::

        with Task("score"):
            results = pool.map(with_parent(score), chunks)

    The same goes for joblib's ``Parallel`` (``delayed(with_parent(score))``),
    whatever its backend.  In a thread of this process where no task runs (a
    thread pool's), the call runs with the context variables of the place
    where ``with_parent`` was called (as ``contextvars.copy_context().run``
    would), so its tasks are subtasks there; under a task, or in the
    calling thread, ``function`` just runs.
    """
    wrapped = WithParent(function, worker_context(parent))
    if wrapped.context is not None:
        local = contextvars.copy_context()
        if parent is not None and parent is not Task.current():
            local.run(_activate, parent)
        wrapped._local = local
    return wrapped


def _activate(task: Task) -> None:
    # In a copied context: ``task`` is the active task, its span the current span.
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    _active_stack.set((task,))
    otel_context.attach(trace.set_span_in_context(state_of(task).span))


# ---------------------------------------------------------------- contexts


class _Starters:
    """The tasks that started processes through one context (see :func:`get_context`).

    A process started where no task runs (a ``Pool`` or an executor replacing
    a worker from a thread of its own) goes to the one of them still running,
    not counting its ancestors, as a process forked so does.
    """

    def __init__(self, fallback: UUID | None) -> None:
        self.fallback = fallback
        """The task current when the context was made."""
        self._lock = threading.Lock()
        self._task_ids: set[UUID] = set()
        """Ids, not tasks: a context made at import time keeps no finished task alive."""

    def __reduce__(self) -> tuple[Any, tuple[None]]:
        return (_Starters, (None,))  # a spawned process pickles its Process: none there

    def _running(self) -> list[Task]:
        tasks = []
        for task_id in list(self._task_ids):
            task = _running_task(task_id)
            if task is not None and _runs(task):
                tasks.append(task)
            else:
                self._task_ids.discard(task_id)  # bounded by the tasks running at once
        return tasks

    def note(self, task: Task) -> None:
        with self._lock:
            self._running()
            self._task_ids.add(task.task_id)

    def without_task(self) -> Task | None:
        """The parent of a process started where no task runs, if there is one."""
        with self._lock:
            starters = self._running()
        task = _workers.sole_running_leaf(starters)
        if task is None and len(starters) > 1:
            warn_once(
                "workers.start.no_task",
                "a process was started from thread %r, where no task runs, through a "
                "taskmeter.multiprocess context that several running tasks started "
                "processes with: its tasks are not their subtasks (give each task its own "
                "context, or its pool initializer=init_worker)",
                threading.current_thread().name,
            )
            return None
        if task is None and self.fallback is not None:
            task = _running_task(self.fallback)
        return task


def _runs(task: Task) -> bool:
    state = task._tm
    return state is not None and state.started and not state.finished


def _capture(starters: _Starters | None) -> WorkerContext | None:
    # In the parent, as a process starts: never raises into the caller.
    try:
        current = Task.current()
        if current is not None:
            if starters is not None:
                starters.note(current)
            return worker_context(current)
        task = starters.without_task() if starters is not None else None
        return worker_context(task) if task is not None and _runs(task) else None
    except Exception as exc:
        swallowed("workers.capture", exc)
        return None


def _install(context: WorkerContext | None) -> None:
    if context is not None:
        try:
            context.install()
        except Exception as exc:
            swallowed("workers.install", exc)


class _CarriesTaskContext(multiprocessing.process.BaseProcess):
    """Captures the current task's context when started; installs it in the worker."""

    _taskmeter_starters: _Starters | None = None
    _taskmeter_context: WorkerContext | None = None

    def start(self) -> None:
        self._taskmeter_context = _capture(self._taskmeter_starters)
        super().start()

    def run(self) -> None:
        _install(self._taskmeter_context)
        super().run()


class _SpawnProcess(_CarriesTaskContext, multiprocessing.context.SpawnProcess):
    pass


_CONTEXTS: dict[str, tuple[type[_CarriesTaskContext], type[BaseContext]]]
_CONTEXTS = {"spawn": (_SpawnProcess, multiprocessing.context.SpawnContext)}
"""The process class and the standard context of each start method."""

if sys.platform != "win32":

    class _ForkProcess(_CarriesTaskContext, multiprocessing.context.ForkProcess):
        pass

    class _ForkServerProcess(_CarriesTaskContext, multiprocessing.context.ForkServerProcess):
        pass

    _CONTEXTS["fork"] = (_ForkProcess, multiprocessing.context.ForkContext)
    _CONTEXTS["forkserver"] = (_ForkServerProcess, multiprocessing.context.ForkServerContext)


def get_context(method: str | None = None) -> BaseContext:
    """A ``multiprocessing`` context whose processes' tasks belong to the current task.

    Use it as ``multiprocessing.get_context(method)``, or as
    ``ProcessPoolExecutor(mp_context=...)``: every process it starts (a
    ``Process``, the workers of its ``Pool`` or of an executor) carries the
    task current in the thread that starts it.  A process started where no
    task runs (a ``Pool``, or an executor with ``max_tasks_per_child``,
    replaces workers from a thread of its own) carries the task that started
    the context's other processes, if exactly one of those still runs (not
    counting its ancestors), or else the task current when the context was
    made, if that still runs.  Their top-level tasks become its subtasks.

    Args:
        method: ``"spawn"``, ``"fork"`` or ``"forkserver"``; by default the
            platform's default start method.

    Raises:
        ValueError: the method is unknown or not available on this platform.
    """
    if method is None:
        method = multiprocessing.get_context().get_start_method()
    available = multiprocessing.get_all_start_methods()
    if method not in _CONTEXTS or method not in available:
        raise ValueError(
            f"unknown or unavailable start method {method!r}; this platform has "
            f"{', '.join(available)}"
        )
    process_class, base = _CONTEXTS[method]
    current = Task.current()
    starters = _Starters(current.task_id if current is not None else None)

    def make_process(*args: Any, **kwargs: Any) -> multiprocessing.process.BaseProcess:
        process = process_class(*args, **kwargs)
        process._taskmeter_starters = starters
        return process

    context: Any = base()
    # The standard contexts build processes through their ``Process``
    # attribute (Pool, ProcessPoolExecutor and direct use alike).
    context.Process = make_process
    return context  # type: ignore[no-any-return]
