"""EnrichingSpanProcessor: selected spans carry a task's figures, measured against ground truth."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, Tracer

import taskmeter
from taskmeter import Task, _log
from taskmeter import attributes as attr
from taskmeter.enrich import EnrichedSpan, EnrichingSpanProcessor, SpanSelector
from taskmeter.enrich import processor as enrich_processor
from taskmeter.figures import Figures
from taskmeter.measure import MeasurementSpanProcessor
from taskmeter.probes import CpuTimeProbe, PeakMemoryProbe, Probe
from taskmeter.testing import capture_spans

from ..helpers import MIB, burn_cpu, current_rss, touch_bytes

FIGURES = (attr.DURATION, attr.CPU_TIME, attr.CPU_USER, attr.CPU_SYSTEM, attr.MEMORY_PEAK)


class Pipeline:
    """A tracer provider whose exporter sits inside an enriching wrapper."""

    def __init__(self, select: SpanSelector | str, *extra: SpanProcessor) -> None:
        self.exporter = InMemorySpanExporter()
        self.wrapper = EnrichingSpanProcessor(
            SimpleSpanProcessor(self.exporter), *extra, select=select
        )
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.wrapper)
        self.tracer: Tracer = self.provider.get_tracer("app")

    def one(self, name: str) -> ReadableSpan:
        (span,) = [s for s in self.exporter.get_finished_spans() if s.name == name]
        return span


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    built = Pipeline("root,marked")
    yield built
    built.provider.shutdown()


def test_root_span_gets_cpu_of_the_work_it_enclosed(pipeline: Pipeline) -> None:
    """Process and thread CPU of a root span match a known burn (0.3 s) within 10%."""
    with pipeline.tracer.start_as_current_span("request"):
        burn_cpu(0.3)
    span = pipeline.one("request")
    attributes = span.attributes or {}
    assert isinstance(span, EnrichedSpan)
    assert 0.3 <= attributes[attr.CPU_THREAD] < 0.33
    assert 0.3 <= attributes[attr.CPU_TIME] < 0.36
    assert attributes[attr.CPU_TIME] == pytest.approx(
        attributes[attr.CPU_USER] + attributes[attr.CPU_SYSTEM]
    )
    assert attributes[attr.DURATION] >= 0.3


def test_peak_memory_of_a_span_is_its_own_even_after_a_larger_one(pipeline: Pipeline) -> None:
    """A span after a 200 MiB one reports its own 50 MiB peak; both within 5% of base + size."""
    base = current_rss()
    with pipeline.tracer.start_as_current_span("big"):
        block = touch_bytes(200 * MIB)
        del block
    with pipeline.tracer.start_as_current_span("small"):
        block = touch_bytes(50 * MIB)
        del block
    big = (pipeline.one("big").attributes or {})[attr.MEMORY_PEAK]
    small = (pipeline.one("small").attributes or {})[attr.MEMORY_PEAK]
    assert big == pytest.approx(base + 200 * MIB, rel=0.05)
    assert small == pytest.approx(base + 50 * MIB, rel=0.05)


def test_task_around_an_enriched_span_keeps_its_true_peak(pipeline: Pipeline) -> None:
    """Resets by an enriched span fold into the open task (the shared PeakRegister)."""
    base = current_rss()
    with capture_spans() as captured, Task("outer") as task:
        block = touch_bytes(150 * MIB)
        del block
        with pipeline.tracer.start_as_current_span("after", attributes={attr.ENRICH: True}):
            small = touch_bytes(20 * MIB)
            del small
    assert task.peak_memory == pytest.approx(base + 150 * MIB, rel=0.05)
    after = (pipeline.one("after").attributes or {})[attr.MEMORY_PEAK]
    assert after == pytest.approx(base + 20 * MIB, rel=0.05)
    assert captured.one("outer").attributes[attr.MEMORY_PEAK] == task.peak_memory  # type: ignore[index]


def test_unselected_spans_pass_through_untouched(pipeline: Pipeline) -> None:
    """A child span that is neither a root nor marked reaches the exporter as the SDK made it."""
    tracer = pipeline.tracer
    with (
        tracer.start_as_current_span("root"),
        tracer.start_as_current_span("child", attributes={"k": 1}),
    ):
        pass
    child = pipeline.one("child")
    assert not isinstance(child, EnrichedSpan)
    assert dict(child.attributes or {}) == {"k": 1}
    assert pipeline.wrapper._open == {}


@pytest.mark.parametrize("dict_copy", [True, False], ids=["dict-copy", "constructor"])
def test_span_keeps_its_own_attributes_events_status_and_ids(
    dict_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The enriched copy has the original's name, ids, parent, kind, events, links,
    status, times, scope, resource, dropped counts and values: made either way."""
    monkeypatch.setattr(enrich_processor, "_DICT_COPY_IS_FAITHFUL", dict_copy)
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "1")
    built = Pipeline("root,marked")
    # The same spans, as the SDK makes them, beside the wrapper.
    plain = InMemorySpanExporter()
    built.provider.add_span_processor(SimpleSpanProcessor(plain))
    linked = SpanContext(0xAB, 0xCD, is_remote=True)
    try:
        with built.tracer.start_as_current_span(
            "job",
            kind=SpanKind.CONSUMER,
            attributes={attr.CPU_TIME: "mine", "x": 2},
            links=[Link(linked, {"l": 1}), Link(linked, {"l": 2})],
        ) as live:
            live.add_event("dropped", {"n": 1})
            live.add_event("kept", {"n": 2})
            live.set_status(Status(StatusCode.ERROR, "broken"))
            live_context = live.get_span_context()
    finally:
        built.provider.shutdown()
    span = built.one("job")
    (original,) = plain.get_finished_spans()
    assert isinstance(span, EnrichedSpan)
    assert span.context == live_context
    assert span.kind is SpanKind.CONSUMER
    assert [event.name for event in span.events] == ["kept"]
    assert [link.attributes for link in span.links] == [link.attributes for link in original.links]
    assert len(span.links) == 1
    assert (span.dropped_events, span.dropped_links, span.dropped_attributes) == (1, 1, 0)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "broken"
    for field in ("name", "parent", "resource", "start_time", "end_time", "instrumentation_scope"):
        assert getattr(span, field) == getattr(original, field), field
    attributes = span.attributes or {}
    assert attributes["x"] == 2
    assert attributes[attr.CPU_TIME] == "mine"  # never overwritten
    assert attr.MEMORY_PEAK in attributes
    assert dict(original.attributes or {}) == {attr.CPU_TIME: "mine", "x": 2}  # untouched
    exported = json.loads(span.to_json())
    assert exported["attributes"][attr.MEMORY_PEAK] == attributes[attr.MEMORY_PEAK]
    assert exported["events"] == json.loads(original.to_json())["events"]


