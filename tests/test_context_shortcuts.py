"""A task reaches the current OpenTelemetry context without the API's wrappers only
where that is provably the same, and goes through the API everywhere else."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextvars import ContextVar, copy_context
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext

from taskmeter import Task, _context
from taskmeter.testing import SpanCapture, capture_spans


def test_the_installed_opentelemetry_gets_the_shortcuts() -> None:
    """With the default runtime context, the shortcuts are the ContextVar's own methods;
    if this fails after an OpenTelemetry upgrade, tasks still work, through the API."""
    variable = otel_context._RUNTIME_CONTEXT._current_context  # type: ignore[attr-defined]
    assert isinstance(variable, ContextVar)
    assert _context.current_context == variable.get
    assert _context.attach_context == variable.set
    assert _context.SPAN_KEY is not None
    assert _context.SPAN_IDS_BY_INDEX


def test_the_span_key_makes_what_set_span_in_context_makes() -> None:
    assert _context.SPAN_KEY is not None
    base = Context({"a": 1, "b": "two"})
    span = NonRecordingSpan(SpanContext(5, 6, is_remote=False))
    made = trace.set_span_in_context(span, base)
    mine = Context({**base, _context.SPAN_KEY: span})
    assert type(mine) is type(made)
    assert dict(mine) == dict(made)
    assert trace.get_current_span(mine) is span


def test_span_ids_by_index_read_what_the_properties_read() -> None:
    for span_context in (
        SpanContext(0xABC, 0xDEF, is_remote=False),
        SpanContext(0, 0xDEF, is_remote=True),
        trace.INVALID_SPAN_CONTEXT,
    ):
        assert span_context[0] == span_context.trace_id
        assert span_context[1] == span_context.span_id
        assert span_context[5] is span_context.is_valid


def test_the_shortcuts_read_and_set_the_api_s_current_context() -> None:
    def body() -> None:
        context = Context({"k": "v"})
        token = _context.attach_context(context)
        assert otel_context.get_current() is context
        assert _context.current_context() is context
        otel_context.detach(token)  # the API takes the shortcut's token
        assert otel_context.get_current() is not context

    copy_context().run(body)


def test_a_task_inside_a_user_span_and_a_span_inside_a_task(spans: SpanCapture) -> None:
    tracer = spans.tracer
    with tracer.start_as_current_span("outer") as outer:
        before = otel_context.get_current()
        with Task("task") as task:
            assert trace.get_current_span().get_span_context().span_id == int(task.span_id, 16)
            with tracer.start_as_current_span("inner"):
                pass
        assert otel_context.get_current() is before
    task_span, inner = spans.one("task"), spans.one("inner")
    assert task_span.parent is not None
    assert task_span.parent.span_id == outer.get_span_context().span_id
    assert inner.parent is not None and inner.parent.span_id == task_span.context.span_id
    assert task.trace_id == f"{outer.get_span_context().trace_id:032x}"


class _AttachingProcessor(SpanProcessor):
    """Attaches a context holding baggage when a span named ``task`` starts."""

    def __init__(self) -> None:
        self.tokens: list[object] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        if span.name == "task":
            self.tokens.append(otel_context.attach(baggage.set_baggage("k", "v")))

    def on_end(self, span: ReadableSpan) -> None:
        return None


def test_a_context_a_span_processor_attaches_at_start_is_current_in_the_task() -> None:
    """As with the API's ``set_span_in_context(span)`` after ``start_span``: the task's
    context is built on the context current once its span has started."""

    def body() -> tuple[object, object, object]:
        processor = _AttachingProcessor()
        with capture_spans(processor), Task("task") as task:
            inside = baggage.get_baggage("k")
            span_id = trace.get_current_span().get_span_context().span_id
        after = baggage.get_baggage("k")  # the processor's context, which it left attached
        return inside, span_id == int(task.span_id or "0", 16), after

    inside, task_span_current, after = copy_context().run(body)
    assert inside == "v"
    assert task_span_current
    assert after == "v"


_OTHER_RUNTIME = textwrap.dedent(
    """
    import json
    from contextvars import ContextVar

    from opentelemetry import context as otel_context
    from opentelemetry.context.context import _RuntimeContext

    calls = {"attach": 0, "get_current": 0, "detach": 0}

    class CountingRuntime(_RuntimeContext):
        # A runtime context of its own (as OTEL_PYTHON_CONTEXT would configure).
        def __init__(self):
            self._var = ContextVar("other", default=otel_context.Context())

        def attach(self, context):
            calls["attach"] += 1
            return self._var.set(context)

        def get_current(self):
            calls["get_current"] += 1
            return self._var.get()

        def detach(self, token):
            calls["detach"] += 1
            self._var.reset(token)

    otel_context._RUNTIME_CONTEXT = CountingRuntime()

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import taskmeter
    from taskmeter import Task, _context

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    taskmeter.use_tracer_provider(provider)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer"):
        with Task("root"), Task("child"):
            with tracer.start_as_current_span("inner"):
                pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    parent = {name: s.parent.span_id if s.parent else None for name, s in spans.items()}
    ids = {name: s.context.span_id for name, s in spans.items()}
    print(json.dumps({
        "shortcut": _context.current_context is not otel_context.get_current,
        "nested": [
            parent["root"] == ids["outer"],
            parent["child"] == ids["root"],
            parent["inner"] == ids["child"],
        ],
        "calls": calls,
        "left": otel_context.get_current() == otel_context.Context(),
    }))
    """
)


def test_another_runtime_context_is_used_through_the_api() -> None:
    """Under a runtime context that is not OpenTelemetry's ContextVar one, tasks attach
    and detach through the API (which calls it), and spans nest as before."""
    result = subprocess.run(
        [sys.executable, "-c", _OTHER_RUNTIME], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["shortcut"] is False
    assert found["nested"] == [True, True, True]
    # Each task attached its context through the runtime, and left it again.
    assert found["calls"]["attach"] >= 2 + 2
    assert found["calls"]["detach"] >= 2
    assert found["left"] is True
