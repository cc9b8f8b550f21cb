"""Each task is a span: naming, nesting with user spans, attributes set before the end."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from taskmeter import Task
from taskmeter import attributes as attr
from taskmeter import probes as probes_module
from taskmeter.probes import Probe
from taskmeter.testing import SpanCapture


def test_task_span_named_by_label_with_ids(spans: SpanCapture) -> None:
    with Task("train model", machine="gpu-box") as task:
        pass
    span = spans.one("train model")
    assert span.attributes is not None
    assert span.attributes[attr.TASK_ID] == str(task.task_id)
    assert span.attributes[attr.TASK_STATUS] == "finished"
    assert span.attributes[attr.TASK_SUBPROCESS] is False
    assert span.attributes[attr.MACHINE] == "gpu-box"
    assert span.attributes[attr.HOST_NAME] == task.hostname
    assert span.attributes[attr.PROCESS_PID] == task.pid
    assert attr.TASK_PARENT_ID not in span.attributes
    assert task.trace_id == f"{span.context.trace_id:032x}"
    assert task.span_id == f"{span.context.span_id:016x}"
    assert span.status.status_code is StatusCode.UNSET


def test_span_times_match_task_times(spans: SpanCapture) -> None:
    with Task("timed") as task:
        pass
    span = spans.one("timed")
    assert span.start_time is not None and span.end_time is not None
    assert task.start_time == pytest.approx(span.start_time / 1e9, abs=1e-6)
    assert task.finish_time == pytest.approx(span.end_time / 1e9, abs=1e-6)


def test_the_first_task_is_not_charged_for_detecting_the_probes(
    spans: SpanCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detecting energy and GPU sources (the first task of a process) happens before its
    start time: its span lasts as long as its measured duration."""
    detect = probes_module._detected_probes

    def slow_detection() -> tuple[Probe, ...]:
        time.sleep(0.2)
        return detect()

    monkeypatch.setattr(probes_module, "_detected_probes", slow_detection)
    monkeypatch.setattr(probes_module, "_active", None)
    with Task("first") as task:
        time.sleep(0.05)
    span = spans.one("first")
    assert span.start_time is not None and span.end_time is not None
    span_s = (span.end_time - span.start_time) / 1e9
    assert task.duration is not None
    assert 0.05 <= task.duration <= span_s < task.duration + 0.02
    assert task.finish_time is not None and task.start_time is not None
    assert task.finish_time - task.start_time < task.duration + 0.02


def test_measured_attributes_present_with_units(spans: SpanCapture) -> None:
    with Task("measured") as task:
        sum(range(100_000))
    attributes = dict(spans.one("measured").attributes or {})
    assert attributes[attr.DURATION] == task.duration
    assert attributes[attr.CPU_TIME] == task.cpu_time
    assert attributes[attr.CPU_USER] == task.cpu_user_time
    assert attributes[attr.CPU_SYSTEM] == task.cpu_system_time
    assert attributes[attr.CPU_TOTAL] == task.total_cpu()
    assert attributes[attr.MEMORY_PEAK] == task.peak_memory
    assert isinstance(attributes[attr.MEMORY_PEAK], int)
    # Not measured here (no GPU, no energy counters): absent, never 0.
    assert attr.GPU_MEMORY_PEAK not in attributes
    assert not any(key.startswith("taskmeter.energy") for key in attributes)


def test_nested_tasks_are_nested_spans(spans: SpanCapture) -> None:
    with Task("root") as root, Task("child") as child:
        pass
    root_span, child_span = spans.one("root"), spans.one("child")
    assert child_span.parent is not None
    assert child_span.parent.span_id == root_span.context.span_id
    assert child_span.context.trace_id == root_span.context.trace_id
    assert (child_span.attributes or {})[attr.TASK_PARENT_ID] == str(root.task_id)
    assert child.trace_id == root.trace_id


