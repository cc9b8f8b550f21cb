"""End to end: Measurements and task metrics travel over OTLP through a real collector."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from taskmeter import Task, time_method
from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor, MemoryMetric, TimingMetric
from taskmeter.measure.instruments import TASK_DURATION
from taskmeter.testing import capture_spans

from ..collector import CollectorUnderTest, wait_until
from ..helpers import burn_cpu


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
