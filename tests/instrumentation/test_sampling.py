"""Trace sampling does not change the metrics taskmeter derives from spans.

A span the sampler does not record (or one made with no SDK tracer provider)
reaches no span processor; its task or timed call hands its figures to every
live MeasurementSpanProcessor instead, so task metrics and Measurements count
every task and call, sampled or not, and each once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

from taskmeter import Task, _unrecorded, tracing
from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor
from taskmeter.measure.instruments import TASK_DURATION

from ..collector import CollectorUnderTest, wait_until
from ..helpers import burn_cpu
from ..pipeline_tasks import IsrTask
from .runner import run_instrumented_program


@contextlib.contextmanager
def sampled_by(sampler: Any, **options: Any) -> Iterator[tuple[InMemoryMetricReader, Any]]:
    """A tracer provider with ``sampler`` and a MeasurementSpanProcessor; yields the
    metric reader and the exporter of the recorded spans."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    provider = TracerProvider(sampler=sampler)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    provider.add_span_processor(MeasurementSpanProcessor(meter_provider=meters, **options))
    previous = tracing.current_tracer_provider()
    tracing.use_tracer_provider(provider)
    try:
        yield reader, spans
    finally:
        tracing.use_tracer_provider(previous)
        provider.shutdown()
        meters.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found = []
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def test_tasks_of_unrecorded_spans_are_counted_with_their_figures() -> None:
    """ALWAYS_OFF: no span is recorded, yet each task is on the task metrics, by status,
    with the duration the task measured."""
    with sampled_by(ALWAYS_OFF) as (reader, spans):
        tasks = []
        for _ in range(3):
            with Task("step") as task:
                burn_cpu(0.01)
            tasks.append(task)
        with contextlib.suppress(RuntimeError), Task("step") as failed:
            raise RuntimeError("no disk")
        found = {p.attributes["taskmeter.task.status"]: p for p in points(reader, TASK_DURATION)}
    assert spans.get_finished_spans() == ()
    assert set(found) == {"finished", "failed"}
    assert found["finished"].count == 3 and found["failed"].count == 1
    assert found["finished"].sum == pytest.approx(sum(t.duration for t in tasks), rel=1e-9)
    assert found["failed"].sum == pytest.approx(failed.duration, rel=1e-9)
    assert found["finished"].attributes["taskmeter.task.label"] == "step"


def test_a_ratio_sampler_counts_every_task_once() -> None:
    """Half the traces sampled: the recorded tasks reach the processor as spans, the others
    directly; the count is the number of tasks, none twice, none lost."""
    with sampled_by(TraceIdRatioBased(0.5)) as (reader, spans):
        for _ in range(60):
            with Task("step"):
                pass
        (point,) = points(reader, TASK_DURATION)
    recorded = len(spans.get_finished_spans())
    assert 0 < recorded < 60  # both paths were taken (2 ** -59 chance of a false failure)
    assert point.count == 60


def test_timed_calls_of_unrecorded_spans_give_their_measurements() -> None:
    """A timed method under ALWAYS_OFF: its Measurement is recorded, with the value the
    metadata keys it wrote give (ground truth: the same readings)."""
    spec = CpuTimingMetric(target="isr.run", package="pipe", metric="isr_cpu")
    with sampled_by(ParentBased(ALWAYS_OFF), specs=[spec]) as (reader, _spans):
        isr = IsrTask()
        isr.run(0.05)
        (point,) = points(reader, "pipe.isr_cpu")
    metadata = isr.metadata
    expected = metadata["runEndCpuTime"][-1] - metadata["runStartCpuTime"][-1]
    assert point.count == 1
    assert point.sum == pytest.approx(expected, rel=1e-9)
    assert 0.04 < point.sum < 0.5
    assert point.attributes["taskmeter.metric.target"] == "isr.run"


def test_without_an_sdk_provider_tasks_are_counted() -> None:
    """No SDK tracer provider at all (the API's non-recording spans): a processor made with
    its own meter provider still counts the tasks."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    processor = MeasurementSpanProcessor(meter_provider=meters)
    previous = tracing.current_tracer_provider()
    tracing.use_tracer_provider(None)
    try:
        with Task("bare"):
            pass
        (point,) = points(reader, TASK_DURATION)
        assert point.count == 1
    finally:
        tracing.use_tracer_provider(previous)
        processor.shutdown()
        meters.shutdown()


def test_unrecorded_false_and_shutdown_stop_it() -> None:
    """``unrecorded=False`` leaves unsampled tasks out; a processor shut down is no longer
    handed any, nor one that was dropped."""
    with sampled_by(ALWAYS_OFF, unrecorded=False) as (reader, _spans):
        with Task("step"):
            pass
        assert points(reader, TASK_DURATION) == []

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    processor = MeasurementSpanProcessor(meter_provider=meters)
    assert any(ref() is processor for ref in _unrecorded.sinks)
    processor.shutdown()
    assert all(ref() is not processor for ref in _unrecorded.sinks)
    with sampled_by(ALWAYS_OFF, unrecorded=False), Task("step"):
        pass
    assert points(reader, TASK_DURATION) == []
    meters.shutdown()

    with pytest.raises(TypeError, match="unrecorded must be a bool"):
        MeasurementSpanProcessor(unrecorded="yes")  # type: ignore[arg-type]


def test_a_failing_processor_does_not_reach_the_task() -> None:
    """A processor that fails on an unrecorded task counts the error; the task ends."""

    class Broken(MeasurementSpanProcessor):
        def _record_task(self, name: str, raw: Any) -> None:
            raise RuntimeError("broken histogram")

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    processor = Broken(meter_provider=meters)
    try:
        with sampled_by(ALWAYS_OFF, unrecorded=False), Task("step") as task:
            pass
        assert task.status.value == "finished"
        (error,) = points(reader, "taskmeter.processor.errors")
        assert error.value == 1 and error.attributes["error.type"] == "RuntimeError"
    finally:
        processor.shutdown()
        meters.shutdown()


PROGRAM = """
import json
from taskmeter import Task
for _ in range(3):
    with Task("step"):
        pass
print(json.dumps({"ok": True}))
"""


def test_unsampled_tasks_reach_the_collector_under_opentelemetry_instrument(
    rotel_collector: CollectorUnderTest,
) -> None:
    """OTEL_TRACES_SAMPLER=always_off under opentelemetry-instrument: no span reaches the
    collector, the three tasks do, on taskmeter.task.duration."""
    ran = run_instrumented_program(
        ["-c", PROGRAM],
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.grpc_endpoint,
            "OTEL_TRACES_SAMPLER": "always_off",
            "OTEL_SERVICE_NAME": "sampling-check",
        },
    )
    sink = rotel_collector.sink
    assert wait_until(lambda: sink.metric_points(TASK_DURATION), 10.0), ran.stderr
    (point,) = sink.metric_points(TASK_DURATION)
    assert point.point.count == 3
    assert sink.spans("step") == []