def test_the_sdk_span_is_copied_by_its_dictionary_on_the_pinned_sdk() -> None:
    """The fast copy's self-check passes on the SDK this package pins, and is used."""
    assert enrich_processor._dict_copy_is_faithful()
    span = TracerProvider().get_tracer("t").start_span("s", attributes={"a": 1})
    span.end()
    original = span._readable_span()
    copy = enrich_processor.enriched_copy(original, {"a": 1, "b": 2})
    assert type(copy) is EnrichedSpan
    assert copy.__dict__.keys() == {*original.__dict__.keys(), "_original"}
    assert dict(copy.attributes or {}) == {"a": 1, "b": 2}


def test_a_span_class_the_check_did_not_see_is_copied_by_its_constructor() -> None:
    class Special(ReadableSpan):
        @property
        def name(self) -> str:
            return "special"

    copy = enrich_processor.enriched_copy(Special("s"), {"b": 2})
    assert copy.name == "special"
    assert "_original" in copy.__dict__ and copy.__dict__["_name"] == "special"


def test_the_check_refuses_a_layout_it_does_not_recognise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the SDK to keep a field elsewhere than its __dict__, the constructor is used."""
    monkeypatch.setattr(ReadableSpan, "end_time", property(lambda span: 7))
    assert enrich_processor._dict_copy_is_faithful()  # reads the same either way
    monkeypatch.setattr(ReadableSpan, "end_time", property(lambda span: id(span)))
    assert not enrich_processor._dict_copy_is_faithful()
    monkeypatch.setattr(ReadableSpan, "__init__", _raising_init)
    assert not enrich_processor._dict_copy_is_faithful()


def _raising_init(self: ReadableSpan, *args: object, **kwargs: object) -> None:
    raise TypeError("a new constructor")


def test_thread_cpu_is_absent_when_the_span_ends_on_another_thread(pipeline: Pipeline) -> None:
    """Thread CPU only means something on the thread that started the span."""
    span = pipeline.tracer.start_span("handed over")
    ender = threading.Thread(target=span.end)
    ender.start()
    ender.join()
    attributes = pipeline.one("handed over").attributes or {}
    assert attr.CPU_THREAD not in attributes
    assert attr.CPU_TIME in attributes


def test_thread_cpu_is_absent_when_the_ending_thread_reuses_the_starters_ident(
    pipeline: Pipeline,
) -> None:
    """A thread that exits leaves its ident to the next one: a span started on the
    first and ended on the second ended on another thread, whatever their idents."""
    started: list[tuple[int, object]] = []

    def start() -> None:
        started.append((threading.get_ident(), pipeline.tracer.start_span("short-lived")))
        burn_cpu(0.05)

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    ((starter_ident, span),) = started
    idents: list[int] = []
    for _ in range(50):  # the C library hands the exited thread's descriptor on
        probe = threading.Thread(target=lambda: idents.append(threading.get_ident()))
        probe.start()
        probe.join()
        if idents[-1] == starter_ident:
            break
    else:
        pytest.skip("no thread reused the exited thread's ident here")

    def finish() -> None:
        burn_cpu(0.05)  # what the wrong figure would have been
        span.end()  # type: ignore[attr-defined]

    ender = threading.Thread(target=finish)
    ender.start()
    ender.join()
    attributes = pipeline.one("short-lived").attributes or {}
    assert attr.CPU_THREAD not in attributes
    assert attributes[attr.CPU_TIME] >= 0.1


class _Forwarding(SpanProcessor):
    """A processor that hands each call on to another (as composite processors do)."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@pytest.mark.parametrize("forwarders", [0, 2], ids=["direct", "behind two forwarders"])