def test_user_spans_nest_under_tasks_and_tasks_under_user_spans(spans: SpanCapture) -> None:
    tracer = spans.tracer
    with (
        tracer.start_as_current_span("request"),
        Task("handle"),
        tracer.start_as_current_span("db query"),
        Task("parse rows"),
    ):
        pass
    request, handle = spans.one("request"), spans.one("handle")
    query, parse = spans.one("db query"), spans.one("parse rows")
    assert handle.parent is not None and handle.parent.span_id == request.context.span_id
    assert query.parent is not None and query.parent.span_id == handle.context.span_id
    assert parse.parent is not None and parse.parent.span_id == query.context.span_id
    assert len({s.context.trace_id for s in spans.spans}) == 1


def test_global_tracer_spans_nest_under_tasks(spans: SpanCapture) -> None:
    """Spans from any provider use the shared context, so they nest under tasks."""
    other_exporter = InMemorySpanExporter()
    other = TracerProvider()
    other.add_span_processor(SimpleSpanProcessor(other_exporter))
    with Task("task") as task, other.get_tracer("lib").start_as_current_span("library call"):
        pass
    (library_span,) = other_exporter.get_finished_spans()
    assert library_span.parent is not None
    assert f"{library_span.parent.span_id:016x}" == task.span_id


def test_failure_records_exception_and_error_status(spans: SpanCapture) -> None:
    with pytest.raises(RuntimeError), Task("broken"):
        raise RuntimeError("disk on fire")
    span = spans.one("broken")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: disk on fire"
    assert (span.attributes or {})[attr.TASK_STATUS] == "failed"
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "RuntimeError"
    assert (event.attributes or {})["exception.message"] == "disk on fire"


def test_cancel_records_error_status(spans: SpanCapture) -> None:
    with pytest.raises(KeyboardInterrupt), Task("interrupted"):
        raise KeyboardInterrupt
    span = spans.one("interrupted")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[attr.TASK_STATUS] == "cancelled"


class _OnEndRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def on_end(self, span: ReadableSpan) -> None:
        self.seen[span.name] = dict(span.attributes or {})


def test_processors_see_every_figure_on_the_ending_span() -> None:
    recorder = _OnEndRecorder()
    from taskmeter.testing import capture_spans

    with capture_spans(recorder), Task("seen by processor"):
        pass
    seen = recorder.seen["seen by processor"]
    for key in (attr.DURATION, attr.CPU_TIME, attr.MEMORY_PEAK, attr.TASK_STATUS, attr.TASK_ID):
        assert key in seen


def test_span_attributes_are_set_in_one_call_as_the_task_ends() -> None:
    """As documented: on_start sees a bare task span, on_end every attribute,
    and the SDK receives them in a single set_attributes call."""
    from opentelemetry.sdk.trace import Span

    from taskmeter.testing import capture_spans

    class Recorder(_OnEndRecorder):
        def __init__(self) -> None:
            super().__init__()
            self.at_start: dict[str, dict[str, Any]] = {}

        def on_start(self, span: Span, parent_context: Any = None) -> None:
            self.at_start[span.name] = dict(span.attributes or {})

    recorder = Recorder()
    calls: list[int] = []
    original = Span.set_attributes

    def counting(self: Span, attributes: Any) -> None:
        calls.append(len(attributes))
        original(self, attributes)

    Span.set_attributes = counting  # type: ignore[method-assign]
    try:
        with capture_spans(recorder), Task("outer") as outer, Task("inner"):
            pass
    finally:
        Span.set_attributes = original  # type: ignore[method-assign]
    assert recorder.at_start == {"outer": {}, "inner": {}}
    inner = recorder.seen["inner"]
    assert inner[attr.TASK_PARENT_ID] == str(outer.task_id)
    assert calls == [len(inner), len(recorder.seen["outer"])]


def test_given_tracer_is_used(spans: SpanCapture) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with Task("own tracer", tracer=provider.get_tracer("mine")):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["own tracer"]
    assert spans.named("own tracer") == []


