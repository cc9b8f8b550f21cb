"""Tasks used the way real programs use them out of the ordinary: finished out of order,
inside generators, across threads, interrupted while they take their readings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

import taskmeter
from taskmeter import Task, TaskStatus
from taskmeter import attributes as attr
from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe, Probe
from taskmeter.task import _active_stack, _running_task
from taskmeter.taskfile import load_task, parse_task
from taskmeter.testing import SpanCapture, capture_spans


def _no_span_current() -> bool:
    return not trace.get_current_span().get_span_context().is_valid


def test_a_task_finished_before_its_subtask_leaves_no_ended_span_current(
    spans: SpanCapture,
) -> None:
    """A parent finished while its subtask is still active stops being the span parent
    once the subtask finishes: the next task is top-level in its record and its span."""
    parent = Task("parent")
    parent.start()
    child = Task("child")
    child.start()
    parent.finish()
    assert Task.current() is child
    child.finish()
    assert _no_span_current()
    assert _active_stack.get() == ()
    with Task("after") as after:
        pass
    assert after.parent_id is None
    assert spans.one("after").parent is None
    assert child.parent_id == parent.task_id
    child_parent = spans.one("child").parent
    assert child_parent is not None
    assert child_parent.span_id == spans.one("parent").context.span_id


def test_a_generators_task_finished_under_the_callers_task_leaves_no_span_current(
    spans: SpanCapture,
) -> None:
    """A task opened in a generator, resumed and finished while the caller has a task
    of its own open, leaves the caller's span context as it was once both are done."""

    def numbers() -> Iterator[int]:
        with Task("generator"):
            yield 1
            yield 2

    produced = numbers()
    assert next(produced) == 1
    with Task("caller") as caller:
        assert caller.parent_id is not None  # the generator's task is the active one
        assert list(produced) == [2]
        assert Task.current() is caller
    assert _no_span_current()
    assert Task.current() is None
    with Task("after") as after:
        pass
    assert after.parent_id is None and spans.one("after").parent is None


def test_a_subtask_finishing_after_its_parent_was_finished_by_another_thread_leaves_its_span(
    spans: SpanCapture,
) -> None:
    """When a thread finishes a task that another thread started, a subtask of it that the
    starting thread finishes afterwards leaves the parent's span context at once: a user
    span opened next is not a child of the ended span."""
    parent = Task("parent")
    parent.start()
    child = Task("child")
    child.start()
    finisher = threading.Thread(target=parent.finish)
    finisher.start()
    finisher.join(5)
    assert parent.status.value == "finished"
    child.finish()
    assert _no_span_current()
    with spans.tracer.start_as_current_span("user span"):
        pass
    assert spans.one("user span").parent is None
    assert _active_stack.get() == ()


class _Interrupting(Probe):
    """A probe that raises ``KeyboardInterrupt`` (as a Ctrl-C arriving then would) in
    ``begin`` or ``read`` when armed, and records which of its states were ended."""

    name = "interrupting"

    def __init__(self, where: str) -> None:
        self.where = where
        self.armed = False
        self.begun: list[int] = []
        self.ended: list[int] = []

    def _maybe_interrupt(self, where: str) -> None:
        if self.armed and where == self.where:
            self.armed = False
            raise KeyboardInterrupt

    def begin(self, *, reset_peak: bool = True) -> Any:
        self._maybe_interrupt("begin")
        self.begun.append(len(self.begun))
        return self.begun[-1]

    def read(self, state: Any, figures: Figures) -> None:
        self._maybe_interrupt("read")

    def end(self, state: Any) -> None:
        self.ended.append(state)


def test_an_interrupt_while_a_task_takes_its_last_readings_still_finishes_it(
    spans: SpanCapture,
) -> None:
    """A ``KeyboardInterrupt`` raised while a task reads its probes at the end reaches the
    application, and the task is finished anyway: not current, not running, its span
    ended, every probe's state ended (the interrupted one's and the ones after it)."""
    first, last = _Interrupting("read"), _Interrupting("never")
    taskmeter.set_probes([first, CpuTimeProbe(), last])
    with pytest.raises(KeyboardInterrupt), Task("interrupted") as task:
        first.armed = True
    assert task.status.value == "finished"
    assert task.duration is not None and task.cpu_time is not None
    assert Task.current() is None and _no_span_current()
    assert _running_task(task.task_id) is None
    assert first.ended == [0] and last.ended == [0]
    assert spans.one("interrupted").end_time is not None
    with Task("next") as after:
        pass
    assert after.parent_id is None


