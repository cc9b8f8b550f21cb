"""Tasks of worker processes: the parent's inbox, and the worker's side.

**Parent side.**  A process whose tasks have worker processes gets one
private directory (mode 0700), its *inbox*, created when the first worker
context is taken (:func:`taskmeter.multiprocess.worker_context`) or the first
``fork`` happens while a task is running.  Workers write the record of each
of their finished top-level tasks there as ``<task id>.json`` (atomically,
mode 0600).  The inbox files each record under the running task its
``parent_id`` names, as a subtask (replacing an earlier record of the same
task, so delivering twice never duplicates), and deletes the file:

* when a task that may have workers finishes, before it publishes its
  figures (so its ``total_cpu()`` includes them): one that forked them or
  had a worker context taken, its running ancestors, and a running task
  pickled (handed to workers as ``Task(..., parent=task)`` takes it), and
* every monitor interval while such a task runs (so long runs do not pile
  records up, and task files show the workers' progress).

A record whose parent has already finished (its worker outlived it) goes to
the nearest running ancestor of that parent, with a warning; with none left,
it is dropped with a warning.  The directory is removed at exit (after
multiprocessing has ended the pools and joined the processes still running:
tasks still open in a worker's journal then are reported lost).  A worker's
own inbox lies inside its parent's (``workers-<pid>-*``): the parent removes
it once that process has ended (a worker left by ``os._exit`` or ``SIGTERM``
runs no exit hook), or with its own at exit.  A top-level inbox left by a
process killed or ended by ``os._exit`` is removed by the next process that
makes one (:mod:`taskmeter._stale_inboxes`).

**Worker side.**  A worker's top-level tasks adopt the parent task
(:func:`taskmeter.propagation.inherit`, with ``flush_spans``).  Before a record
is delivered, :func:`flush_spans` exports the worker's finished spans (and
the metrics recorded from them),
waiting at most :data:`FLUSH_TIMEOUT_S`: multiprocessing ends a worker with
``os._exit`` (and ``Pool.terminate`` with ``SIGTERM``), so the OpenTelemetry
SDK's exit hook never runs there.  A multiprocessing finaliser flushes once
more when the worker exits normally, within the same bounds, except the
providers whose owner shuts them down at exit itself, boundedly
(:func:`shut_down_at_exit`: those taskmeter's instrumentor built, in a
spawned worker, which does run exit hooks).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _journal, _stale_inboxes, propagation
from ._files import absolute
from ._forked_exporters import drop_inherited_connections
from ._log import count_more, swallowed, warn_once
from .monitor import MonitorHandle, get_monitor

if TYPE_CHECKING:
    from uuid import UUID

    from .task import Task

FLUSH_TIMEOUT_S = 5.0
"""The longest a worker waits for its spans to be exported when a task ends."""

FLUSH_BACKOFF_S = 60.0
"""After a flush that timed out, a worker does not wait for another for this long."""

FINISHED_KEPT = 4096
"""How many finished parents the inbox remembers, to place records that arrive late."""

EXIT_PRIORITY = -10
"""multiprocessing finaliser priority: negative, so it runs after the worker's own
children were joined."""


NESTED_PREFIX = "workers-"
"""How the inbox of a worker, inside its parent's inbox, is named: ``workers-<pid>-*``."""

LOST_NAMED = 10
"""How many lost tasks the warning at exit names by label."""


class LateRecordError(Exception):
    """A worker's task record arrived after the task it belongs to had finished."""


class LostWorkerTaskError(Exception):
    """A worker process ended (killed) while a task of it was running: no record came."""


def _notice_spool() -> None:
    delivery: Any = sys.modules.get("taskmeter.export.delivery")
    if delivery is not None:
        delivery.notice_spooled_elsewhere()