def test_explicit_parent_links_span_even_when_not_current(spans: SpanCapture) -> None:
    with Task("root") as root:
        pass
    with spans.tracer.start_as_current_span("unrelated"), Task("late child", parent=root):
        pass
    late = spans.one("late child")
    assert late.parent is not None
    assert f"{late.parent.span_id:016x}" == root.span_id
    assert f"{late.context.trace_id:032x}" == root.trace_id


def test_without_sdk_tasks_still_measure() -> None:
    from taskmeter import use_tracer_provider

    use_tracer_provider(trace.NoOpTracerProvider())
    try:
        with Task("no sdk") as task:
            pass
    finally:
        use_tracer_provider(None)
    assert task.duration is not None and task.cpu_time is not None
    assert task.trace_id is None


def test_without_sdk_a_task_inside_a_remote_span_does_not_take_its_span_id() -> None:
    """The API's no-op tracer hands back the current span's context: the task is in that
    trace, but that span is not the task's, so the task records no span id (a task file
    would name another span as its own)."""
    from opentelemetry.context import attach, detach
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from taskmeter import use_tracer_provider

    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7, True, TraceFlags(1))
    use_tracer_provider(trace.NoOpTracerProvider())
    token = attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with Task("no sdk") as task, Task("nested") as nested:
            pass
    finally:
        detach(token)
        use_tracer_provider(None)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (task.trace_id, task.span_id) == (trace_id, None)
    assert (nested.trace_id, nested.span_id) == (trace_id, None)


class _RaisingProcessor(SpanProcessor):
    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.where == "start":
            raise RuntimeError("bad processor on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("bad processor on end")


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_raising_span_processor_never_reaches_the_application(where: str) -> None:
    """The SDK lets a processor's exception through; a task contains it."""
    from taskmeter import _log
    from taskmeter.testing import capture_spans

    with capture_spans(_RaisingProcessor(where)), Task("still measured") as task:
        result = sum(range(1000))
    assert result == 499500
    assert task.status.value == "finished" and task.cpu_time is not None
    assert _log.error_counts[f"task.span.{where}"] == 1
    assert Task.current() is None


def test_task_finished_in_another_thread_leaves_the_starting_threads_spans(
    spans: SpanCapture,
) -> None:
    """A task started in one thread and finished in another stops being the span
    parent in the starting thread: its next task nests under the running task
    there, in the task tree and the span tree alike."""
    started, finished = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def starter() -> None:
        with Task("outer") as outer:
            seen["moved"] = moved = Task("moved")
            moved.start()
            started.set()
            assert finished.wait(5)
            with Task("next") as after:
                seen["current"] = Task.current()
                seen["span"] = trace.get_current_span()
            seen["outer"], seen["next"] = outer, after
            seen["current after"] = Task.current()
            seen["span after"] = trace.get_current_span()

    thread = threading.Thread(target=starter)
    thread.start()
    assert started.wait(5)
    moved = seen["moved"]
    moved.finish()
    finished.set()
    thread.join(5)
    outer, after = seen["outer"], seen["next"]
    assert moved.status.value == "finished" and moved.parent_id == outer.task_id
    assert after.parent_id == outer.task_id and seen["current"] is after
    outer_span, next_span = spans.one("outer"), spans.one("next")
    assert next_span.parent is not None
    assert next_span.parent.span_id == outer_span.context.span_id
    assert seen["span"].get_span_context().span_id == next_span.context.span_id
    assert seen["current after"] is outer
    assert seen["span after"].get_span_context().span_id == outer_span.context.span_id


def test_task_finished_in_another_asyncio_task_leaves_the_starting_ones_spans(
    spans: SpanCapture,
) -> None:
    """The same across asyncio tasks: the coroutine that started a task another one
    finished starts its next task without it as parent span, and without cross-talk
    into the finishing coroutine."""

    async def main() -> tuple[Task, Task]:
        moved = Task("moved")
        handed = asyncio.Event()

        async def starter() -> Task:
            moved.start()
            handed.set()
            while moved.status.value == "running":
                await asyncio.sleep(0.001)
            with Task("next") as after:
                assert Task.current() is after
            return after

        async def finisher() -> None:
            await handed.wait()
            with Task("finisher's own"):
                moved.finish()

        after, _ = await asyncio.gather(starter(), finisher())
        return moved, after

    moved, after = asyncio.run(main())
    assert after.parent_id is None and moved.parent_id is None
    assert spans.one("next").parent is None
    assert spans.one("finisher's own").parent is None


def _detach_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "detach" in r.getMessage().lower()]