def test_an_interrupt_while_a_task_starts_finishes_it_as_cancelled(spans: SpanCapture) -> None:
    """A ``KeyboardInterrupt`` raised while a task begins its probes reaches the
    application; the task, whose ``with`` block never runs, is finished as cancelled
    (not left current for good), and the probes begun before it are ended."""
    before, interrupting = _Interrupting("never"), _Interrupting("begin")
    taskmeter.set_probes([before, interrupting])
    interrupting.armed = True
    task = Task("interrupted")
    with pytest.raises(KeyboardInterrupt), task:
        pytest.fail("the block of a task whose start raised ran")
    assert task.status.value == "cancelled"
    assert before.begun == [0] and before.ended == [0]
    assert Task.current() is None and _no_span_current()
    assert _running_task(task.task_id) is None
    span = spans.one("interrupted")
    assert span.status.status_code is StatusCode.ERROR
    with Task("next") as after:
        pass
    assert after.parent_id is None


class _Ticking(Probe):
    """A probe whose every reading is a tick of one counter, as ``peak_memory``: a task's
    figure tells when it was read.  ``on_read`` is called with a task's begin index on
    each reading; ``begin`` can be held (``hold``) until ``release`` is set."""

    name = "ticking"

    def __init__(self) -> None:
        self.ticks = 0
        self.started = 0
        self.order: list[int] = []
        self.on_read: Any = None
        self.hold = False
        self.holding = threading.Event()
        self.release = threading.Event()

    def begin(self, *, reset_peak: bool = True) -> Any:
        if self.hold:
            self.hold = False
            self.holding.set()
            assert self.release.wait(5)
        self.started += 1
        return self.started - 1

    def read(self, state: Any, figures: Figures) -> None:
        self.ticks += 1
        figures.peak_memory_bytes = self.ticks
        self.order.append(state)
        if self.on_read is not None:
            self.on_read(state)


def test_a_task_refreshed_while_it_starts_in_another_thread_has_no_figures_yet() -> None:
    """Refreshing a task that another thread is starting (its first readings not taken)
    gives no figures: not a duration counted from the clock's origin (hours)."""
    probe = _Ticking()
    taskmeter.set_probes([probe])
    task = Task("starting")
    probe.hold = True
    starter = threading.Thread(target=task.start)
    starter.start()
    try:
        assert probe.holding.wait(5)
        assert task.status.value == "running"
        figures = task.update_resources()
        assert figures.duration_s is None and figures.peak_memory_bytes is None
        assert task.duration is None
    finally:
        probe.release.set()
        starter.join(5)
    figures = task.update_resources()
    assert figures.duration_s is not None and figures.duration_s < 60
    task.finish()


def test_refresh_reads_every_running_subtask_before_its_parent() -> None:
    """A running tree's refresh reads each task after its running subtasks, so that no
    task's figures are older (smaller) than a subtask's."""
    probe = _Ticking()
    taskmeter.set_probes([probe])
    with Task("root") as root, Task("middle") as middle, Task("leaf") as leaf:
        probe.order.clear()
        root.monitor_refresh()
        assert probe.order == [2, 1, 0]
        assert root.peak_memory > middle.peak_memory > leaf.peak_memory  # type: ignore[operator]


def _figures_never_exceed_a_running_ancestors(document: dict[str, Any]) -> list[str]:
    problems = []
    pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [(document, [])]
    while pending:
        node, running_above = pending.pop()
        for above in running_above:
            if (node["peak_memory"] or 0) > (above["peak_memory"] or 0):
                problems.append(f"{node['label']} {node['peak_memory']} > {above['label']}")
        above_here = [*running_above, node] if node["status"] == "running" else running_above
        pending.extend((sub, above_here) for sub in node["subtasks"])
    return problems


