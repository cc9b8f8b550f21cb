"""End to end: Measurements and task metrics travel over OTLP through a real collector."""

from __future__ import annotations

import contextlib
import time

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from taskmeter import Task, time_method
from taskmeter.attributes import CPU_TIME, DURATION, MEMORY_PEAK
from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor, MemoryMetric, TimingMetric
from taskmeter.measure.instruments import TASK_DURATION, TASK_METRICS
from taskmeter.testing import capture_spans

from ..collector import CollectorUnderTest, wait_until
from ..helpers import burn_cpu

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


class Calibrate:
    """A pipeline task in LSST's shape: a full name, metadata, timed methods."""

    def __init__(self) -> None:
        self.metadata: dict[str, object] = {}

    def getFullName(self) -> str:
        return "calibrate"

    @time_method
    def run(self, seconds: float) -> None:
        burn_cpu(seconds)


def test_measurements_reach_the_collector_and_match_metadata(
    rotel_collector: CollectorUnderTest,
) -> None:
    """The values read back from what the collector forwarded equal the metadata's."""
    specs = [
        TimingMetric(target="calibrate.run", package="pipe_tasks", metric="CalibrateTime"),
        CpuTimingMetric(target="calibrate.run", package="pipe_tasks", metric="CalibrateCpuTime"),
        MemoryMetric(target="calibrate.run", package="pipe_tasks", metric="CalibrateMemory"),
    ]
    exporter = OTLPMetricExporter(endpoint=rotel_collector.grpc_endpoint, insecure=True, timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=600_000)
    meter_provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": "calibration"})
    )
    try:
        processor = MeasurementSpanProcessor(specs, meter_provider=meter_provider)
        task = Calibrate()
        with capture_spans(processor), Task("calibrate visit"):
            task.run(0.2)
    finally:
        meter_provider.shutdown(timeout_millis=10_000)  # exports once more, then stops

    sink = rotel_collector.sink
    names = (
        "pipe_tasks.calibratetime",
        "pipe_tasks.calibratecputime",
        "pipe_tasks.calibratememory",
    )
    arrived = wait_until(lambda: all(sink.metric_points(n) for n in names), timeout=15)
    assert arrived, f"not forwarded; collector log: {rotel_collector.collector.log_tail()}"

    full = {"calibrate": task.metadata}
    for spec, name in zip(specs, names, strict=True):
        (point,) = sink.metric_points(name)
        expected = spec.measure(full)
        assert point.kind == "histogram"
        assert point.unit == expected.unit
        assert point.point.count == 1
        assert point.point.sum == expected.value
        assert point.attributes == {
            "taskmeter.metric.target": "calibrate.run",
            "taskmeter.task.label": "calibrate visit",
            "host.name": point.attributes["host.name"],
        }
        assert point.resource["service.name"] == "calibration"
    (cpu,) = sink.metric_points("pipe_tasks.calibratecputime")
    assert 0.19 <= cpu.point.sum < 0.3
    (duration,) = sink.metric_points(TASK_DURATION)
    assert duration.attributes["taskmeter.task.label"] == "calibrate visit"
    assert duration.attributes["taskmeter.task.status"] == "finished"
    assert duration.point.sum >= 0.2


def test_collector_fixture_stops_the_collector(rotel_collector: CollectorUnderTest) -> None:
    """The collector's process ends when stopped, within the bounded wait."""
    collector = rotel_collector.collector
    process = collector._process
    assert process is not None and process.poll() is None
    started = time.monotonic()
    collector.stop()
    assert process.poll() is not None
    assert time.monotonic() - started < 10


def test_task_metrics_arrive_with_their_units_kinds_and_descriptions(
    rotel_collector: CollectorUnderTest,
) -> None:
    """Each per-task histogram reaches the collector as a cumulative histogram with the unit
    and description of TASK_METRICS; a failed task is counted beside a finished one (by
    status), so no description may speak of finished tasks only."""
    exporter = OTLPMetricExporter(endpoint=rotel_collector.grpc_endpoint, insecure=True, timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=600_000)
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        processor = MeasurementSpanProcessor(meter_provider=meter_provider)
        with capture_spans(processor):
            with Task("load"):
                burn_cpu(0.05)
            with contextlib.suppress(RuntimeError), Task("load"):
                raise RuntimeError("disk on fire")
    finally:
        meter_provider.shutdown(timeout_millis=10_000)

    sink = rotel_collector.sink
    measured = [m for m in TASK_METRICS if m.source in (DURATION, CPU_TIME, MEMORY_PEAK)]
    assert wait_until(lambda: all(sink.metric_points(m.name) for m in measured), timeout=15)
    for request in sink.requests("metrics"):
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    (spec,) = [m for m in TASK_METRICS if m.name == metric.name]
                    assert metric.description == spec.description
                    assert "finished" not in spec.description.lower()
                    assert metric.WhichOneof("data") == "histogram"
                    assert metric.histogram.aggregation_temporality == CUMULATIVE
    for metric in measured:
        points = sink.metric_points(metric.name)
        assert {p.unit for p in points} == {metric.unit}
        statuses = {p.attributes["taskmeter.task.status"]: p.point.count for p in points}
        assert statuses == {"finished": 1, "failed": 1}, metric.name