def test_task_finished_elsewhere_then_left_in_a_copied_context_logs_no_detach_error(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """A task finished in another thread, whose starting context is next entered
    through a copy (an asyncio task here), leaves that copy without OpenTelemetry's
    "Failed to detach context" error (its token belongs to the original context): the
    copy's next task has no stale parent, and the original context still leaves the
    finished task cleanly at its own next task."""
    moved = Task("finished elsewhere")
    moved.start()
    finisher = threading.Thread(target=moved.finish)
    finisher.start()
    finisher.join(5)

    async def in_a_copy() -> None:
        with Task("next, in an asyncio task"):
            pass
        assert Task.current() is None
        assert not trace.get_current_span().get_span_context().is_valid

    asyncio.run(in_a_copy())
    with Task("next, where it started"):
        pass
    assert not trace.get_current_span().get_span_context().is_valid
    assert Task.current() is None
    assert _detach_failures(caplog) == []
    assert spans.one("next, in an asyncio task").parent is None
    assert spans.one("next, where it started").parent is None


def test_task_finished_in_a_copy_of_its_context_logs_no_detach_error(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """A task finished inside ``contextvars.copy_context().run`` (as an executor
    callback may be) ends without a detach error; the starting context drops it
    at its next task, which nests under nothing stale."""
    import contextvars

    moved = Task("finished in a copy")
    moved.start()
    contextvars.copy_context().run(moved.finish)
    with Task("next"):
        pass
    assert moved.status.value == "finished"
    assert Task.current() is None
    assert not trace.get_current_span().get_span_context().is_valid
    assert _detach_failures(caplog) == []
    assert spans.one("next").parent is None


def _task_span_under(limit: int | None, *, own: int) -> ReadableSpan:
    """The span of a task whose code set ``own`` attributes on it, under ``limit``."""
    from opentelemetry.sdk.trace import SpanLimits

    from taskmeter import use_tracer_provider

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=limit))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        with Task("limited"):
            for index in range(own):
                trace.get_current_span().set_attribute(f"app.{index}", index)
    finally:
        use_tracer_provider(None)
    (span,) = exporter.get_finished_spans()
    return span


@pytest.mark.parametrize("own", [0, 2])
def test_task_attributes_cut_by_the_attribute_limit_are_counted_as_dropped(own: int) -> None:
    """A task span over the attribute count limit reports every attribute it lost, the
    task's figures included, as ``dropped_attributes`` (offered minus kept)."""
    offered = len(_task_span_under(None, own=own).attributes or {})
    assert offered > 8
    span = _task_span_under(5, own=own)
    assert len(span.attributes or {}) == 5
    assert span.dropped_attributes == offered - 5


def test_leaving_a_context_whose_token_was_used_counts_it_and_never_raises() -> None:
    """A span-context token reset once already cannot be reset again: the task's
    context code counts and logs that (``task.detach``), as OpenTelemetry's own
    ``detach`` would, instead of raising into the application."""
    from opentelemetry import context as otel_context

    from taskmeter import _log
    from taskmeter.task import _leave_context

    token = otel_context.attach(otel_context.Context())
    otel_context.detach(token)
    before = _log.error_counts["task.detach"]
    assert _leave_context(token) is True
    assert _log.error_counts["task.detach"] == before + 1