def test_a_running_tasks_file_never_shows_a_subtask_read_after_its_parent(
    tmp_path: Path,
) -> None:
    """A subtask that finishes in another thread while a running task's file is being
    refreshed is never written with figures read after its running parent's: each
    running task is read once its subtasks have been written."""
    probe = _Ticking()
    taskmeter.set_probes([probe])
    path = tmp_path / "root.json"
    root = Task("root")
    root.start()
    go, done = threading.Event(), threading.Event()

    def late_subtask() -> None:
        with Task("late", parent=root):
            assert go.wait(5)
        done.set()

    def finish_late_when_root_is_read(index: int) -> None:
        if index == 0 and not go.is_set():  # the root's reading
            go.set()
            assert done.wait(5)

    worker = threading.Thread(target=late_subtask)
    worker.start()
    while len(root.subtasks) < 1:
        time.sleep(0.001)
    try:
        root.save_to_file(path, monitor=False)
        probe.on_read = finish_late_when_root_is_read
        root.monitor_refresh()
        document = json.loads(path.read_text())
        assert go.is_set()
        assert _figures_never_exceed_a_running_ancestors(document) == []
        assert [sub["label"] for sub in document["subtasks"]] == ["late"]
    finally:
        go.set()
        worker.join(5)
        probe.on_read = None
        root.finish()
    assert load_task(path).subtasks[0].status.value == "finished"


def test_a_running_tasks_file_holds_every_field_and_subtask_once_in_order(
    tmp_path: Path,
) -> None:
    """The file of a running tree has the fields of ``model_dump_json`` for every task
    and each subtask once, in the tree's order; taskmeter and LensKit's model read it."""
    path = tmp_path / "tree.json"
    with Task("root", file=path, extra_field="kept") as root:
        with Task("done"):
            pass
        with Task("open"):
            with Task("inner done"):
                pass
            with Task("inner open"):
                root.update()
                written = json.loads(path.read_text())
                expected = json.loads(root.model_dump_json())
    pending = [(written, expected)]
    while pending:
        ours, model = pending.pop()
        assert set(ours) == set(model)
        assert [s["task_id"] for s in ours["subtasks"]] == [s["task_id"] for s in model["subtasks"]]
        pending.extend(zip(ours["subtasks"], model["subtasks"], strict=True))
    assert written["extra_field"] == "kept"
    loaded = parse_task(json.dumps(written))
    assert [task.label for _, task in loaded.walk()] == [
        "root",
        "done",
        "open",
        "inner done",
        "inner open",
    ]
    try:
        from lenskit.logging.tasks import Task as LensKitTask
    except ImportError:
        return
    assert LensKitTask.model_validate_json(json.dumps(written)).task_id == root.task_id


class _InterruptingProcessor(SpanProcessor):
    """A span processor that raises ``KeyboardInterrupt`` when the first span ends (a
    Ctrl-C arriving while the span is exported)."""

    def __init__(self) -> None:
        self.armed = True

    def on_end(self, span: ReadableSpan) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def test_an_interrupt_in_a_span_processor_as_a_task_ends_leaves_no_span_current() -> None:
    """A ``KeyboardInterrupt`` raised by a span processor while a task's span ends reaches
    the application; the task is finished and its span context left, so later spans
    and tasks do not nest under the ended span."""
    with capture_spans(_InterruptingProcessor()) as spans:
        with pytest.raises(KeyboardInterrupt), Task("interrupted") as task:
            pass
        assert task.status.value == "finished"
        assert Task.current() is None and _no_span_current()
        with Task("next") as after:
            pass
    assert after.parent_id is None
    assert spans.one("interrupted") is not None


def test_entering_a_task_started_already_raises_and_leaves_it_running(
    spans: SpanCapture,
) -> None:
    """``with task`` on a task started by hand is a misuse: it raises, and the task
    goes on running, to be finished by its owner (not finished as failed)."""
    task = Task("started by hand")
    task.start()
    with pytest.raises(RuntimeError, match="already running"), task:
        pytest.fail("the block of a task started twice ran")
    assert task.status.value == "running"
    task.finish()
    assert task.status.value == "finished"
    assert Task.current() is None


@pytest.mark.parametrize("task_id", ["8f0c3e5a-1b2c-4d3e-8f4a-5b6c7d8e9f00", "job-17"])
def test_a_task_made_without_validation_with_a_text_id_still_runs(
    spans: SpanCapture, task_id: str
) -> None:
    """``model_construct`` does not validate: a text ``task_id`` (a UUID's spelling, or
    any text) is kept as it is, and the task runs, is found by its id while it runs,
    and ends with that id on its span."""
    task = Task.model_construct(label="constructed", task_id=task_id)
    with task:
        if task_id.startswith("8f0c"):
            assert _running_task(UUID(task_id)) is task
    assert task.status is TaskStatus.FINISHED
    assert _running_task(UUID(int=0)) is None
    assert spans.one("constructed").attributes[attr.TASK_ID] == task_id