def test_thread_cpu_is_absent_when_the_provider_calls_processors_from_a_pool(
    forwarders: int,
) -> None:
    """The SDK's ConcurrentMultiSpanProcessor calls processors on its pool's threads: the
    thread CPU there is the worker's (about 0 s), not that of the span's thread (it was
    given as taskmeter.cpu.thread for a span that burnt 0.2 s); processors that forward
    the calls between the pool and the enriching one do not hide the pool."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(active_span_processor=ConcurrentMultiSpanProcessor(1))
    processor: SpanProcessor = EnrichingSpanProcessor(SimpleSpanProcessor(exporter), select="all")
    for _ in range(forwarders):
        processor = _Forwarding(processor)
    provider.add_span_processor(processor)
    try:
        with provider.get_tracer("app").start_as_current_span("pooled"):
            burn_cpu(0.2)
        ((span,),) = [exporter.get_finished_spans()]
        attributes = span.attributes or {}
        assert attr.CPU_THREAD not in attributes
        assert attributes[attr.CPU_TIME] >= 0.2
    finally:
        provider.shutdown()


def test_spans_a_thread_pool_runs_keep_their_thread_cpu() -> None:
    """A span started and ended by a user's ThreadPoolExecutor task, under the SDK's
    usual provider, is that worker thread's: its thread CPU is given."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        _Forwarding(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), select="all"))
    )
    tracer = provider.get_tracer("app")

    def work() -> None:
        with tracer.start_as_current_span("in a pool"):
            burn_cpu(0.2)

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(work).result()
        ((span,),) = [exporter.get_finished_spans()]
        assert (span.attributes or {})[attr.CPU_THREAD] >= 0.15
    finally:
        provider.shutdown()


