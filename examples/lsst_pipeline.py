"""An LSST-style pipeline measured the lsst.verify way, with OpenTelemetry.

    python examples/lsst_pipeline.py [--otlp-endpoint http://127.0.0.1:4317]
                                     [--metadata-out runs/ccdProcessor_metadata.json]

Two tasks in the shape of ``lsst.pipe.base.Task`` (a full name, a
``metadata`` mapping, subtasks) time their methods with ``@time_method``,
which writes lsst.utils' keys (``runStartCpuTime``, ...) into the metadata
and makes each call a span.  A ``MeasurementSpanProcessor`` turns the spans
of the targets below into Measurements, recorded as OpenTelemetry
histograms and exported over OTLP (to the console without an endpoint).
The full metadata is also written to a JSON file, which ``taskmeter
measure`` reads with the same specs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter import Task, time_method
from taskmeter.measure import (
    CpuTimingMetric,
    MeasurementSpanProcessor,
    MemoryMetric,
    TimingMetric,
    measure_metadata,
)

# The metrics, as a pipeline's lsst.verify configuration would name them.
SPECS = (
    TimingMetric(target="ccdProcessor.runDataRef", package="pipe_tasks", metric="ProcessCcdTime"),
    CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
    MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory"),
)


class PipelineTask:
    """The parts of lsst.pipe.base.Task that timing needs: names, metadata, subtasks."""

    _DefaultName = "task"

    def __init__(self, parent: PipelineTask | None = None) -> None:
        self.name = self._DefaultName
        self.parent = parent
        self.metadata: dict[str, Any] = {}
        self.subtasks: list[PipelineTask] = []

    def getFullName(self) -> str:
        """``ccdProcessor.isr``: the task's path, as LSST names it."""
        if self.parent is None:
            return self.name
        return f"{self.parent.getFullName()}.{self.name}"

    def makeSubtask(self, task_class: type[PipelineTask]) -> PipelineTask:
        subtask = task_class(parent=self)
        self.subtasks.append(subtask)
        return subtask

    def getFullMetadata(self) -> dict[str, Any]:
        """Every task's metadata keyed by its path with colons, as LSST writes it."""
        full = {self.getFullName().replace(".", ":"): self.metadata}
        for subtask in self.subtasks:
            full.update(subtask.getFullMetadata())
        return full


class IsrTask(PipelineTask):
    _DefaultName = "isr"

    @time_method
    def run(self, exposure: list[float]) -> list[float]:
        """Remove the instrument signature (here: some arithmetic on a large list)."""
        bias = sum(exposure) / len(exposure)
        return [math.sqrt(abs(pixel - bias)) for pixel in exposure]


class ProcessCcdTask(PipelineTask):
    _DefaultName = "ccdProcessor"

    def __init__(self, parent: PipelineTask | None = None) -> None:
        super().__init__(parent)
        self.isr = self.makeSubtask(IsrTask)

    @time_method
    def runDataRef(self, detector: int, pixels: int) -> float:
        exposure = [float((i * 7919 + detector) % 1000) for i in range(pixels)]
        corrected = self.isr.run(exposure)
        return sum(corrected)


def metric_exporter(endpoint: str | None) -> MetricExporter:
    if endpoint is None:
        return ConsoleMetricExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--otlp-endpoint", help="OTLP/gRPC endpoint of a collector")
    parser.add_argument(
        "--metadata-out", type=Path, default=Path("runs/ccdProcessor_metadata.json")
    )
    parser.add_argument("--detectors", type=int, default=3)
    parser.add_argument("--pixels", type=int, default=200_000)
    args = parser.parse_args(argv)

    # The OpenTelemetry set-up an application does once: metrics and traces.
    resource = Resource.create({"service.name": "lsst-pipeline-example"})
    reader = PeriodicExportingMetricReader(
        metric_exporter(args.otlp_endpoint), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    metrics.set_meter_provider(meter_provider)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(MeasurementSpanProcessor(SPECS))
    if args.otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp_endpoint, insecure=True))
        )
    trace.set_tracer_provider(tracer_provider)

    task = ProcessCcdTask()
    with Task("process visit"):
        for detector in range(args.detectors):
            task.runDataRef(detector, args.pixels)

    # The same Measurements from the metadata (last call wins, as in lsst.verify).
    full_metadata = task.getFullMetadata()
    args.metadata_out.parent.mkdir(parents=True, exist_ok=True)
    args.metadata_out.write_text(json.dumps(full_metadata, indent=1))
    report = measure_metadata(full_metadata, SPECS)
    for measurement in report.measurements:
        print(f"{measurement.metric} = {measurement.value:.6g} {measurement.unit}")
    print(f"metadata: {args.metadata_out}")

    tracer_provider.shutdown()
    meter_provider.shutdown()  # exports the histograms a last time
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
