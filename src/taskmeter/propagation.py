"""Tasks of child processes that become subtasks of the parent's task.

``taskmeter run`` (or any program that sets these variables for a child)
passes its task to the processes it starts through the environment:

``TASKMETER_PARENT_TASK``
    the id of the parent task;
``TASKMETER_SUBTASK_DIR``
    a directory where the child delivers the records of its tasks;
``TRACEPARENT``, ``TRACESTATE``
    the parent's span context, in W3C Trace Context form (the names the
    OpenTelemetry specification gives for environment carriers).

In the child, a task that starts with no parent in its process *adopts* the
parent named there: its ``parent_id`` is the parent task's id, it is marked
``subprocess=True``, and its span continues the parent's trace.  When such a
task finishes, its record (with its subtasks) is written atomically as
``<task id>.json`` into the subtask directory, and the parent adds it to its
own subtasks (:func:`collect`).  A process whose tasks reset its RSS
high-water mark also leaves its peak since it started there
(:func:`publish_process_peak`), which a reset hides from the kernel's figure.

The variables are read once, when this module is imported; :func:`refresh`
reads them again.  When they are absent, :data:`inherited` is ``None`` and the
hooks in :class:`~taskmeter.task.Task` cost one global lookup.

Worker processes (:mod:`taskmeter.multiprocess`) use the same mechanism: in
a forked child, or a worker given a worker context, :func:`inherit` sets the
parent task with ``flush_spans=True``, so that the worker's spans are
exported before each record is delivered (a worker may be ended with
``os._exit`` or ``SIGTERM``, when no exit hook runs).  A ``multiprocessing``
child that read its parent from the environment flushes too.

A running task pickled in its process carries that process's inbox: a process of
the same host that unpickles it notes it in :data:`handed_parents`, and a task
given it as ``Task(..., parent=task)`` delivers its record there (whatever the
worker was started with: a pool made before any task ran, say), as a worker's
does (see :func:`note_handed`).
"""

from __future__ import annotations

import os
import re
import sys
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from ._files import absolute

if TYPE_CHECKING:
    from uuid import UUID

    from opentelemetry.context import Context

    from .task import Task

__all__ = [
    "ENV_PARENT_TASK",
    "ENV_SUBTASK_DIR",
    "ENV_TRACEPARENT",
    "ENV_TRACESTATE",
    "Inherited",
    "TraceParent",
    "adopt",
    "child_environment",
    "collect",
    "deliver",
    "format_traceparent",
    "handed_parents",
    "inherit",
    "inherited",
    "note_handed",
    "parse_traceparent",
    "refresh",
]

ENV_PARENT_TASK = "TASKMETER_PARENT_TASK"
ENV_SUBTASK_DIR = "TASKMETER_SUBTASK_DIR"
ENV_TRACEPARENT = "TRACEPARENT"
ENV_TRACESTATE = "TRACESTATE"

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)


class TraceParent:
    """A span context as a W3C ``traceparent`` carries it."""

    __slots__ = ("flags", "span_id", "trace_id")

    def __init__(self, trace_id: int, span_id: int, flags: int = 1) -> None:
        if not 0 < trace_id < 1 << 128:
            raise ValueError(f"trace id must be a non-zero 128-bit integer, got {trace_id!r}")
        if not 0 < span_id < 1 << 64:
            raise ValueError(f"span id must be a non-zero 64-bit integer, got {span_id!r}")
        if not 0 <= flags < 256:
            raise ValueError(f"trace flags must fit in one byte, got {flags!r}")
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags

    @property
    def sampled(self) -> bool:
        """Whether the parent was sampled (bit 0 of the flags)."""
        return bool(self.flags & 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceParent):
            return NotImplemented
        return (self.trace_id, self.span_id, self.flags) == (
            other.trace_id,
            other.span_id,
            other.flags,
        )

    def __hash__(self) -> int:
        return hash((self.trace_id, self.span_id, self.flags))

    def __repr__(self) -> str:
        return f"TraceParent({format_traceparent(self)!r})"