def test_task_and_timer_spans_are_never_enriched_twice() -> None:
    """taskmeter's own spans already carry the figures; `all` still leaves them alone."""
    built = Pipeline("all")
    taskmeter.use_tracer_provider(built.provider)
    try:
        with Task("task"):
            burn_cpu(0.01)
    finally:
        taskmeter.use_tracer_provider(None)
    task_span = built.one("task")
    assert not isinstance(task_span, EnrichedSpan)
    assert attr.CPU_THREAD not in (task_span.attributes or {})


def test_machine_label_is_set_on_enriched_spans(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKMETER_MACHINE", "rack-7")
    taskmeter.settings.reload()
    with pipeline.tracer.start_as_current_span("request"):
        pass
    assert (pipeline.one("request").attributes or {})[attr.MACHINE] == "rack-7"


class ExplodingProbe(Probe):
    name = "exploding"

    def begin(self, *, reset_peak: bool = True) -> None:
        return None

    def read(self, state: object, figures: Figures) -> None:
        raise RuntimeError("sensor unplugged")


def test_failing_probe_is_counted_and_the_other_figures_still_arrive() -> None:
    """A probe that raises never reaches the application; CPU is still measured."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichingSpanProcessor(
            SimpleSpanProcessor(exporter),
            select="all",
            probes=[CpuTimeProbe(), ExplodingProbe()],
        )
    )
    with provider.get_tracer("app").start_as_current_span("request"):
        burn_cpu(0.02)
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[attr.CPU_TIME] >= 0.02
    assert attr.MEMORY_PEAK not in (span.attributes or {})
    assert _log.error_counts["probe.exploding.read"] == 1


def test_measurement_processor_inside_the_wrapper_sees_task_spans_unchanged() -> None:
    """Task metrics still come from task spans when the measurement processor is wrapped."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    built = Pipeline("all", MeasurementSpanProcessor(meter_provider=meters))
    taskmeter.use_tracer_provider(built.provider)
    try:
        with Task("fit"):
            burn_cpu(0.05)
    finally:
        taskmeter.use_tracer_provider(None)
    data = reader.get_metrics_data()
    assert data is not None
    names = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "taskmeter.task.cpu.time" in names


class CountingProbe(Probe):
    """A probe that counts the readings begun and not yet ended."""

    name = "counting"

    def __init__(self) -> None:
        self.open = 0

    def begin(self, *, reset_peak: bool = True) -> None:
        self.open += 1

    def read(self, state: None, figures: Figures) -> None:
        figures.duration_s = 0.0

    def end(self, state: None) -> None:
        self.open -= 1


def test_spans_given_a_start_or_end_time_of_another_moment_are_not_enriched() -> None:
    """A span recorded after the fact (explicit start or end times seconds away from
    when the SDK reports them) gets no figures, which would be those of another
    interval; its readings are released.  An explicit time of now still counts."""
    exporter = InMemorySpanExporter()
    probe = CountingProbe()
    wrapper = EnrichingSpanProcessor(
        SimpleSpanProcessor(exporter), select="all", probes=[CpuTimeProbe(), probe]
    )
    provider = TracerProvider()
    provider.add_span_processor(wrapper)
    tracer = provider.get_tracer("app")
    now_ns = time.time_ns()
    tracer.start_span("queued", start_time=now_ns - 30 * 10**9).end()
    late = tracer.start_span("ended in the past")
    late.end(end_time=now_ns - 10 * 10**9)
    tracer.start_span("explicit now", start_time=time.time_ns()).end(end_time=time.time_ns())
    attributes = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert attr.CPU_TIME not in attributes["queued"]
    assert attr.CPU_TIME not in attributes["ended in the past"]
    assert attr.CPU_TIME in attributes["explicit now"]
    assert probe.open == 0 and not wrapper._open
    provider.shutdown()


def test_a_late_end_within_one_percent_of_a_long_span_keeps_its_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reported 20 s after its end time, a span of 3 h keeps its figures (off by 0.2 %),
    and a span of 60 s does not (off by a third)."""
    clock = {"now_ns": 10**18}
    monkeypatch.setattr(enrich_processor, "_time_ns", lambda: clock["now_ns"])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), select="all"))
    tracer = provider.get_tracer("app")
    for name, seconds in (("3 h", 3 * 3600), ("60 s", 60)):
        start_ns = clock["now_ns"]
        span = tracer.start_span(name, start_time=start_ns)
        clock["now_ns"] = start_ns + (seconds + 20) * 10**9  # reported 20 s late
        span.end(end_time=start_ns + seconds * 10**9)
    attributes = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert attr.CPU_TIME in attributes["3 h"]
    assert attr.CPU_TIME not in attributes["60 s"]
    provider.shutdown()


def test_a_failure_while_enriching_still_ends_the_spans_probes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The span goes on unenriched, the failure is counted, and the probes it began
    are ended (a sampling probe would otherwise keep sampling)."""
    exporter = InMemorySpanExporter()
    probe = CountingProbe()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichingSpanProcessor(SimpleSpanProcessor(exporter), select="all", probes=[probe])
    )
    span = provider.get_tracer("app").start_span("request")

    def broken_clock() -> float:
        raise OSError("no thread clock")

    monkeypatch.setattr(enrich_processor, "_thread_time", broken_clock)
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert attr.DURATION not in (ended.attributes or {})
    assert _log.error_counts["enrich.end"] == 1
    assert probe.open == 0
    provider.shutdown()


