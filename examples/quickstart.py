"""A small pipeline measured by taskmeter: no collector needed.

    python examples/quickstart.py [--out runs/quickstart.json]

Loads data (allocating a known amount of memory), trains for a few epochs
(burning CPU), evaluates, then prints the task tree and writes the task file.
Each task is also an OpenTelemetry span: set ``OTEL_EXPORTER_OTLP_ENDPOINT``
(for instance ``http://127.0.0.1:4318``) to send them to a collector.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter import Task, format_tree

MIB = 1024 * 1024


def load_data(size_mib: int) -> bytearray:
    """Allocate and touch ``size_mib`` MiB, as reading a data set would."""
    data = bytearray(size_mib * MIB)
    for offset in range(0, len(data), 4096):
        data[offset] = 1
    return data


def burn_cpu(seconds: float) -> float:
    """Compute for about ``seconds`` of CPU time."""
    deadline = time.process_time() + seconds
    total = 0.0
    while time.process_time() < deadline:
        for i in range(1, 2000):
            total += math.sqrt(i)
    return total


def setup_tracing() -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "taskmeter-quickstart"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart.json"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=256)
    args = parser.parse_args()

    provider = setup_tracing()
    with Task("quickstart pipeline", file=args.out) as pipeline:
        with Task("load data"):
            data = load_data(args.data_mib)
        with Task("train model"):
            for epoch in range(args.epochs):
                with Task(f"epoch {epoch + 1}"):
                    burn_cpu(0.2)
        del data
        with Task("evaluate"):
            burn_cpu(0.1)
    provider.shutdown()

    print(format_tree(pipeline))
    print(f"\ntask file: {args.out}  (trace {pipeline.trace_id})")


if __name__ == "__main__":
    main()
