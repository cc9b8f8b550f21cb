"""The :class:`Task`: a coarse unit of work, measured, and published as a span.

The model and its field names are LensKit's (``lenskit.logging.tasks.Task``),
so task files load in either library.  Each running task is also an
OpenTelemetry span, child of the current span, whose attributes carry the
task's identity and figures.  They are all set in one call just before the
span ends (the SDK freezes a span's attributes before any processor sees
it), so processors see them in ``on_end``, not in ``on_start``.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID, SafeUUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as _Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
)
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    model_validator,
)

from . import _process, _unrecorded, _workers, propagation, settings
from . import attributes as attr
from ._context import SPAN_IDS_BY_INDEX as _SPAN_IDS_BY_INDEX
from ._context import SPAN_KEY as _SPAN_KEY
from ._context import attach_context as _attach_context
from ._context import current_context as _current_context
from ._fieldsets import FieldSets
from ._fieldsets import mark as _mark_fields_set
from ._fieldsets import thaw as _thaw_fields_set
from ._files import task_file_path
from ._log import logger, swallowed
from ._text import valid_text
from .figures import Figures
from .formats import friendly_duration as _friendly_duration
from .monitor import MonitorHandle, get_monitor
from .probes import active_probes
from .probes.base import (
    ProbeStates,
    begin_probes,
    end_probes,
    finish_probes,
    read_probes,
    release_dropped,
)
from .tracing import get_tracer, record_failure

__all__ = ["Task", "TaskStatus"]

_active_stack: ContextVar[tuple[Task, ...]] = ContextVar("taskmeter_active_tasks", default=())
"""The tasks active in this thread or asyncio task, innermost last."""


class _RunningRef(weakref.ref["Task"]):
    """A running task's entry in :data:`_running`: weak, so that a task dropped before
    it finished (an abandoned request's) is not kept; its probe states, kept
    here, are then ended (see :func:`_release_dropped`).  Not the task's whole
    state: its context token holds the context that holds the task."""

    __slots__ = ("key", "probe_states")

    probe_states: ProbeStates
    key: int | str
    """The task's id, as :data:`_running`'s key (see :func:`_registry_key`)."""


_running: dict[int | str, _RunningRef] = {}
"""Every running task of this process, by id (for parents given by id, and the monitor).

Keyed by ``task_id.int``: a ``UUID``'s hash is a Python method, which the
dictionary would call twice for every task (see :func:`_registry_key`)."""

_dropped: deque[_RunningRef] = deque()
"""Entries of running tasks that were garbage-collected, to release (see
:func:`_release_dropped`).  Filled by the weak references' callback, which may
run inside any allocation of any thread, so it only appends here."""
_dropped_append = _dropped.append


def _running_task(task_id: UUID) -> Task | None:
    """The running task of this process with ``task_id``, if there is one."""
    entry = _running.get(task_id.int if type(task_id) is UUID else _registry_key(task_id))
    return entry() if entry is not None else None


def _registry_key(task_id: object) -> int | str:
    """:data:`_running`'s key for ``task_id``: a ``UUID``'s integer.  An id of another
    type (a task made by ``model_construct``, which does not validate) is taken as the
    UUID it spells, or else as its text: the task runs all the same.  The hot path
    tests ``type(task_id) is UUID`` itself and calls this only otherwise."""
    if isinstance(task_id, UUID):
        return task_id.int
    try:
        return UUID(str(task_id)).int
    except ValueError:
        return str(task_id)


def _release_dropped() -> None:
    """Forget the running tasks that were dropped unfinished, and end their probes
    (nothing could finish such a task any more).  Called when a task starts."""
    release_dropped(
        _dropped,
        _running,
        _key_of,
        "task.dropped",
        "a task was garbage-collected while running (never finished): it is forgotten "
        "and its probes are ended; its span is not exported",
    )


def _key_of(entry: _RunningRef) -> int | str:
    return entry.key


def _load_fresh_store() -> None:
    """Import :func:`taskmeter._spans.set_fresh_attributes` (and so the OpenTelemetry
    SDK), which reading a task file (``taskmeter show``) does not need, and put it in
    place of the stand-in below."""
    global _set_fresh_attributes
    from ._spans import set_fresh_attributes

    _set_fresh_attributes = set_fresh_attributes


def _set_fresh_attributes_first(span: trace.Span, attributes: dict[str, Any]) -> None:
    """``_set_fresh_attributes`` until it is loaded: :meth:`Task.start` loads it before
    its readings where the SDK is imported; here for an SDK imported after that."""
    _load_fresh_store()
    _set_fresh_attributes(span, attributes)


_set_fresh_attributes = _set_fresh_attributes_first


class TaskStatus(str, Enum):  # noqa: UP042 - LensKit's definition, str() included
    """Statuses of a task record (LensKit's values)."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The members as plain globals: in Python 3.11 reading ``TaskStatus.RUNNING``
# goes through a descriptor, ten times the cost of a global, on every task.
_RUNNING = TaskStatus.RUNNING
_FINISHED = TaskStatus.FINISHED
_FAILED = TaskStatus.FAILED
_CANCELLED = TaskStatus.CANCELLED

_id_random = random.Random(os.urandom(32))


def _reseed_ids() -> None:
    _id_random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    # A forked child must not repeat its parent's ids.
    os.register_at_fork(after_in_child=_reseed_ids)

_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


_new_object = object.__new__
_UNKNOWN_SAFETY = SafeUUID.unknown
_set_slot = object.__setattr__


def _new_task_id() -> UUID:
    """A random (version 4) UUID.

    Drawn from a private generator seeded from ``os.urandom`` (and reseeded in
    forked children): task ids must be unique, not secret, and ``uuid4`` costs
    a system call that releases the GIL on every task.  The UUID is filled in
    as ``UUID.__init__`` would for ``int=``, without its argument checks (half
    a microsecond): the value is a version 4 UUID by construction.
    """
    task_id = _new_object(UUID)
    _set_slot(task_id, "int", (_id_random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET)
    _set_slot(task_id, "is_safe", _UNKNOWN_SAFETY)
    return task_id


def _dict_extract_values(data: object) -> object:
    # LensKit accepts subtasks as a mapping of id to task as well as a list.
    if isinstance(data, dict):
        return list(data.values())
    return data


_CONSTRUCTING_KEY = "taskmeter.constructing"
_CONSTRUCTING = {_CONSTRUCTING_KEY: True}
"""The validation context of ``Task(...)``: a new task is this process's (see pid)."""


class _State:
    """What a task holds besides its fields (kept out of pydantic's private attributes,
    whose lookups cost a microsecond each on the hot path).

    A finished task drops its state (see :func:`state_of`): what it held is
    then the defaults of a finished task, which are rebuilt when needed.
    """

    __slots__ = (
        "collect",
        "context",
        "ctx_token",
        "explicit_parent",
        "finished",
        "finishing",
        "id_text",
        "lock",
        "parent",
        "perf_start",
        "probe_states",
        "refresh",
        "remote_parent",
        "reset_hwm",
        "save_file",
        "save_refreshed",
        "span",
        "started",
        "subtask_index",
        "tracer",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parent: Task | None = None
        self.explicit_parent = False
        self.reset_hwm = True
        self.save_file: Path | None = None
        # Whether the monitor re-saves the file while the task runs (save_to_file's monitor).
        self.save_refreshed = True
        self.tracer: trace.Tracer | None = None
        self.subtask_index: dict[UUID, int] | None = None
        self.started = False
        self.finished = False
        # Claimed by the one finish() that goes through (under ``lock``).
        self.finishing = False
        # str(task_id), once needed (see _id_text).
        self.id_text: str | None = None
        self.span: trace.Span = trace.INVALID_SPAN
        self.ctx_token: object | None = None
        self.context: otel_context.Context | None = None
        self.perf_start = 0.0
        self.probe_states: ProbeStates = ()
        self.refresh: MonitorHandle | None = None
        # Set on tasks that may have worker processes: collects their records.
        self.collect: Callable[[Task], None] | None = None
        # A parent task of another process (given as ``parent=``), for the span.
        self.remote_parent: Task | None = None


class Task(BaseModel):
    """A task for logging and resource measurement, recorded as an OpenTelemetry span.

    A task may be *top-level* or a *subtask*.  By default a new task's parent
    is the task active in the current thread or asyncio task; tasks become
    active when started, which using the task as a context manager does::

        with Task("train model", file="runs/train.json") as task:
            ...
        print(task.duration, task.cpu_time, task.peak_memory)

    Args:
        label: Human-readable label; also the span name.
        file: A file to save the task to while it runs and when it finishes.  It is
            replaced atomically, so an empty path, an existing directory and an
            existing node that is not a regular file (a FIFO, a device) are a
            ``ValueError``.
        parent: The parent task, or its id.  If unspecified, the active task.
        reset_hwm: Whether to start a new memory high-water mark for this task
            (default ``True``).  Resetting never loses an enclosing task's
            peak: the current mark is folded into every open task first.  With
            ``False`` the task's peak includes whatever ran since the last
            reset.  Resetting is possible on Linux only.
        tracer: The tracer for this task's span (default: taskmeter's tracer,
            see :func:`taskmeter.use_tracer_provider`).
        data: Values for the task's fields, or extra fields to record.
    """

    model_config = ConfigDict(extra="allow")

    task_id: UUID = Field(default_factory=_new_task_id, frozen=True)
    """The task ID."""
    parent_id: UUID | None = None
    """The parent task ID."""
    subprocess: bool = False
    """Whether this task ran in a worker process of its parent; its CPU time is
    *not* included in the parent's ``cpu_time`` but is in ``total_cpu()``."""
    label: str
    """Human-readable task label."""
    hostname: str = Field(default_factory=_process.current_hostname)
    """The host name on which the task ran."""
    machine: str | None = Field(default_factory=settings.machine)
    """Project-meaningful label of the machine (``TASKMETER_MACHINE``)."""

    status: TaskStatus = TaskStatus.PENDING
    """The task's current status."""
    start_time: float | None = None
    """Start time (UNIX timestamp)."""
    finish_time: float | None = None
    """Completion time (UNIX timestamp)."""

    duration: float | None = None
    """Duration in seconds, from :func:`time.perf_counter` (so it may differ
    slightly from ``finish_time - start_time``)."""
    cpu_time: float | None = None
    """CPU time (user + system) consumed by this process during the task, in seconds."""
    peak_memory: int | None = None
    """Peak RSS of this process during the task, in bytes (see the README for
    platforms where the high-water mark cannot be reset)."""
    peak_gpu_memory: int | None = None
    """Peak GPU memory of this process during the task, in bytes."""

    system_power: float | None = Field(
        default=None, validation_alias=AliasChoices("system_power", "chassis_power")
    )
    """Energy of the whole system during the task, in joules (LensKit's name)."""
    cpu_power: float | None = None
    """Energy of the CPUs during the task, in joules (LensKit's name)."""
    gpu_power: float | None = None
    """Energy of the GPUs during the task, in joules (LensKit's name)."""

    subtasks: Annotated[list[SerializeAsAny[Task]], BeforeValidator(_dict_extract_values)] = Field(
        default_factory=list
    )
    """This task's subtasks."""

    # taskmeter's additions: optional, so LensKit reads them as extra fields.
    cpu_user_time: float | None = None
    """User CPU time of this process during the task, in seconds."""
    cpu_system_time: float | None = None
    """System CPU time of this process during the task, in seconds."""
    energy_sources: dict[str, str] = Field(default_factory=dict)
    """How each energy figure was obtained, by domain (``{"cpu": "rapl"}``)."""
    pid: int | None = Field(default_factory=_process.current_pid)
    """The id of the process that ran the task (``None`` in a record that
    did not say, such as LensKit's)."""
    trace_id: str | None = None
    """The task span's trace id (32 hex digits), when a span was recorded."""
    span_id: str | None = None
    """The task span's id (16 hex digits), when a span was recorded."""

    __slots__ = ("__weakref__", "_tm")
    if TYPE_CHECKING:
        _tm: _State | None

    @model_validator(mode="before")
    @classmethod
    def _record_without_pid(cls, data: Any, info: ValidationInfo) -> Any:
        # A record read from elsewhere that names no process (LensKit's task
        # files have no pid) gets None, not the reader's pid that the default
        # would give: ``taskmeter show`` would judge the reader's process.
        if (
            isinstance(data, dict)
            and "pid" not in data
            and not (isinstance(info.context, dict) and info.context.get(_CONSTRUCTING_KEY))
        ):
            return {**data, "pid": None}
        return data

    def __init__(
        self,
        label: str,
        *,
        file: str | os.PathLike[str] | None = None,
        parent: Task | UUID | None = None,
        reset_hwm: bool | None = None,
        tracer: trace.Tracer | None = None,
        **data: Any,
    ) -> None:
        parent_task: Task | None = None
        parent_id: UUID | None = None
        remote_parent: Task | None = None
        if parent is None:
            if "parent_id" not in data:
                stack = _active_stack.get()
                if stack:
                    # Task.current(), inline for its common case: the innermost
                    # task is running.
                    parent_task = stack[-1]
                    if parent_task.__dict__["status"] is not _RUNNING:
                        parent_task = Task.current()
                    if parent_task is not None:
                        parent_id = parent_task.__dict__["task_id"]
        elif isinstance(parent, Task):
            parent_id = parent.task_id
            live = _running_task(parent_id)
            if live is not None:
                # The task itself, or a copy of it (unpickled, copied) while it
                # runs here: the running task takes the subtask, as by id.
                parent_task = live
            elif _runs_elsewhere(parent):  # a copy left by fork, or unpickled: a worker's parent
                remote_parent = parent
                data["subprocess"] = True
            elif _copy_of_ended(parent):
                # A record of a task not running here (a copy, a task read from a
                # file): it stands for the task's id (as in LensKit, whose parent=
                # records the id): the span is the task's child, no record takes it.
                remote_parent = parent
            else:
                parent_task = parent
        elif isinstance(parent, UUID):
            parent_task = _running_task(parent)
            parent_id = parent
        else:
            raise TypeError(f"parent must be a Task, a UUID or None, not {type(parent).__name__}")
        if reset_hwm is not None and not isinstance(reset_hwm, bool):
            raise TypeError(f"reset_hwm must be a bool or None, not {type(reset_hwm).__name__}")
        if tracer is not None and not isinstance(tracer, trace.Tracer):
            raise TypeError(f"tracer must be an OpenTelemetry Tracer, not {tracer!r}")
        save_file = None if file is None else task_file_path(file)
        if not data and type(label) is str and _FAST_INIT:
            state = _task_init_defaults(self, label, parent_id)
        else:
            if parent_id is not None:
                data["parent_id"] = parent_id
            data["label"] = label
            self.__pydantic_validator__.validate_python(
                data, self_instance=self, context=_CONSTRUCTING
            )
            state = self._tm or state_of(self)
        state.parent = parent_task
        state.explicit_parent = parent is not None
        state.remote_parent = remote_parent
        if reset_hwm is not None:
            state.reset_hwm = reset_hwm
        state.tracer = tracer
        if save_file is not None:
            state.save_file = save_file

    def _init_defaults(self, label: str, parent_id: UUID | None) -> _State:
        # What validation would produce for a label (and parent) alone,
        # without its cost (a third of a task's overhead).  The field layout
        # is checked at import, and the tests compare both paths.
        values = dict(_FAST_DEFAULTS)
        values["task_id"] = _new_task_id()
        values["label"] = label
        values["hostname"] = _process.hostname
        values["machine"] = settings.machine()
        values["subtasks"] = []
        values["energy_sources"] = {}
        values["pid"] = _process.pid
        if parent_id is None:
            fields_set = _SHARED_CREATED_FIELDS
        else:
            values["parent_id"] = parent_id
            fields_set = _SHARED_CREATED_WITH_PARENT_FIELDS
        object.__setattr__(self, "__dict__", values)
        object.__setattr__(self, "__pydantic_fields_set__", fields_set)
        object.__setattr__(self, "__pydantic_extra__", {})
        object.__setattr__(self, "__pydantic_private__", None)
        state = _State()
        object.__setattr__(self, "_tm", state)
        return state

    if not TYPE_CHECKING:  # as in pydantic: mypy would allow any attribute of a Task

        def __getattr__(self, name: str) -> Any:
            # A task made by validation (model_validate, a task file,
            # unpickling) gets its state here, on first use: a file of a
            # hundred thousand tasks is read without making as many states
            # and locks, and the garbage collector has that many fewer
            # objects to walk.
            if name == "_tm":
                return _fresh_state(self)
            return super().__getattr__(name)

    def __copy__(self) -> Task:
        copy = super().__copy__()
        _thaw_fields_set(copy)
        object.__setattr__(copy, "_tm", _State())
        return copy

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Task:
        copy = super().__deepcopy__(memo)
        _thaw_fields_set(copy)
        object.__setattr__(copy, "_tm", _State())
        return copy

    def __setattr__(self, name: str, value: Any) -> None:
        # Tasks share their fields sets (see _fieldsets); pydantic adds to it.
        self._own_fields_set()
        super().__setattr__(name, value)
        if name == "subtasks" and self._tm is not None:
            self._tm.subtask_index = None  # it indexed the list just replaced

    @property
    def model_fields_set(self) -> set[str]:
        """The fields that have been set explicitly (pydantic's; this task's own set)."""
        return self._own_fields_set()

    @property
    def __fields_set__(self) -> set[str]:
        # pydantic's deprecated name for model_fields_set (it warns).
        self._own_fields_set()
        return super().__fields_set__

    def _own_fields_set(self) -> set[str]:
        # The task's fields set, made its own if it was shared.  The task's
        # lock keeps this from racing start(), finish() or update_resources(),
        # which replace the set under it; a task without state (finished)
        # has no more of those, and _thaw_lock orders two threads' thaws.
        with _thaw_lock:
            state = self._tm
            if state is None:
                return _thaw_fields_set(self)
            with state.lock:
                return _thaw_fields_set(self)

    # ---------------------------------------------------------------- lookup

    @staticmethod
    def current() -> Task | None:
        """The innermost running task of this thread or asyncio task."""
        stack = _active_stack.get()
        for task in reversed(stack):
            if task.status is _RUNNING:
                return task
        return None

    @staticmethod
    def root() -> Task | None:
        """The outermost running task of this thread or asyncio task."""
        for task in _active_stack.get():
            if task.status is _RUNNING:
                return task
        return None

    # ---------------------------------------------------------------- figures

    def total_cpu(self) -> float | None:
        """CPU time including worker-process subtasks, in seconds.

        Worker tasks are found at any depth below in-process subtasks, and
        each counts its own workers.
        """
        return TotalCpu()(self)

    @property
    def friendly_duration(self) -> str | None:
        """The duration in LensKit's short format (``"1m3.25s"``), or ``None``."""
        if self.duration is None:
            return None
        return _friendly_duration(self.duration)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the task: open its span, make it active and take the first readings."""
        state = self._tm or state_of(self)
        if state.started:
            raise RuntimeError(f"{self} cannot start: it is already {self.status.value}")
        state.started = True
        try:
            if _dropped:
                _release_dropped()
            stack = _active_stack.get()
            if stack and stack[-1].__dict__["status"] is not _RUNNING:
                # The innermost task here was finished in another thread or
                # asyncio task: it leaves this one's stack and span context now.
                stack = _leave_finished(stack)
            parent = state.parent
            values = self.__dict__
            # Before the start time: the first call detects the probes (energy,
            # GPU), which takes milliseconds that belong to no task; so is the
            # import of the one-step attribute store, once the SDK is there.
            probes = active_probes()
            if (
                _set_fresh_attributes is _set_fresh_attributes_first
                and "opentelemetry.sdk.trace" in sys.modules
            ):
                _load_fresh_store()
            wall_ns = time.time_ns()
            previous = _current_context()
            context = None

            try:
                context = self._span_parent_context() if state.explicit_parent else None
                if parent is None and (
                    propagation.inherited is not None or propagation.handed_parents
                ):
                    context = propagation.adopt(self, context)
                # The attributes are all set when the task ends, in one call: given
                # here, they would go through the sampler and be copied twice more.
                # The current context is given, not left for the SDK to read again.
                label = values["label"]
                if context is None:
                    context = previous
                span = (state.tracer or get_tracer()).start_span(
                    label if label.isascii() else valid_text(label),
                    context=context,
                    start_time=wall_ns,
                )
            except Exception as exc:
                # The SDK lets a span processor's exception through; the task goes
                # on measuring, without a span.
                swallowed("task.span.start", exc)
                span = trace.INVALID_SPAN
            state.span = span
            # Read again: a span processor may have attached a context in on_start
            # (baggage, say), which the task's context must hold, as the API's
            # set_span_in_context(span) after start_span would.
            previous = _current_context()
            span_context = span.get_span_context()
            if _SPAN_IDS_BY_INDEX:  # trace_id, span_id, is_valid (see _context)
                if span_context[5]:
                    # f"{id:032x}", at a third of its cost (no format-spec parsing)
                    values["trace_id"] = hex(span_context[0])[2:].zfill(32)
                    values["span_id"] = hex(span_context[1])[2:].zfill(16)
            elif span_context.is_valid:
                values["trace_id"] = f"{span_context.trace_id:032x}"
                values["span_id"] = f"{span_context.span_id:016x}"
            if (
                type(span) is NonRecordingSpan
                and span_context is trace.get_current_span(context).get_span_context()
            ):
                # The API's no-op tracer (no SDK) hands back the current span's context:
                # the task is in that trace, but has no span, and so no span id, of its own.
                values["span_id"] = None
            # The context is kept before it is attached, and the one it replaces
            # is at hand: an interrupt between the attach and the keeping of its
            # token is undone below.
            if _SPAN_KEY is not None:  # trace.set_span_in_context, inline
                context = _Context({**previous, _SPAN_KEY: span})
            else:
                context = trace.set_span_in_context(span, previous)
            state.context = context
            state.ctx_token = _attach_context(context)

            entry = _RunningRef(self, _dropped_append)
            entry.probe_states = ()
            task_id = values["task_id"]
            entry.key = key = task_id.int if type(task_id) is UUID else _registry_key(task_id)
            _running[key] = entry
            _active_stack.set((*stack, self))
            if parent is not None:
                _task_adopt(parent, self)

            values["status"] = _RUNNING
            values["start_time"] = wall_ns / 1e9
            values["pid"] = _process.pid  # the process that runs it (made before a fork, maybe)
            # The lock: see _own_fields_set.  ``with`` (here, in _finish and in
            # _adopt), never acquire() then ``try``: an interrupt (a second Ctrl-C)
            # raised just after acquire() returns would leave the lock held for good.
            with state.lock:
                _mark_fields_set(self, _START_FIELDS)
            # Readings come last, so the task is not charged for its own set-up.
            state.probe_states = entry.probe_states = begin_probes(probes, state.reset_hwm)
            state.perf_start = time.perf_counter()

            if state.save_file is not None:
                self._save(read=False)
                if state.save_refreshed:
                    state.refresh = get_monitor().add(self.monitor_refresh, name="task-file")
        except BaseException as exc:  # KeyboardInterrupt and the like, while starting
            # No ``with`` block will finish a task whose start raised: it is
            # finished here as cancelled (or it would stay current for good),
            # whatever step the interrupt came at.
            if state.ctx_token is None and state.context is not None:
                # Attached, but interrupted before its token was kept.
                if _current_context() is state.context:
                    _attach_context(previous)
                state.context = None
            if not state.perf_start:
                state.perf_start = time.perf_counter()
            self._finish(_status_for(exc), exc)
            raise

    def finish(self, status: TaskStatus = TaskStatus.FINISHED) -> None:
        """Finish the task with ``status``: take the final readings and end its span.

        ``status`` is ``finished``, ``failed`` or ``cancelled`` (a
        :class:`TaskStatus` or its value); anything else raises ``ValueError``.
        """
        final = TaskStatus(status)
        if final not in (_FINISHED, _FAILED, _CANCELLED):
            raise ValueError(
                f"a task finishes as finished, failed or cancelled, not {final.value!r}"
            )
        self._finish(final, None)

    def _finish(self, status: TaskStatus, error: BaseException | None) -> None:
        state = self._tm or state_of(self)
        if not state.started:
            raise RuntimeError(f"{self} cannot finish: it was never started")
        claimed = False
        try:
            # One finish goes through: another thread's, at the same moment, finds
            # the task claimed (its readings and span are the first one's to take
            # and end).  In the ``try``: an interrupt as the lock is taken, before
            # any finish claimed the task, still finishes it (below).
            with state.lock:
                if not (state.finished or state.finishing):
                    state.finishing = claimed = True
            if not claimed:
                if state.finished and self.pid != _process.pid:
                    # A copy of a task of the process this one was forked from: it
                    # is that process's to finish.  Leave it, as finishing would.
                    self._deactivate()
                    self._detach(state)
                    return
                logger.warning(
                    "%s already %s; finish() ignored",
                    self,
                    self.status.value if state.finished else "finishing",
                )
                return
            figures = Figures()
            figures.duration_s = time.perf_counter() - state.perf_start
            interrupted: BaseException | None = None
            try:
                finish_probes(state.probe_states, figures)
            except BaseException as exc:  # KeyboardInterrupt and the like, while reading
                # The task still finishes (or it would stay current and running
                # for good); the exception goes on once it has.
                interrupted = exc
            state.probe_states = ()  # ended (see _end_interrupted_finish)
            wall_ns = time.time_ns()
            figures.wall_time = wall_ns / 1e9
            refresh = state.refresh  # read once: save_to_file may drop it meanwhile
            if refresh is not None:
                state.refresh = None
                get_monitor().remove(refresh)

            values = self.__dict__
            stack = _active_stack.get()
            innermost = bool(stack) and stack[-1] is self
            with state.lock:
                _task_apply(self, figures)
                state.finished = True
                values["finish_time"] = figures.wall_time
                values["status"] = status
                _mark_fields_set(self, _FINISH_FIELDS)
                if state.save_file is None and innermost:
                    # A finished task's record may be kept a long time (a root
                    # keeps all its subtasks), and its state is now a finished
                    # task's defaults: dropping it saves the garbage collector two
                    # objects per record (see state_of).  This method goes on
                    # with ``state``; save_to_file checks, under the lock, that
                    # the state it gives a file is still the task's.  A task
                    # finished elsewhere than where it is innermost keeps it: the
                    # context that started it may still have to detach its span
                    # (see _leave_finished).
                    _set_slot(self, "_tm", None)
            if state.collect is not None:  # records of worker processes, before publishing
                state.collect(self)
            task_id = values["task_id"]
            _running.pop(task_id.int if type(task_id) is UUID else _registry_key(task_id), None)
            if innermost:  # _deactivate's common case, inline (1 % of a task)
                stack = stack[:-1]
                _active_stack.set(stack)
            else:
                self._deactivate()

            span = state.span
            try:
                if span.is_recording():
                    _set_fresh_attributes(span, _task_span_attributes(self, state))
                    if status is not _FINISHED:
                        _record_status(span, status, error)
                elif _unrecorded.sinks:  # metrics count the tasks of unsampled traces too
                    _unrecorded.task_ended(values["label"], self._span_attributes(state))
                span.end(end_time=wall_ns)
            except Exception as exc:  # a span processor's exception, let through by the SDK
                swallowed("task.span.end", exc)
            except BaseException as exc:  # an interrupt, here or in a span processor
                if interrupted is None:
                    interrupted = exc
                # Come before the end (as the attributes were set), it would leave
                # the span open for good: it ends, with what it has.  One that
                # came in a processor's on_end finds it ended already.
                try:
                    if span.is_recording():
                        span.end(end_time=wall_ns)
                except Exception as end_exc:
                    swallowed("task.span.end", end_exc)
            token = state.ctx_token
            if type(token) is Token and _current_context() is state.context:
                # _detach's common case, inline: the context it attached is current.
                try:
                    token.var.reset(token)
                    state.ctx_token = None
                    state.context = None
                except (ValueError, RuntimeError):  # a copy of it, or reset already
                    self._detach(state)
            else:
                self._detach(state)
            if innermost and stack and stack[-1].__dict__["status"] is not _RUNNING:
                # The task below this one finished first (here, or in another
                # thread): its span context, under this one's, stops being current.
                _leave_finished(stack)
            # A finished task keeps its ids (trace_id, span_id), not the span:
            # a root of 100k subtasks must not hold 100k spans.
            state.span = trace.INVALID_SPAN
            if state.save_file is not None:
                self._save()
            if state.parent is None and (
                propagation.inherited is not None or propagation.handed_parents
            ):
                propagation.deliver(self)
            if interrupted is not None:
                raise interrupted
        except BaseException:
            # An interrupt (a second Ctrl-C) came at a step of its own, outside
            # the readings and the span's end, which take theirs in stride: the
            # task is finished and left all the same, and the interrupt goes on.
            # Not where another finish has the task (it ends it).
            if claimed or not (state.finishing or state.finished):
                self._end_interrupted_finish(state, status)
            raise

    def _end_interrupted_finish(self, state: _State, status: TaskStatus) -> None:
        """Do what an interrupted :meth:`_finish` left undone (each step is a no-op
        where it was done): the probes end, the record is finished, the task is
        no longer running nor active here, its span ends and its context leaves."""
        values = self.__dict__
        if state.probe_states:
            end_probes(state.probe_states)
            state.probe_states = ()
        refresh = state.refresh
        if refresh is not None:
            state.refresh = None
            get_monitor().remove(refresh)
        if not state.finished:
            with state.lock:
                state.finished = True
                values["status"] = status
                if values.get("finish_time") is None:
                    values["finish_time"] = time.time()
                _mark_fields_set(self, _FINISH_FIELDS)
        _running.pop(_registry_key(values["task_id"]), None)
        self._deactivate()
        span = state.span
        try:
            if span.is_recording():
                span.end()
        except Exception as exc:
            swallowed("task.span.end", exc)
        self._detach(state)
        state.span = trace.INVALID_SPAN

    def update(self) -> None:
        """Refresh the resource figures and save the file (if one is set)."""
        self.update_resources()
        state = self._tm
        if state is not None and state.save_file is not None:
            self._save()

    def monitor_refresh(self) -> None:
        """Called periodically by the monitor thread while the task runs.

        The running subtasks of this process are refreshed too, so that the
        file of a process that is killed shows every open task's figures.
        """
        if self.status is not _RUNNING:
            return
        state = self._tm
        if state is not None and state.save_file is not None:
            self._save()  # reads every running task of the tree as it writes it
            return
        # Down the tree (a running subtask may be below finished ones).  The
        # readings are taken subtasks first, each task after all of its
        # subtasks (the walk's order reversed: it yields every task before
        # the tasks below it), so that no task's figures are older, and
        # smaller, than a subtask's.
        running = [
            task
            for task in _each_once(self)
            if task is not self and task.status is _RUNNING and _running_task(task.task_id) is task
        ]
        for task in reversed(running):
            try:
                task.update_resources()
            except Exception as exc:
                swallowed("task.refresh", exc)
        self.update()

    def update_resources(self) -> Figures:
        """Take the current figures, store them in the fields and return them.

        A finished task returns its final figures unchanged.
        """
        state = state_of(self)
        if not state.started:
            raise RuntimeError(f"{self} has not started")
        if state.finished:
            return self._final_figures()
        if not state.perf_start:
            # Starting in another thread, its first readings not taken yet: it
            # has no figures (a duration would count from the clock's origin).
            return Figures(wall_time=time.time())
        figures = self._read(state)
        with state.lock:
            if state.finished:  # finished meanwhile
                return self._final_figures()
            self._apply(figures)
            _mark_fields_set(self, _MEASURED_FIELDS)
        return figures

    def add_subtask(self, task: Task) -> None:
        """Add a subtask, or replace the record of one with the same id.

        Raises ``ValueError`` if ``task`` is this task or holds it (or a
        shallow copy sharing its subtask list) among its subtasks: the tree
        would become a cycle, which no walk over it would leave.
        """
        if not isinstance(task, Task):
            raise TypeError(f"expected a Task, got {type(task).__name__}")
        if _holds(task, self):
            raise ValueError(f"{task} cannot be a subtask of {self}: it is or contains {self}")
        state = state_of(self)
        with state.lock:
            subtasks = self.subtasks
            index = state.subtask_index
            if index is None or len(index) != len(subtasks):
                index = {t.task_id: i for i, t in enumerate(subtasks)}
                state.subtask_index = index
            position = index.get(task.task_id)
            if position is not None and (
                position >= len(subtasks) or subtasks[position].task_id != task.task_id
            ):
                # The list was reordered in place (sorted, say): look again.
                index = {t.task_id: i for i, t in enumerate(subtasks)}
                state.subtask_index = index
                position = index.get(task.task_id)
            if position is not None:
                subtasks[position] = task
            else:
                index[task.task_id] = len(subtasks)
                subtasks.append(task)
        if task.parent_id is None:
            task.parent_id = self.task_id

    def _adopt(self, task: Task) -> None:
        # add_subtask for a task starting under this one: its id is new, so it
        # cannot replace a record, and its parent_id is already this task's.
        state = self._tm or state_of(self)
        with state.lock:
            subtasks = self.__dict__["subtasks"]
            index = state.subtask_index
            if index is not None and len(index) == len(subtasks):
                index[task.__dict__["task_id"]] = len(subtasks)
            subtasks.append(task)

    def save_to_file(self, path: str | os.PathLike[str], monitor: bool = True) -> None:
        """Save this task to ``path`` now, and again while it runs and when it finishes.

        With ``monitor`` the monitor thread re-saves a running task every
        ``TASKMETER_MONITOR_INTERVAL`` seconds (10 by default), from now on or,
        called before :meth:`start`, from the start; without it the file is
        written when the task starts and finishes only.  A relative ``path`` is
        taken from the current directory now: the task keeps saving to that
        file if the directory changes.

        Raises:
            ValueError: ``path`` is empty, or names an existing directory, a node
                that is not a regular file (a FIFO, a device) or a file descriptor
                (``/dev/stdout``).
        """
        target = task_file_path(path, "path")
        while True:
            state = state_of(self)
            with state.lock:
                # The task may have finished, and dropped this state, meanwhile.
                if self._tm is state:
                    state.save_file = target
                    state.save_refreshed = monitor
                    break
        self._save()
        if not monitor:
            # No more refreshes, if the task had them (Task(file=...), an earlier call).
            refresh = state.refresh
            if refresh is not None:
                state.refresh = None
                get_monitor().remove(refresh)  # a no-op if the finish removed it first
        elif state.refresh is None and self.status is _RUNNING:
            state.refresh = get_monitor().add(self.monitor_refresh, name="task-file")

    # ---------------------------------------------------------------- protocols

    def __enter__(self) -> Task:
        state = self._tm
        if state is not None and state.started:
            self.start()  # raises: started already (a misuse), the task is left as it is
        try:
            self.start()
        except BaseException as exc:
            # An interrupt just after start() returned: the block will not run,
            # nor __exit__, so the task is finished here (start() finishes a
            # task whose start it interrupted itself).
            state = self._tm
            if state is not None and state.started and not state.finished:
                self._finish(_status_for(exc), exc)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            status = _FINISHED if exc_value is None else _status_for(exc_value)
            _task_finish(self, status, exc_value)
        except BaseException:
            # An interrupt before _finish began (which completes a finish it
            # interrupted itself): the task is finished all the same.
            if self.__dict__["status"] is _RUNNING:
                self._finish(_status_for(exc_value), exc_value)
            raise

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt by validation, which does not run __init__: no re-parenting.
        # A running task pickled for a worker may become its tasks' parent there:
        # it carries the inbox where their records are to go.
        inbox = _workers.note_handed_over(self)
        if inbox is None:
            return (type(self).model_validate, (self.model_dump(),))
        return (_handed_task, (type(self), self.model_dump(), inbox, _process.current_hostname()))

    def __str__(self) -> str:
        return f"<Task {self.task_id}: {self.label}>"

    def __repr__(self) -> str:
        return (
            f"Task(label={self.label!r}, status={self.status.value!r}, "
            f"task_id={str(self.task_id)!r}, subtasks={len(self.subtasks)})"
        )

    def walk(self) -> Iterator[tuple[int, Task]]:
        """This task and all its subtasks, depth first, with their depth."""
        stack: list[tuple[int, Task]] = [(0, self)]
        while stack:
            depth, task = stack.pop()
            yield depth, task
            stack.extend((depth + 1, sub) for sub in reversed(task.subtasks))

    # ---------------------------------------------------------------- internals

    def _read(self, state: _State) -> Figures:
        figures = Figures(wall_time=time.time())
        figures.duration_s = time.perf_counter() - state.perf_start
        read_probes(state.probe_states, figures)
        return figures

    def _apply(self, figures: Figures) -> None:
        # Straight into the field storage: pydantic's __setattr__ costs ~0.2us
        # a field, and these values are already of the fields' types.
        values = self.__dict__
        values["duration"] = figures.duration_s
        user, system = figures.cpu_user_s, figures.cpu_system_s
        # figures.cpu_time_s, without its property call
        values["cpu_time"] = None if user is None or system is None else user + system
        values["cpu_user_time"] = user
        values["cpu_system_time"] = system
        values["peak_memory"] = figures.peak_memory_bytes
        values["peak_gpu_memory"] = figures.peak_gpu_memory_bytes
        energy = figures.energy_j
        # A figure an earlier refresh had but this reading lacks is dropped, not
        # kept stale (it would describe a shorter interval).
        if energy or values["energy_sources"]:
            values["cpu_power"] = energy.get("cpu")
            values["gpu_power"] = energy.get("gpu")
            values["system_power"] = energy.get("system")
            values["energy_sources"] = dict(figures.energy_source)

    def _final_figures(self) -> Figures:
        energy = {
            domain: value
            for domain, value in (
                ("cpu", self.cpu_power),
                ("gpu", self.gpu_power),
                ("system", self.system_power),
            )
            if value is not None
        }
        return Figures(
            wall_time=self.finish_time or 0.0,
            duration_s=self.duration,
            cpu_user_s=self.cpu_user_time,
            cpu_system_s=self.cpu_system_time,
            peak_memory_bytes=self.peak_memory,
            peak_gpu_memory_bytes=self.peak_gpu_memory,
            energy_j=energy,
            energy_source={d: s for d, s in self.energy_sources.items() if d in energy},
        )

    def _span_parent_context(self) -> otel_context.Context | None:
        state = state_of(self)
        parent = state.parent
        if not state.explicit_parent:
            return None  # the current context
        if parent is None:
            parent = state.remote_parent
            if parent is None:
                return None
        parent_span = state_of(parent).span
        if parent_span.get_span_context().is_valid:
            return trace.set_span_in_context(parent_span)
        if parent.trace_id and parent.span_id:
            remote = SpanContext(
                trace_id=int(parent.trace_id, 16),
                span_id=int(parent.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            return trace.set_span_in_context(NonRecordingSpan(remote))
        return None

    def _span_attributes(self, state: _State | None = None) -> dict[str, Any]:
        """Every attribute of the task's span (set in one call as it ends).

        ``state``: the task's, when it has dropped it already (see _finish).
        The names are module globals and the optional figures are tested one
        by one, not in loops over (field, name) pairs: this runs for every
        task.
        """
        values = self.__dict__
        if state is None:
            state = self._tm or state_of(self)
        pid = values["pid"]
        hostname = values["hostname"]
        attributes: dict[str, Any] = {
            _A_TASK_ID: _id_text(self, state),
            _A_TASK_SUBPROCESS: values["subprocess"],
            _A_HOST_NAME: hostname if hostname.isascii() else valid_text(hostname),
            _A_PROCESS_PID: pid if pid is not None else _process.pid,
        }
        parent_id = values["parent_id"]
        if parent_id is not None:
            parent = state.parent
            if parent is not None and parent.__dict__["task_id"] is parent_id:
                attributes[_A_TASK_PARENT_ID] = _id_text(parent)
            else:
                attributes[_A_TASK_PARENT_ID] = str(parent_id)
        machine = values["machine"]
        if machine is not None:
            attributes[_A_MACHINE] = machine if machine.isascii() else valid_text(machine)
        attributes[_A_TASK_STATUS] = values["status"]._value_
        value = values["duration"]
        if value is not None:
            attributes[_A_DURATION] = value
        value = values["peak_memory"]
        if value is not None:
            attributes[_A_MEMORY_PEAK] = value
        value = values["peak_gpu_memory"]
        if value is not None:
            attributes[_A_GPU_MEMORY_PEAK] = value
        cpu_time = values["cpu_time"]
        if cpu_time is not None:
            attributes[_A_CPU_TIME] = cpu_time
            attributes[_A_CPU_USER] = values["cpu_user_time"]
            attributes[_A_CPU_SYSTEM] = values["cpu_system_time"]
            attributes[_A_CPU_TOTAL] = self.total_cpu() if values["subtasks"] else cpu_time
        if (
            values["cpu_power"] is not None
            or values["gpu_power"] is not None
            or values["system_power"] is not None
        ):
            sources = values["energy_sources"]
            for domain, field in _ENERGY_FIELDS:
                value = values[field]
                if value is not None:
                    attributes[attr.ENERGY[domain]] = value
                    source = sources.get(domain)
                    if source:
                        attributes[attr.ENERGY_SOURCE[domain]] = source
        return attributes

    def _deactivate(self) -> None:
        stack = _active_stack.get()
        if stack and stack[-1] is self:
            _active_stack.set(stack[:-1])
        elif self in stack:
            # Finished before a subtask still active here (or a generator's
            # task, finished under the caller's): its span context is below
            # the subtask's, so it stays in the stack, finished (no longer
            # current), and leaves with its context when the tasks above it
            # have left (see _leave_finished).
            logger.debug("%s finished while a subtask was still active", self)

    def _detach(self, state: _State) -> None:
        token = state.ctx_token
        if token is None:
            return
        if _current_context() is state.context and _leave_context(token):
            state.ctx_token = None
            state.context = None
            return
        # Finished in another thread or asyncio task than the one that started
        # it (or in a copy of its context), where detaching would fail: the
        # task keeps its token (and so its state), and the starting context
        # detaches it when it next starts a task (see _leave_finished).
        with _revive_lock:
            kept = self._tm
            if kept is None:
                _set_slot(self, "_tm", state)
            elif kept is not state:  # revived meanwhile (save_to_file)
                kept.ctx_token = token
                kept.context = state.context
                state.ctx_token = None
                state.context = None

    def _save(self, read: bool = True) -> None:
        # ``read``: whether the running tasks of the tree are read as it is
        # written (not as the task starts: it has no figures yet).
        state = state_of(self)
        path = state.save_file
        if path is None:
            return
        try:
            from .taskfile import dump_task, write_atomic

            # One save of a file at a time, each reading the task as it writes: a
            # refresh that read the task running can no longer replace the file
            # its finish wrote after it.
            with _file_lock(path):
                if read and state.started and not state.finished:
                    # Running: each running task is read as the tree is written.
                    text = dump_task(self, snapshot=True)
                else:
                    with state.lock:
                        text = dump_task(self)
                write_atomic(path, text + "\n")
        except Exception as exc:
            swallowed("taskfile.save", exc)


_file_locks: dict[str, threading.Lock] = {}
_file_locks_lock = threading.Lock()


def _file_lock(path: str | os.PathLike[str]) -> threading.Lock:
    """The lock of the task file ``path`` (one per path, made on first use)."""
    key = os.fspath(path)
    lock = _file_locks.get(key)
    if lock is None:
        with _file_locks_lock:
            lock = _file_locks.setdefault(key, threading.Lock())
    return lock


_revive_lock = threading.Lock()
_thaw_lock = threading.Lock()


def _each_once(tree: Task) -> Iterator[Task]:
    """Every task object of ``tree``, itself included, once each: depth first, each
    task before its subtasks (in a tree; where a task is added twice, at its
    first place), siblings in no set order.

    Iterative, and safe on a tree with a cycle or a task added twice (which
    users can make by hand; :meth:`Task.add_subtask` refuses a cycle).
    """
    seen: set[int] = set()
    pending = [tree]
    while pending:
        task = pending.pop()
        if id(task) not in seen:
            seen.add(id(task))
            yield task
            pending.extend(task.subtasks)


def _holds(tree: Task, task: Task) -> bool:
    """Whether ``task``, or a task sharing its subtask list, is in ``tree`` (itself included)."""
    own_list = task.subtasks
    return any(node is task or node.subtasks is own_list for node in _each_once(tree))


def state_of(task: Task) -> _State:
    """``task``'s state.

    A finished task drops its state (unless it saves to a file): a root may
    keep a hundred thousand finished subtasks, and the garbage collector
    walks every object they hold on each full collection, so that the cost
    per subtask grew with their number.  What the state held is then the
    defaults of a finished task, rebuilt here on the rare later use
    (``add_subtask``, ``save_to_file``, a task started under it by id).
    """
    state = task._tm
    if state is None:
        with _revive_lock:
            state = task._tm
            if state is None:
                state = _State()
                state.started = True
                state.finished = True
                object.__setattr__(task, "_tm", state)
    return state


_fresh_state_lock = threading.Lock()


def _fresh_state(task: Task) -> _State:
    """The state of ``task`` made by validation, made now (see ``Task.__getattr__``): a
    task never started, as :meth:`Task.start` expects."""
    with _fresh_state_lock:
        try:
            return object.__getattribute__(task, "_tm")  # type: ignore[no-any-return]
        except AttributeError:  # no other thread made it meanwhile
            state = _State()
            _set_slot(task, "_tm", state)
            return state


def _id_text(task: Task, state: _State | None = None) -> str:
    """``str(task.task_id)``, kept in ``state`` (the task's, by default): a
    parent's is needed by each of its subtasks' spans, and formatting a UUID
    costs half a microsecond."""
    if state is None:
        state = task._tm or state_of(task)
    text = state.id_text
    if text is None:
        task_id = task.__dict__["task_id"]
        if type(task_id) is UUID:  # str(task_id), without UUID.__str__'s call
            digits = hex(task_id.int)[2:].zfill(32)  # f"{...:032x}", cheaper
            text = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        else:  # a task made by model_construct, which does not validate
            text = str(task_id)
        state.id_text = text
    return text


class TotalCpu:
    """:meth:`Task.total_cpu` for the tasks of one tree, each subtree walked once.

    A table of a tree (``taskmeter show``, the report) asks every row for its
    total: walking each row's subtree anew would take time in the square of
    the tree's depth.  Here the worker CPU below each task is worked out once,
    bottom-up and without recursion (a tree of any depth), and kept while
    this object lives; make a new one when the tree changes.
    """

    __slots__ = ("_below",)

    def __init__(self) -> None:
        self._below: dict[int, tuple[Task, float]] = {}
        """For each task walked (by id, the task kept so the id stays its): the CPU of
        the worker tasks found below it, each with its own workers."""

    def __call__(self, task: Task) -> float | None:
        """CPU time of ``task`` and of the worker-process tasks below it (``None`` when
        ``task``'s own is unknown)."""
        cpu = task.cpu_time
        if cpu is None or not task.subtasks:
            return cpu
        return cpu + self._workers_below(task)

    def _workers_below(self, task: Task) -> float:
        below = self._below
        known = below.get(id(task))
        if known is not None:
            return known[1]
        pending = [task]
        # For each task open in the walk: the CPU of the workers among its subtasks
        # that have none (most records: counted in one pass), and the others.
        opened: dict[int, tuple[float, list[Task]]] = {}
        while pending:
            node = pending[-1]
            key = id(node)
            if key not in opened:
                # First visit: the subtrees below go first.  A task already open
                # below which it is found again (a cycle made by hand) adds nothing.
                leaves = 0.0
                inner: list[Task] = []
                for child in node.subtasks:
                    if child.subtasks:
                        inner.append(child)
                        ckey = id(child)
                        if ckey not in below and ckey not in opened:
                            pending.append(child)
                    elif child.subprocess:
                        cpu = child.cpu_time
                        if cpu is not None:
                            leaves += cpu
                opened[key] = (leaves, inner)
                continue
            pending.pop()
            total, inner = opened[key]
            for child in inner:
                done = below.get(id(child))
                found = 0.0 if done is None else done[1]
                if child.subprocess:
                    # A worker counts with its own workers; one whose CPU is unknown
                    # counts for nothing, its workers included (as total_cpu() is None).
                    cpu = child.cpu_time
                    if cpu is not None:
                        total += cpu + found
                else:
                    total += found
            below[key] = (node, total)
        return below[id(task)][1]


def _handed_task(cls: type[Task], data: dict[str, Any], inbox: str, hostname: str) -> Task:
    """Unpickle a task that was running when pickled, in the process whose inbox is
    ``inbox`` on ``hostname`` (see :func:`taskmeter.propagation.note_handed`)."""
    task = cls.model_validate(data)
    try:
        propagation.note_handed(task, inbox, hostname)
    except Exception as exc:
        swallowed("task.unpickle", exc)
    return task


def _runs_elsewhere(task: Task) -> bool:
    """Whether ``task`` is running in another process (this is a copy of it)."""
    if task.status is not _RUNNING or task.pid is None or task.pid == _process.pid:
        return False
    state = state_of(task)
    return state.finished or not state.started


def _copy_of_ended(task: Task) -> bool:
    """Whether ``task`` is a record of a task that is not running here: a copy
    (``copy``, ``pickle``) or a task read from a file, past pending, never started as
    this object.  Whichever process or host ran it, it stands for its id."""
    state = task._tm
    return state is not None and not state.started and task.status is not TaskStatus.PENDING


def _leave_finished(stack: tuple[Task, ...]) -> tuple[Task, ...]:
    """``stack`` without the finished tasks at its top, which were finished in
    another thread or asyncio task: their spans stop being current here too.

    Innermost first, as finishing them here would have: each one's context is
    detached if it is still the current one (a span the application attached
    on top of it, and left, keeps it).
    """
    while stack and stack[-1].__dict__["status"] is not _RUNNING:
        task = stack[-1]
        stack = stack[:-1]
        state = task._tm
        if state is None or state.ctx_token is None:
            continue
        if _current_context() is state.context and _leave_context(state.ctx_token):
            state.ctx_token = None
            state.context = None
    _active_stack.set(stack)
    return stack


def _leave_context(token: object) -> bool:
    """Make current again the span context that was current before ``token``'s attach.

    Where it was attached, by detaching ``token`` (``True``).  In a copy of that
    context (an asyncio task, ``contextvars.copy_context().run``) a token cannot
    be used (OpenTelemetry's ``detach`` would log the ``ValueError`` as an
    error): there the earlier context is attached instead and ``False`` says
    that the token is still for the original context to detach.  Never raises
    (as OpenTelemetry's ``detach`` does not): a token that cannot be reset at
    all is counted and logged, and done with.
    """
    if type(token) is not Token:  # another runtime context's token
        otel_context.detach(token)  # type: ignore[arg-type]
        return True
    try:
        token.var.reset(token)
    except ValueError:  # created in another Context, of which this is a copy
        earlier = token.old_value
        otel_context.attach(otel_context.Context() if earlier is Token.MISSING else earlier)
        return False
    except RuntimeError as exc:  # used once already
        swallowed("task.detach", exc)
    return True


def _status_for(error: BaseException | None) -> TaskStatus:
    if error is None:
        return _FINISHED
    if isinstance(error, KeyboardInterrupt | GeneratorExit):
        return _CANCELLED
    # asyncio is not imported for this: without it, nothing raised a CancelledError.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(error, asyncio.CancelledError):
        return _CANCELLED
    if isinstance(error, SystemExit) and error.code in (None, 0):
        return _FINISHED
    return _FAILED


def _record_status(span: trace.Span, status: TaskStatus, error: BaseException | None) -> None:
    """Mark the span of a failed or cancelled task, with its exception."""
    if status is _FAILED:
        if error is not None:
            record_failure(span, error)
        else:
            span.set_status(Status(StatusCode.ERROR, "task failed"))
    elif status is _CANCELLED:
        if error is not None:
            record_failure(span, error, set_status=False)
        span.set_status(Status(StatusCode.ERROR, "task cancelled"))


# The private methods a task runs on every start and finish, called through
# module globals: pydantic's BaseModel defines ``__getattr__``, so the
# interpreter does not specialize attribute lookups on a Task, and each one
# costs some 35 ns more than a global's (measured on CPython 3.11).
_task_init_defaults = Task._init_defaults
_task_adopt = Task._adopt
_task_apply = Task._apply
_task_span_attributes = Task._span_attributes
_task_finish = Task._finish

# Validation (model_validate, task files, unpickling) builds a task from its
# fields without running __init__, which would resolve a parent from the
# active task and re-parent a task being loaded.
Task.__pydantic_custom_init__ = False
Task.model_rebuild(force=True)


def _fast_defaults() -> tuple[dict[str, Any], bool]:
    """The constant defaults of Task's fields, and whether the fast path applies.

    The fast path fills the fields with default factories itself; if the
    model ever gains another one, it turns itself off instead of going wrong.
    """
    factories = {"task_id", "hostname", "machine", "subtasks", "energy_sources", "pid"}
    defaults: dict[str, Any] = {}
    for name, info in Task.model_fields.items():
        if info.default_factory is not None:
            if name not in factories:
                return {}, False
            defaults[name] = None
        elif name == "label":
            defaults[name] = None
        else:
            defaults[name] = info.default
    found = {n for n, i in Task.model_fields.items() if i.default_factory is not None}
    return defaults, found == factories


_FAST_DEFAULTS, _FAST_INIT = _fast_defaults()
_MEASURED_FIELDS = frozenset(
    {"duration", "cpu_time", "cpu_user_time", "cpu_system_time", "peak_memory", "peak_gpu_memory"}
)
# The span attribute names _span_attributes uses, as module globals (one
# lookup each instead of two, for every task).
_A_TASK_ID = attr.TASK_ID
_A_TASK_PARENT_ID = attr.TASK_PARENT_ID
_A_TASK_STATUS = attr.TASK_STATUS
_A_TASK_SUBPROCESS = attr.TASK_SUBPROCESS
_A_HOST_NAME = attr.HOST_NAME
_A_PROCESS_PID = attr.PROCESS_PID
_A_MACHINE = attr.MACHINE
_A_DURATION = attr.DURATION
_A_MEMORY_PEAK = attr.MEMORY_PEAK
_A_GPU_MEMORY_PEAK = attr.GPU_MEMORY_PEAK
_A_CPU_TIME = attr.CPU_TIME
_A_CPU_USER = attr.CPU_USER
_A_CPU_SYSTEM = attr.CPU_SYSTEM
_A_CPU_TOTAL = attr.CPU_TOTAL
_ENERGY_FIELDS = (("cpu", "cpu_power"), ("gpu", "gpu_power"), ("system", "system_power"))
"""Energy domains and the task fields that hold them (LensKit's names)."""
_START_FIELDS = frozenset({"status", "start_time", "trace_id", "span_id"})
_FINISH_FIELDS = _MEASURED_FIELDS | {"finish_time", "status"}
_CREATED_FIELDS = frozenset({"label"})
_CREATED_WITH_PARENT_FIELDS = frozenset({"label", "parent_id"})
_FIELD_SETS = FieldSets(
    initial=(_CREATED_FIELDS, _CREATED_WITH_PARENT_FIELDS),
    steps=(_START_FIELDS, _MEASURED_FIELDS, _FINISH_FIELDS),
)
"""The fields sets of tasks made from a label (and parent), shared (see _fieldsets)."""
_SHARED_CREATED_FIELDS = _FIELD_SETS.shared(_CREATED_FIELDS)
_SHARED_CREATED_WITH_PARENT_FIELDS = _FIELD_SETS.shared(_CREATED_WITH_PARENT_FIELDS)


# ---------------------------------------------------------------- fork


def _innermost_running(stack: tuple[Task, ...]) -> Task | None:
    for task in reversed(stack):
        state = task._tm  # None: finished, its state dropped
        if state is not None and state.started and not state.finished:
            return task
    return None


_fork = threading.local()
"""``adopted``: the parent the forking thread found for the child's tasks, when no
task runs in that thread (a Pool's thread forking replacement workers)."""


def _before_fork() -> None:
    # The task running in the forking thread becomes the parent of the child's
    # tasks; their records come back through the inbox, which must exist first.
    stack = _active_stack.get()
    _fork.adopted = None
    try:
        parent = _innermost_running(stack) if stack else None
        if parent is None:
            _fork.adopted = _workers.fork_without_task()
        elif parent.pid == _process.pid:
            _workers.expect_workers(parent)
    except Exception as exc:
        swallowed("workers.fork", exc)


def _after_fork_in_parent() -> None:
    _fork.adopted = None


def _disown(task: Task) -> None:
    # A copy of a task of the parent process: never measured, saved, collected
    # or ended here (see _finish).  Its lock may have been held at the fork.
    state = state_of(task)
    state.lock = threading.Lock()
    state.finished = True
    state.save_file = None
    state.refresh = None
    state.probe_states = ()
    state.collect = None


def _after_fork_in_child() -> None:
    global _revive_lock, _thaw_lock, _fresh_state_lock, _file_locks, _file_locks_lock
    _revive_lock = threading.Lock()  # they may have been held at the fork
    _thaw_lock = threading.Lock()
    _fresh_state_lock = threading.Lock()
    _file_locks = {}
    _file_locks_lock = threading.Lock()
    try:
        stack = _active_stack.get()
        parent = _innermost_running(stack)
        adopted: Task | None = getattr(_fork, "adopted", None)
        _fork.adopted = None
        running = [entry() for entry in _running.values()]
        for task in (*running, *stack):
            if task is not None:
                _disown(task)
        _running.clear()
        _dropped.clear()  # the parent's tasks: the parent releases them
        if stack:
            _active_stack.set(())
        if parent is None and adopted is not None:
            _workers.child_started(adopted, current=False)
        else:
            _workers.child_started(parent)
    except Exception as exc:
        swallowed("workers.fork", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