def test_max_open_bounds_the_readings_held_for_spans_never_ended() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    wrapper = EnrichingSpanProcessor(SimpleSpanProcessor(exporter), select="all", max_open=2)
    provider.add_span_processor(wrapper)
    tracer = provider.get_tracer("app")
    spans = [tracer.start_span(f"s{i}") for i in range(3)]
    assert len(wrapper._open) == 2
    for span in spans:
        span.end()
    enriched = [s.name for s in exporter.get_finished_spans() if isinstance(s, EnrichedSpan)]
    assert enriched == ["s0", "s1"]
    assert wrapper._open == {}


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="span processor"):
        EnrichingSpanProcessor(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown span selection"):
        EnrichingSpanProcessor(select="roots")
    with pytest.raises(TypeError, match="probe"):
        EnrichingSpanProcessor(probes=[object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_open"):
        EnrichingSpanProcessor(max_open=0)


def test_shutdown_and_flush_reach_the_wrapped_processors() -> None:
    exporter = InMemorySpanExporter()
    wrapper = EnrichingSpanProcessor(SimpleSpanProcessor(exporter), probes=[PeakMemoryProbe()])
    assert wrapper.force_flush(1000)
    wrapper.shutdown()
    assert exporter._stopped


def test_selection_comes_from_the_environment_and_a_bad_one_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """TASKMETER_ENRICH chooses the spans; a malformed value warns and uses root,marked."""
    monkeypatch.setenv("TASKMETER_ENRICH", "kind:client")
    assert EnrichingSpanProcessor().selector.description == "kind:client"
    monkeypatch.setenv("TASKMETER_ENRICH", "roots,kind:client")
    assert EnrichingSpanProcessor().selector.description == "root,marked"
    assert "ignoring TASKMETER_ENRICH='roots,kind:client'" in caplog.text


def test_an_enrich_variable_of_none_in_capitals_enriches_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """TASKMETER_ENRICH=NONE turns enrichment off, as ROOT or ALL are read in any case (it
    was refused with a warning, and root,marked spans were enriched)."""
    monkeypatch.setenv("TASKMETER_ENRICH", "NONE")
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        built = Pipeline(EnrichingSpanProcessor().selector)
    try:
        with built.tracer.start_as_current_span("request"):
            pass
        assert built.wrapper.selector.selects_nothing
        assert not set(FIGURES) & set(built.one("request").attributes or {})
        assert "TASKMETER_ENRICH" not in caplog.text
    finally:
        built.provider.shutdown()


@pytest.mark.parametrize(("text", "reason"), [("none,root", "none beside"), (",", "empty")])
def test_a_self_contradicting_enrich_variable_is_one_config_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, text: str, reason: str
) -> None:
    """TASKMETER_ENRICH=none,root or only commas is warned about once, counted, and the
    default root,marked applies (it used to be read silently as none)."""
    key = "env.TASKMETER_ENRICH"
    monkeypatch.setitem(_log.error_counts, key, 0)
    monkeypatch.setattr(_log, "_seen", set(_log._seen) - {key})
    monkeypatch.setenv("TASKMETER_ENRICH", text)
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        first = EnrichingSpanProcessor()
        second = EnrichingSpanProcessor()
    assert first.selector.description == second.selector.description == "root,marked"
    assert _log.error_counts[key] == 2
    warnings = [r for r in caplog.records if "TASKMETER_ENRICH" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert reason in warnings[0].getMessage()


class _Hearing(SpanProcessor):
    """Counts the starts and endings it hears (a processor that uses both hooks)."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def on_start(self, span: object, parent_context: object = None) -> None:
        self.heard.append("start")

    def _on_ending(self, span: object) -> None:
        self.heard.append("ending")


def test_start_and_ending_reach_the_processors_that_use_them_added_at_any_time() -> None:
    """Processors whose on_start/_on_ending do something hear every span, whether wrapped
    at construction or added later; a removed one hears no more."""
    first, later = _Hearing(), _Hearing()
    wrapper = EnrichingSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()), first)
    provider = TracerProvider()
    provider.add_span_processor(wrapper)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("one"):
        pass
    wrapper.add_span_processor(later)
    with tracer.start_as_current_span("two"):
        pass
    wrapper.remove_span_processor(first)
    with tracer.start_as_current_span("three"):
        pass
    provider.shutdown()
    assert first.heard == ["start", "ending"] * 2
    assert later.heard == ["start", "ending"] * 2


def test_only_methods_whose_body_is_pass_are_skipped() -> None:
    """The check that spares unselected spans the calls of empty hooks skips nothing else."""

    def documented(self: object, span: object, parent_context: object = None) -> None:
        """Only a docstring."""

    class Lambdas(SpanProcessor):
        on_start = lambda self, span, parent_context=None: None  # noqa: E731
        _on_ending = lambda self, span: print(span)  # noqa: E731

    class Static(SpanProcessor):
        on_start = staticmethod(documented)

    class Intercepting(SpanProcessor):
        def __getattribute__(self, name: str) -> object:
            return super().__getattribute__(name)

    instance_hook = SpanProcessor()
    instance_hook.on_start = lambda span, parent_context=None: None  # type: ignore[method-assign]
    documented_class = type("Documented", (SpanProcessor,), {"on_start": documented})
    does_nothing = enrich_processor._does_nothing
    assert does_nothing(SpanProcessor(), "on_start")
    assert does_nothing(SpanProcessor(), "_on_ending")
    assert does_nothing(SimpleSpanProcessor(InMemorySpanExporter()), "on_start")
    assert does_nothing(documented_class(), "on_start")
    assert does_nothing(Lambdas(), "on_start")
    assert not does_nothing(Lambdas(), "_on_ending")
    assert not does_nothing(_Hearing(), "on_start")
    assert not does_nothing(_Hearing(), "_on_ending")
    assert not does_nothing(Static(), "on_start")
    assert not does_nothing(Intercepting(), "on_start")
    assert not does_nothing(instance_hook, "on_start")
    assert does_nothing(MeasurementSpanProcessor(), "on_start")  # a docstring only


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_drops_the_parents_open_spans(pipeline: Pipeline) -> None:
    """The spans open at a fork are the parent's: the child holds none of their readings
    (they would count against max_open for ever), and its own spans are enriched."""
    with pipeline.tracer.start_as_current_span("request"):
        assert len(pipeline.wrapper._open) == 1
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                inherited = len(pipeline.wrapper._open)
                with pipeline.tracer.start_span("child root", context=Context()):
                    opened = len(pipeline.wrapper._open)
                child = pipeline.one("child root")
                enriched = attr.CPU_TIME in (child.attributes or {})
                status = 0 if (inherited, opened, enriched) == (0, 1, True) else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert attr.CPU_TIME in (pipeline.one("request").attributes or {})


def _limited_request(limit: int | None, own: dict[str, int]) -> ReadableSpan:
    """A span with ``own`` attributes, enriched by CPU and memory probes, under ``limit``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=limit))
    provider.add_span_processor(
        EnrichingSpanProcessor(
            SimpleSpanProcessor(exporter), select="all", probes=[CpuTimeProbe(), PeakMemoryProbe()]
        )
    )
    with provider.get_tracer("app").start_as_current_span("request") as span:
        for key, value in own.items():
            span.set_attribute(key, value)
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    return finished


@pytest.mark.parametrize("copy_by_dict", [True, False])
def test_figures_cut_by_the_attribute_limit_are_counted_as_dropped(
    monkeypatch: pytest.MonkeyPatch, copy_by_dict: bool
) -> None:
    """Figures left off for the span attribute limit add to ``dropped_attributes``, on top
    of what the SDK dropped itself: the count is every attribute offered minus those kept."""
    monkeypatch.delenv("TASKMETER_MACHINE", raising=False)
    taskmeter.settings.reload()
    monkeypatch.setattr(enrich_processor, "_DICT_COPY_IS_FAITHFUL", copy_by_dict)
    own = {"a": 1, "b": 2, "c": 3}
    unlimited = _limited_request(None, own)
    figures = [key for key in unlimited.attributes or {} if key not in own]
    assert len(figures) == 6  # duration, cpu time/user/system/thread, memory peak
    assert unlimited.dropped_attributes == 0

    # Room for the span's own three and one figure: five figures are cut.
    span = _limited_request(4, own)
    assert {k: v for k, v in (span.attributes or {}).items() if k in own} == own
    assert len(span.attributes or {}) == 4
    assert span.dropped_attributes == 5

    # The SDK already dropped one of five own attributes (limit 4): all six figures cut.
    span = _limited_request(4, {**own, "d": 4, "e": 5})
    assert set(span.attributes or {}) == {"b", "c", "d", "e"}
    assert span.dropped_attributes == 1 + 6


def test_a_figure_the_span_already_has_is_not_counted_as_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attribute the span set itself under a figure's name is kept, not cut: the count
    is of figures really left off."""
    monkeypatch.delenv("TASKMETER_MACHINE", raising=False)
    taskmeter.settings.reload()
    span = _limited_request(2, {attr.DURATION: 7, "a": 1})
    assert dict(span.attributes or {}) == {attr.DURATION: 7, "a": 1}
    assert span.dropped_attributes == 5  # six figures, one of them the span's own


class _InterruptingRead(Probe):
    """A probe whose last reading is interrupted (``KeyboardInterrupt``, a Ctrl-C)."""

    name = "interrupting"

    def begin(self, *, reset_peak: bool = True) -> object:
        return None

    def read(self, state: object, figures: Figures) -> None:
        raise KeyboardInterrupt


def test_an_interrupt_while_a_selected_span_is_read_still_passes_the_span_on() -> None:
    """A ``KeyboardInterrupt`` raised while a selected span's last readings are taken
    reaches the application once the span has been passed to the wrapped processors:
    the span is exported, not lost."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichingSpanProcessor(
            SimpleSpanProcessor(exporter), select="all", probes=[_InterruptingRead()]
        )
    )
    try:
        with pytest.raises(KeyboardInterrupt):  # noqa: SIM117 - the span ends inside the raises
            with provider.get_tracer("app").start_as_current_span("interrupted"):
                pass
        assert [span.name for span in exporter.get_finished_spans()] == ["interrupted"]
    finally:
        provider.shutdown()