class Inbox:
    """The directory where this process's workers deliver their task records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._expecting = 0
        self._job: MonitorHandle | None = None
        self._finished: OrderedDict[UUID, UUID] = OrderedDict()
        self._forking: dict[UUID, Task] = {}
        """Running tasks that forked workers themselves (not as an ancestor)."""
        self.collected = 0
        """Records filed under a task so far."""
        self.late = 0
        """Records whose parent had finished, filed under an ancestor."""
        self.dropped = 0
        """Records no running task could take."""
        self.lost = 0
        """Tasks whose worker process ended before it delivered their record."""
        self.closed = False
        self.deferred_to_multiprocessing = False
        """Whether multiprocessing's exit hook closes the inbox (after its pools end)."""

    @property
    def expecting(self) -> int:
        """Number of running tasks that may have workers."""
        return self._expecting

    @property
    def collecting_periodically(self) -> bool:
        """Whether the monitor collects records now."""
        return self._job is not None

    def expect(self, task: Task) -> None:
        """Note that ``task`` (and so its running ancestors) may have workers.

        Each collects the inbox when it finishes; while any runs, the monitor
        collects it periodically.
        """
        with self._lock:
            own = task._tm
            if own is not None and own.started and not own.finished:
                self._forking[task.task_id] = task
            self._watch(task)

    def watch(self, task: Task) -> None:
        """Note that workers may name ``task`` as their tasks' parent (it was handed
        to them), without its having workers of its own.

        As with :meth:`expect`, it and its running ancestors collect the inbox
        when they finish: its workers' records are filed under it, or, arriving
        after it finished, under its nearest running ancestor.
        """
        with self._lock:
            self._watch(task)

    def _watch(self, task: Task) -> None:
        # Under the lock: ``task`` and its running ancestors collect when they finish.
        current: Task | None = task
        while current is not None:
            state = current._tm
            if state is None:  # a finished task, its state dropped
                break
            if state.collect is not None or state.finished or not state.started:
                break
            state.collect = self.task_finished
            self._expecting += 1
            current = state.parent
        if self._expecting and self._job is None:
            self._job = get_monitor().add(self.collect, name="workers")

    def _note_finished(self, task: Task) -> None:
        # Under the lock: where the records of a finished task's workers go.
        if task.parent_id is not None:
            self._finished[task.task_id] = task.parent_id
            while len(self._finished) > FINISHED_KEPT:
                self._finished.popitem(last=False)

    def sole_forking_task(self) -> Task | None:
        """The running task that forked workers, if exactly one did (not counting
        its ancestors, whose workers are its own)."""
        with self._lock:
            forking = list(self._forking.values())
        return sole_running_leaf(forking)

    def task_finished(self, task: Task) -> None:
        """Called by a task that may have workers as it finishes, before it publishes."""
        state = task._tm
        if state is not None:
            state.collect = None
        self.collect()
        try:
            with self._lock:
                self._expecting -= 1
                self._forking.pop(task.task_id, None)
                self._note_finished(task)
                if self._expecting <= 0 and self._job is not None:
                    get_monitor().remove(self._job)
                    self._job = None
        except Exception as exc:
            swallowed("workers.finish", exc)

    def collect(self, *, exiting: bool = False) -> int:
        """File every record delivered so far under its parent task; returns how many.

        With ``exiting`` (the inbox is closing), the tasks that workers started
        and never delivered are reported lost, in one warning, whether or not
        their process still runs: no record of them can come any more.

        Records mean workers flushed their spans, to a shared export spool if
        one is configured: this process's durable exporters are told to
        replay it (a worker may have ended before it could send them).
        """
        try:
            with self._lock:
                seen, filed = self._collect(exiting=exiting)
        except Exception as exc:
            swallowed("workers.collect", exc)
            return 0
        if seen:
            _notice_spool()
        return filed

    def _collect(self, *, exiting: bool = False) -> tuple[int, int]:
        from .task import _running_task
        from .taskfile import TaskFileError, load_task

        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return 0, 0
        records: list[tuple[Task, Path]] = []
        journals: list[str] = []
        for name in names:
            if name.endswith(_journal.SUFFIX):
                journals.append(name)
                continue
            if name.startswith(NESTED_PREFIX):
                self._remove_if_ended(name)
                continue
            if name.startswith(".") or not name.endswith(".json"):
                continue  # a record still being written
            path = self.path / name
            try:
                # A value no record of ours holds (a figure out of range, of the wrong
                # type): absent, the rest of the record kept.
                records.append((load_task(path, mistyped=propagation.bad_record_values), path))
            except TaskFileError as exc:
                swallowed("workers.record", exc)
                _unlink(path)
        records.sort(key=lambda item: propagation.start_order(item[0]))
        filed = 0
        for record, path in records:
            target = self._parent_of(record, _running_task)
            if target is None:
                self.dropped += 1
                swallowed(
                    "workers.dropped",
                    LateRecordError(
                        f"the record of worker task {record.task_id} ({record.label!r}) arrived "
                        f"when no task it belongs to was running; dropped"
                    ),
                )
            else:
                target.add_subtask(record)
                filed += 1
            _unlink(path)
        self.collected += filed
        if journals:
            self._check_journals(journals, exiting=exiting)
        return len(records), filed

    def _remove_if_ended(self, name: str) -> None:
        """Remove the inbox of a worker (``workers-<pid>-*``) whose process has ended."""
        pid = name[len(NESTED_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(self.path / name, ignore_errors=True)

    def _check_journals(self, names: list[str], *, exiting: bool = False) -> None:
        """Count and report the tasks of ended workers that never delivered a record
        (``exiting``: of every worker, as this process exits and no record can come)."""
        lost_at_exit: list[tuple[int, dict[str, str]]] = []
        for name in names:
            try:
                pid = int(name[: -len(_journal.SUFFIX)])
            except ValueError:
                continue
            if not exiting and _alive(pid):
                continue  # its open tasks may still finish
            path = self.path / name
            try:
                undelivered = _journal.undelivered(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                swallowed("workers.record", exc)
                undelivered = []
            _unlink(path)
            for entry in undelivered:
                if (self.path / f"{entry.get('start')}.json").exists():
                    continue  # delivered as the worker was killed: filed next time
                self.lost += 1
                if exiting:
                    lost_at_exit.append((pid, entry))
                    continue
                swallowed(
                    "workers.lost",
                    LostWorkerTaskError(
                        f"worker task {entry.get('start')} ({entry.get('label')!r}), a subtask "
                        f"of task {entry.get('parent')}, never finished: its process {pid} "
                        f"ended first (killed, os._exit, Pool.terminate()); its CPU time is "
                        f"missing from that task's total_cpu()"
                    ),
                )
        if lost_at_exit:
            _report_lost_at_exit(lost_at_exit)

    def _parent_of(self, record: Task, running: Callable[[UUID], Task | None]) -> Task | None:
        parent_id = record.parent_id
        if parent_id is None:
            return None
        parent = running(parent_id)
        if parent is not None:
            return parent
        # The parent finished before the record came: its nearest running ancestor.
        ancestor = self._finished.get(parent_id)
        for _ in range(len(self._finished)):
            if ancestor is None:
                break
            task = running(ancestor)
            if task is not None:
                self.late += 1
                swallowed(
                    "workers.late",
                    LateRecordError(
                        f"the record of worker task {record.task_id} ({record.label!r}) arrived "
                        f"after its parent task {parent_id} finished (join worker processes "
                        f"before the task ends; a pool reused by later tasks: map "
                        f"with_parent(fn); a DataLoader with persistent_workers reports to "
                        f"the task it first ran in); filed under {task}, and not counted in "
                        f"the parent's figures"
                    ),
                )
                return task
            ancestor = self._finished.get(ancestor)
        return None

    def close(self) -> None:
        """Collect what is left and remove the directory (in the owning process only)."""
        if self.closed or self.pid != os.getpid():
            return
        self.closed = True
        self.collect(exiting=True)
        with self._lock:
            if self._job is not None:
                get_monitor().remove(self._job)
                self._job = None
        shutil.rmtree(self.path, ignore_errors=True)


def _report_lost_at_exit(lost: list[tuple[int, dict[str, str]]]) -> None:
    """One warning for the worker tasks still open as this process closes its inbox,
    each counted under ``workers.lost``."""
    labels = ", ".join(repr(entry.get("label")) for _, entry in lost[:LOST_NAMED])
    more = f" and {len(lost) - LOST_NAMED} more" if len(lost) > LOST_NAMED else ""
    pids = ", ".join(str(pid) for pid in sorted({pid for pid, _ in lost}))
    count_more("workers.lost", len(lost) - 1)  # swallowed() counts one
    swallowed(
        "workers.lost",
        LostWorkerTaskError(
            f"{len(lost)} worker task(s) never finished: {labels}{more}, of worker "
            f"process(es) {pids}, still running (or killed) as process {os.getpid()} exited "
            f"(a pool or process not joined before the end of the program); their CPU time "
            f"is missing from their parent tasks' total_cpu()"
        ),
        interval=0.0,
    )


def sole_running_leaf(tasks: Collection[Task]) -> Task | None:
    """The one task of ``tasks`` still running that is no ancestor of another running
    one of them; ``None`` when there are none, or several."""
    running = [task for task in tasks if (state := task._tm) is not None and not state.finished]
    ancestors: set[UUID] = set()
    for task in running:
        state = task._tm
        parent = state.parent if state is not None else None
        while parent is not None and parent.task_id not in ancestors:
            ancestors.add(parent.task_id)
            parent_state = parent._tm
            parent = parent_state.parent if parent_state is not None else None
    leaves = [task for task in running if task.task_id not in ancestors]
    return leaves[0] if len(leaves) == 1 else None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended and not yet reaped, does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell: not reported as lost


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_inbox: Inbox | None = None
_inbox_lock = threading.Lock()


def current_inbox() -> Inbox | None:
    """This process's inbox, if it has one."""
    return _inbox


def ensure_inbox() -> Inbox:
    """This process's inbox, created on first use."""
    global _inbox
    inbox = _inbox
    if inbox is not None:
        if inbox.pid == os.getpid() and not inbox.closed:
            # Removed while this process ran (a cleaner of the temporary directory,
            # say), it would take no worker's record any more: made again, in place,
            # for the workers that already know it too.
            with contextlib.suppress(OSError):
                os.mkdir(inbox.path, 0o700)
        return inbox
    with _inbox_lock:
        if _inbox is None:
            _inbox = inbox = Inbox(_make_inbox_directory())
            atexit.register(_close_at_exit)
            mp_util: Any = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                # A multiprocessing worker exits without atexit; in any process, the
                # hook runs after multiprocessing has ended pools and joined processes
                # (their records delivered, or their open tasks reported lost).
                mp_util.Finalize(None, close_inbox, exitpriority=EXIT_PRIORITY)
                inbox.deferred_to_multiprocessing = True
        return _inbox


def _make_inbox_directory() -> Path:
    """A new private directory for this process's inbox: inside the parent's inbox when
    this process is a worker (the parent removes it once this process has ended), else
    in the temporary directory, named after this process, where the inboxes of
    processes that ended without exit hooks are removed first (see
    :mod:`taskmeter._stale_inboxes`)."""
    inherited = propagation.inherited
    parent_inbox = inherited.subtask_dir if inherited is not None else None
    if parent_inbox is not None:
        try:
            nested = tempfile.mkdtemp(prefix=f"{NESTED_PREFIX}{os.getpid()}-", dir=parent_inbox)
            return Path(absolute(nested))
        except OSError:
            pass  # the parent's is gone, or not this user's
    return _stale_inboxes.make_inbox_directory()


def _close_at_exit() -> None:
    """The atexit hook: close the inbox, unless multiprocessing's exit hook will (it runs
    after this one, and ends the pools first)."""
    inbox = _inbox
    if inbox is None:
        return
    mp_util: Any = sys.modules.get("multiprocessing.util")
    if (
        inbox.deferred_to_multiprocessing
        and inbox.pid == os.getpid()
        and mp_util is not None
        and not getattr(mp_util, "_exiting", True)
    ):
        return
    close_inbox()


def close_inbox() -> None:
    """Close this process's inbox now (at exit): what workers left undelivered is
    reported lost, and the directory removed."""
    inbox = _inbox
    if inbox is not None:
        try:
            inbox.close()
        except Exception as exc:
            swallowed("workers.close", exc)


def expect_workers(task: Task) -> Inbox:
    """The inbox, after noting that ``task`` may have workers."""
    inbox = ensure_inbox()
    inbox.expect(task)
    return inbox


def note_handed_over(task: Task) -> str | None:
    """Note that ``task`` is being pickled, to be handed to a worker perhaps (as
    ``Task(..., parent=task)`` there): if it runs in this process, the records of
    tasks naming it are filed under it (see :meth:`Inbox.watch`), and the inbox they
    go to (made now, where this process has none yet) is returned, for the pickle to
    carry: a worker started before the task (a pool made outside any task) knows no
    inbox otherwise.  ``None`` where ``task`` does not run here.  Never raises."""
    try:
        state = getattr(task, "_tm", None)
        if state is None or not state.started or state.finished or task.pid != os.getpid():
            return None
        inbox = ensure_inbox()
        if inbox.closed or inbox.pid != os.getpid():
            return None  # this process is exiting: no record could be filed any more
        inbox.watch(task)
        return str(inbox.path)
    except Exception as exc:
        swallowed("workers.watch", exc)
        return None


def fork_without_task() -> Task | None:
    """As a thread where no task runs forks: the task whose workers the child's tasks
    are, if tasks of this process have workers and exactly one of them forked them.

    ``multiprocessing.Pool`` forks the workers that replace others (with
    ``maxtasksperchild``, or after one died) from a thread of its own: their
    tasks belong to the task that forked the pool's first workers.  With
    none, or several, the child's tasks have no parent here: warned once.
    """
    inbox = _inbox
    if inbox is None or inbox.expecting <= 0 or inbox.pid != os.getpid():
        return None
    task = inbox.sole_forking_task()
    if task is not None or _started_process_names_its_parent():
        return task
    warn_once(
        "workers.fork.no_task",
        "a process was forked from thread %r, where no task runs, while tasks of this "
        "process have workers, not one alone: its tasks are not their subtasks (a "
        "multiprocessing Pool forks the workers that replace others, with maxtasksperchild "
        "or after one died, from a thread of its own); make the pool with "
        "taskmeter.multiprocess.get_context() or initializer=init_worker",
        threading.current_thread().name,
    )
    return None


def _started_process_names_its_parent() -> bool:
    """Whether the process this thread is forking names its tasks' parent itself: one
    of a :func:`taskmeter.multiprocess.get_context` context (which says so itself
    when it cannot tell), or one whose initializer is
    :func:`taskmeter.multiprocess.init_worker` given a context (a ``Pool``'s or a
    ``ProcessPoolExecutor``'s worker)."""
    multiprocess: Any = sys.modules.get("taskmeter.multiprocess")
    if multiprocess is None:
        return False  # neither could be in use
    process = _process_being_started()
    if process is None:
        return False
    if isinstance(process, multiprocess._CarriesTaskContext):
        return True
    args = tuple(getattr(process, "_args", ()))
    for index, arg in enumerate(args[:-1]):
        if arg is multiprocess.init_worker:
            initargs = args[index + 1]
            return (
                isinstance(initargs, tuple | list)
                and len(initargs) > 0
                and isinstance(initargs[0], multiprocess.WorkerContext)
            )
    return False


def _process_being_started() -> Any:
    """The ``multiprocessing`` process whose ``start()`` this thread is in, if any."""
    import multiprocessing.process

    start = multiprocessing.process.BaseProcess.start.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is start:
            return frame.f_locals.get("self")
        frame = frame.f_back  # type: ignore[assignment]
    return None


def span_parent_of(
    task: Task, *, current: bool
) -> tuple[propagation.TraceParent | None, str | None]:
    """The span context (``traceparent``, ``tracestate``) a worker of ``task`` continues.

    With ``current``, ``task`` is the current task and the current span (the
    task's, or a span of the caller inside it) is the parent, as it is for
    tasks in the same process; otherwise the task's own span.
    """
    from opentelemetry import trace

    if current:
        context = trace.get_current_span().get_span_context()
    else:
        task_state = task._tm  # None: finished, its span ended
        span = task_state.span if task_state is not None else trace.INVALID_SPAN
        context = span.get_span_context()
    if context.is_valid:
        state = context.trace_state.to_header() if context.trace_state else ""
        parent = propagation.TraceParent(
            context.trace_id, context.span_id, int(context.trace_flags) & 0xFF
        )
        return parent, state or None
    if task.trace_id and task.span_id:
        return propagation.TraceParent(int(task.trace_id, 16), int(task.span_id, 16), 1), None
    return None, None


# ---------------------------------------------------------------- worker side


def child_started(parent: Task | None, *, current: bool = True) -> None:
    """In a forked child (called by the task module's fork hook).

    ``parent`` is the task that was current in the forking thread, or with
    ``current=False`` the one :func:`fork_without_task` found (a copy of the
    parent's): the child's top-level tasks adopt it and deliver to the
    parent's inbox.  With none, a parent read from the environment still
    applies, with spans flushed as in any worker.
    """
    global _inbox, _inbox_lock, _flush
    inbox, _inbox = _inbox, None  # the parent's, not this process's
    _inbox_lock = threading.Lock()
    _flush = _FlushState()
    try:
        drop_inherited_connections()
    except Exception as exc:
        swallowed("workers.connections", exc)
    if parent is not None:
        # The forking thread's current span (the task's, or one inside it) is
        # a copy here, with the parent's ids; another thread's, the task's own.
        traceparent, tracestate = span_parent_of(parent, current=current)
        propagation.inherit(
            propagation.Inherited(
                parent.task_id,
                inbox.path if inbox is not None else None,
                traceparent,
                tracestate,
                flush_spans=True,
            )
        )
        return
    inherited = propagation.inherited
    if inherited is not None and not inherited.flush_spans:
        propagation.inherit(
            propagation.Inherited(
                inherited.parent_id,
                inherited.subtask_dir,
                inherited.traceparent,
                inherited.tracestate,
                flush_spans=True,
            )
        )


class _FlushState:
    __slots__ = ("exit_hook_pid", "skip_until", "thread")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.skip_until = 0.0
        self.exit_hook_pid = 0


_flush = _FlushState()


def _flushable_providers() -> list[Any]:
    """The tracer providers, then the global meter provider, that have something to flush.

    The meter provider holds the task metrics and Measurements that a
    :class:`~taskmeter.measure.MeasurementSpanProcessor` recorded here: a
    worker that ends without running exit hooks would lose them.
    """
    from opentelemetry import trace

    from . import tracing

    candidates: list[Any] = [tracing.current_tracer_provider(), trace.get_tracer_provider()]
    if "opentelemetry.sdk.metrics" in sys.modules:
        from opentelemetry import metrics

        candidates.append(metrics.get_meter_provider())
    providers: list[Any] = []
    for provider in candidates:
        if provider is not None and provider not in providers and hasattr(provider, "force_flush"):
            providers.append(provider)
    return providers


def _flush_now(providers: list[Any]) -> None:
    for provider in providers:
        try:
            provider.force_flush()
        except Exception as exc:
            swallowed("workers.flush", exc)


def flush_spans() -> None:
    """Export this worker's finished spans (and metrics) now, waiting at most
    :data:`FLUSH_TIMEOUT_S`.

    Without an OpenTelemetry SDK this does nothing.  After a flush that timed
    out (a slow or unreachable collector) the worker does not wait again for
    :data:`FLUSH_BACKOFF_S`; the SDK still exports on its own schedule.
    """
    register_exit_flush()
    _flush_bounded()


def _flush_bounded(skip: Collection[Any] = ()) -> None:
    state = _flush
    providers = [p for p in _flushable_providers() if p not in skip]
    if not providers:
        return
    if state.thread is not None and state.thread.is_alive():
        return  # an earlier flush is still exporting
    if time.monotonic() < state.skip_until:
        return
    thread = threading.Thread(
        target=_flush_now, args=(providers,), name="taskmeter-flush", daemon=True
    )
    state.thread = thread
    thread.start()
    thread.join(FLUSH_TIMEOUT_S)
    if thread.is_alive():
        state.skip_until = time.monotonic() + FLUSH_BACKOFF_S
        warn_once(
            "workers.flush.timeout",
            "exporting a worker's spans took longer than %.0f s; not waiting for the "
            "exporter for %.0f s (spans of a worker killed meanwhile are lost)",
            FLUSH_TIMEOUT_S,
            FLUSH_BACKOFF_S,
        )


_shut_down_at_exit: tuple[int, weakref.WeakSet[Any]] = (0, weakref.WeakSet())
"""Providers that this process (its pid first) shuts down itself at exit, boundedly."""


def shut_down_at_exit(*providers: Any) -> None:
    """Note that ``providers`` are shut down (so flushed) at this process's exit by their
    owner, within a bound: the exit flush leaves them to it rather than wait twice.
    (Not in a process forked from this one, which exits without exit hooks.)"""
    global _shut_down_at_exit
    pid, known = _shut_down_at_exit
    if pid != os.getpid():
        known = weakref.WeakSet()
        _shut_down_at_exit = (os.getpid(), known)
    for provider in providers:
        known.add(provider)


def _flush_at_exit() -> None:
    pid, known = _shut_down_at_exit
    _flush_bounded(skip=known if pid == os.getpid() else ())


def register_exit_flush() -> None:
    """Flush spans when this multiprocessing worker exits (once per process), waiting
    no longer than :func:`flush_spans` does."""
    state = _flush
    pid = os.getpid()
    if state.exit_hook_pid == pid:
        return
    state.exit_hook_pid = pid
    mp_util: Any = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _flush_at_exit, exitpriority=EXIT_PRIORITY)