def parse_traceparent(text: str) -> TraceParent | None:
    """Parse a W3C ``traceparent`` header value; ``None`` if it is not a valid one.

    Version ``00`` must be exactly four fields; later versions may append
    fields, which are ignored (as the W3C recommendation asks); version
    ``ff`` and all-zero ids are invalid.
    """
    match = _TRACEPARENT.fullmatch(text.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"]):
        return None
    trace_id = int(match["trace_id"], 16)
    span_id = int(match["span_id"], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, int(match["flags"], 16))


def format_traceparent(parent: TraceParent) -> str:
    """The ``traceparent`` value (version 00) for ``parent``."""
    return f"00-{parent.trace_id:032x}-{parent.span_id:016x}-{parent.flags:02x}"


def _writable_directory(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


class Inherited:
    """The parent task this process's top-level tasks adopt.

    Read from the environment (``taskmeter run``), or set by
    :mod:`taskmeter.multiprocess` in a worker process, where
    ``flush_spans`` is true: the process's spans are exported before each
    record is delivered.
    """

    __slots__ = ("flush_spans", "parent_id", "subtask_dir", "traceparent", "tracestate")

    def __init__(
        self,
        parent_id: UUID,
        subtask_dir: Path | None = None,
        traceparent: TraceParent | None = None,
        tracestate: str | None = None,
        *,
        flush_spans: bool = False,
    ) -> None:
        self.parent_id = parent_id
        self.subtask_dir = subtask_dir
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.flush_spans = flush_spans

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Inherited | None:
        """Read the variables; ``None`` when no parent task is named (or it is malformed)."""
        text = environ.get(ENV_PARENT_TASK, "").strip()
        if not text:
            return None
        from uuid import UUID

        from ._log import config_warning

        try:
            parent_id = UUID(text)
        except ValueError:
            config_warning(
                f"env.{ENV_PARENT_TASK}",
                "ignoring %s=%r: not a task id; tasks of this process have no parent",
                ENV_PARENT_TASK,
                text,
            )
            return None
        directory = environ.get(ENV_SUBTASK_DIR, "").strip()
        if directory and not _writable_directory(directory):
            config_warning(
                f"env.{ENV_SUBTASK_DIR}",
                "ignoring %s=%r: not a directory this process can write to; the records of "
                "its top-level tasks do not reach their parent task (their spans are still "
                "exported)",
                ENV_SUBTASK_DIR,
                directory,
            )
            directory = ""
        traceparent_text = environ.get(ENV_TRACEPARENT, "")
        traceparent = parse_traceparent(traceparent_text) if traceparent_text else None
        if traceparent_text and traceparent is None:
            config_warning(
                f"env.{ENV_TRACEPARENT}",
                "ignoring %s=%r: not a W3C traceparent; the spans of this process's "
                "top-level tasks start traces of their own",
                ENV_TRACEPARENT,
                traceparent_text,
            )
        tracestate = environ.get(ENV_TRACESTATE, "").strip() or None
        return cls(parent_id, Path(directory) if directory else None, traceparent, tracestate)

    def __repr__(self) -> str:
        return (
            f"Inherited(parent_id={self.parent_id}, subtask_dir={self.subtask_dir}, "
            f"traceparent={self.traceparent!r}, flush_spans={self.flush_spans})"
        )


inherited: Inherited | None = Inherited.from_environment(os.environ)
"""The parent named by this process's environment, or ``None`` (read at import)."""


HANDED_KEPT = 1024
"""How many handed parents (see :data:`handed_parents`) a process remembers."""

handed_parents: OrderedDict[UUID, Inherited] = OrderedDict()
"""Tasks running in other processes of this host that reached this one pickled, by
id, each with its process's inbox: a task given one as ``Task(..., parent=task)``
delivers its record there (see :func:`note_handed`).  Empty in most processes, so
the hooks in :class:`~taskmeter.task.Task` cost one global lookup."""


def note_handed(task: Task, directory: str, hostname: str) -> None:
    """Note that ``task``, running in another process, was unpickled here, carrying
    the inbox of that process (``directory``, on ``hostname``): the tasks given it as
    their parent deliver their records to it, as a worker's tasks do, whether or not
    this process was started as a worker of it.  A copy unpickled on another host,
    or in the task's own process, or whose inbox is gone, is not noted (it still
    stands for the task's id)."""
    from . import _process

    if task.pid == os.getpid() or hostname != _process.current_hostname():
        return
    if not _writable_directory(directory):
        return
    handed_parents[task.task_id] = Inherited(task.task_id, Path(directory), flush_spans=True)
    handed_parents.move_to_end(task.task_id)
    while len(handed_parents) > HANDED_KEPT:
        handed_parents.popitem(last=False)


def refresh(environ: Mapping[str, str] | None = None) -> Inherited | None:
    """Read the environment variables again (after changing ``os.environ``, say)."""
    global inherited
    inherited = Inherited.from_environment(os.environ if environ is None else environ)
    return inherited


def inherit(parent: Inherited | None) -> None:
    """Make ``parent`` the task this process's top-level tasks adopt (``None``: no parent).

    Used for worker processes; a child started by ``taskmeter run`` reads its
    parent from the environment instead.
    """
    global inherited
    if parent is not None and not isinstance(parent, Inherited):
        raise TypeError(f"expected an Inherited parent or None, not {type(parent).__name__}")
    inherited = parent


def child_environment(
    environ: Mapping[str, str],
    *,
    parent_id: UUID | str,
    traceparent: TraceParent | None,
    tracestate: str | None = None,
    subtask_dir: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """A copy of ``environ`` that makes a child's tasks subtasks of ``parent_id``.

    Variables of an outer parent are replaced, not kept: a child reports to
    its nearest parent.  ``subtask_dir`` is given to the child as an absolute
    path (the child may start in, or move to, another working directory).
    """
    env = dict(environ)
    env[ENV_PARENT_TASK] = str(parent_id)
    directory = None if subtask_dir is None else absolute(subtask_dir)
    _set_or_drop(env, ENV_SUBTASK_DIR, directory)
    _set_or_drop(
        env, ENV_TRACEPARENT, None if traceparent is None else format_traceparent(traceparent)
    )
    _set_or_drop(env, ENV_TRACESTATE, tracestate if traceparent is not None else None)
    return env


def _set_or_drop(env: MutableMapping[str, str], name: str, value: str | None) -> None:
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value


# ---------------------------------------------------------------- child side


def adopt(task: Task, context: Context | None) -> Context | None:
    """Make a task that has no parent in this process a subtask of the inherited one.

    Called by :meth:`Task.start` (only when :data:`inherited` is set) with the
    context its span would start in; returns the context to use instead.
    A task whose parent was named by id adopts the inherited parent only if
    that is the id.  The span continues the inherited trace unless a span is
    already current in this process (then the task nests under it, as any
    task does).
    """
    if handed_parents and task.subprocess:
        handed = handed_parents.get(task.parent_id)  # type: ignore[arg-type]
        if handed is not None:  # given a task of another process, its inbox known
            if handed.subtask_dir is not None:
                _note_start(handed.subtask_dir, task)
            return context
    parent = inherited
    if parent is None or task.parent_id not in (None, parent.parent_id):
        return context
    task.parent_id = parent.parent_id
    task.subprocess = True
    if parent.flush_spans and parent.subtask_dir is not None:
        _note_start(parent.subtask_dir, task)
    if context is not None or parent.traceparent is None:
        return context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    if trace.get_current_span().get_span_context().is_valid:
        return None
    remote = parent.traceparent
    state = TraceState.from_header([parent.tracestate]) if parent.tracestate else None
    span_context = SpanContext(
        trace_id=remote.trace_id,
        span_id=remote.span_id,
        is_remote=True,
        trace_flags=TraceFlags(remote.flags),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def deliver(task: Task) -> None:
    """Write the record of a finished task whose parent is in another process.

    Called by :meth:`Task._finish` for tasks with no parent in this process:
    those that adopted the inherited parent, or were given a task of another
    process as ``parent`` (both are marked ``subprocess``); others are left
    alone.  In a worker process (one given its parent by ``fork`` or a worker
    context, or any ``multiprocessing`` child, such as a spawned worker that
    read its parent from the environment) the spans are exported first.  The
    record is written as ``<task id>.json`` into the parent's directory, which
    must exist (a parent that has gone is not re-created).  A failure is
    counted and logged, never raised.  A task given a parent that reached this process
    pickled (:func:`note_handed`) delivers to that parent's process.
    """
    parent = handed_parents.get(task.parent_id) if handed_parents else None  # type: ignore[arg-type]
    if parent is None:
        parent = inherited
    if parent is None or not task.subprocess or task.parent_id is None:
        return
    if parent.flush_spans or _multiprocessing_child():
        from . import _workers

        _workers.flush_spans()
    if parent.subtask_dir is None:
        return
    try:
        write_record(parent.subtask_dir, task)
        publish_process_peak(parent.subtask_dir)
    except Exception as exc:
        from ._log import swallowed

        swallowed("propagation.deliver", exc)
    finally:
        if parent.flush_spans:
            _note_delivered(parent.subtask_dir, task)


def _note_start(directory: Path, task: Task) -> None:
    """Note in the worker's journal that ``task`` started (see :mod:`taskmeter._journal`)."""
    try:
        from . import _journal

        _journal.started(directory, task)
    except Exception as exc:  # the parent's directory gone: the record will fail too
        from ._log import swallowed

        swallowed("propagation.journal", exc)


def _note_delivered(directory: Path, task: Task) -> None:
    try:
        from . import _journal

        _journal.delivered(directory, task)
    except Exception as exc:
        from ._log import swallowed

        swallowed("propagation.journal", exc)


def _multiprocessing_child() -> bool:
    """Whether this process was started by ``multiprocessing`` (which ends it with
    ``os._exit``, running no exit hook, for ``fork`` and ``forkserver``)."""
    module = sys.modules.get("multiprocessing")
    return module is not None and module.parent_process() is not None


def write_record(directory: Path, task: Task) -> None:
    """Write ``task`` as ``<task id>.json`` into the existing ``directory``, atomically.

    The record goes to a temporary file readable by its owner only, then is
    renamed into place: a collector never sees part of one, and delivering a
    task again replaces its record.
    """
    import contextlib
    import tempfile

    from .taskfile import dump_task

    text = dump_task(task) + "\n"  # an extra field JSON cannot hold in a JSON form
    name = f"{task.task_id}.json"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp_name, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


PROCESS_PEAK_SUFFIX = ".rss-peak"
"""Ending of the empty files named ``<pid>-<bytes>.rss-peak`` that publish the RSS
peaks of a run's processes (see :func:`publish_process_peak`)."""

_published_peak: tuple[int, int] | None = None
"""The pid of this process and the last peak it published."""


def publish_process_peak(directory: Path) -> None:
    """Tell the run this process's RSS peak since it started, where a reset of the
    kernel's mark (a task's) may hide it.

    The run reads a process's peak from ``wait4`` when it ends: the mark since
    its last reset only.  The peak folded in before the resets is published as
    an empty file named ``<pid>-<bytes>.rss-peak`` (the name is the message:
    writers never overwrite each other), once for each new high.  Only into the
    directory the environment names (a run's): a worker pool's is not read for it.
    """
    global _published_peak
    from ._rusage import PROCESS_RSS_PEAK

    peak = PROCESS_RSS_PEAK.peak_bytes
    pid = os.getpid()
    published = _published_peak
    if peak is None or (published is not None and published[0] == pid and published[1] >= peak):
        return
    named = os.environ.get(ENV_SUBTASK_DIR, "").strip()
    if not named or Path(named) != directory:
        return
    fd = os.open(directory / f"{pid}-{peak}{PROCESS_PEAK_SUFFIX}", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    _published_peak = (pid, peak)


def published_process_peak(directory: str | os.PathLike[str]) -> int | None:
    """The largest RSS peak that the processes delivering to ``directory`` published
    (:func:`publish_process_peak`), in bytes; ``None`` if none did."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    peak: int | None = None
    for name in names:
        if not name.endswith(PROCESS_PEAK_SUFFIX):
            continue
        _, _, value = name[: -len(PROCESS_PEAK_SUFFIX)].partition("-")
        if value.isdigit() and (peak is None or int(value) > peak):
            peak = int(value)
    return peak


# ---------------------------------------------------------------- parent side


def collect(directory: str | os.PathLike[str]) -> list[Task]:
    """The task records delivered into ``directory``, in order of start time.

    A record that cannot be read is skipped with a warning naming it; the
    others are still returned.
    """
    from ._log import logger

    tasks: list[Task] = []
    try:
        names = sorted(
            name for name in os.listdir(directory) if name.endswith(".json") and name[0] != "."
        )  # a dot file: a temporary file of a write still in progress
    except FileNotFoundError:
        return tasks
    except OSError as exc:
        logger.warning("cannot list delivered subtasks in %s: %s", directory, exc)
        return tasks
    if not names:
        return tasks  # the common case: the task model need not be loaded
    from .taskfile import TaskFileError, load_task

    for path in (Path(directory, name) for name in names):
        try:
            tasks.append(load_task(path, mistyped=bad_record_values))
        except TaskFileError as exc:
            logger.warning("skipping a subtask record: %s", exc)
    tasks.sort(key=start_order)
    return tasks


def start_order(task: Task) -> tuple[bool, float]:
    """Sort key of tasks by start time; those without one come last, in their order
    (sorts are stable)."""
    start = task.start_time
    return (start is None, start or 0.0)


def bad_record_values(message: str) -> None:
    """A subtask record's value that is out of range or of the wrong type, read as
    absent: said once per process (a record delivered here, a worker's record)."""
    from ._log import warn_once

    warn_once("records.bad-values", "subtask record: %s", message)
