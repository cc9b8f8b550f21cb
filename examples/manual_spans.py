"""Spans your code starts itself, enriched with taskmeter's figures (configured in code).

    python examples/manual_spans.py [--otlp-endpoint http://127.0.0.1:4317]

The application already traces with ``tracer.start_as_current_span``.  One
change in its OpenTelemetry set-up, wrapping the exporting processor in an
``EnrichingSpanProcessor``, makes the spans it selects (here: the root span
and the spans named ``load *`` or ``train *``) carry the CPU time (process
and thread), peak memory and energy of the work they enclosed.  The others
(``report``) are exported as they were.
"""

from __future__ import annotations

import argparse
import math
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter.enrich import EnrichingSpanProcessor, SpanSelector


class PrintFigures(SpanProcessor):
    """Prints each span's taskmeter figures as it ends (to show what the exporter receives)."""

    def on_end(self, span: ReadableSpan) -> None:
        figures = span.attributes or {}
        if "taskmeter.cpu.time" not in figures:
            print(f"{span.name}: not enriched")
            return
        print(
            f"{span.name}: cpu {figures['taskmeter.cpu.time']:.3f} s "
            f"(thread {figures.get('taskmeter.cpu.thread', float('nan')):.3f} s), "
            f"peak memory {figures['taskmeter.memory.peak'] / 2**20:.1f} MiB"
        )


def exporting_processors(endpoint: str | None) -> list[SpanProcessor]:
    """An OTLP exporter when there is a collector; the printer in every case."""
    processors: list[SpanProcessor] = [PrintFigures()]
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
        processors.append(BatchSpanProcessor(exporter))
    return processors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--otlp-endpoint", help="OTLP/gRPC endpoint of a collector")
    parser.add_argument("--mib", type=int, default=100, help="MiB the 'load data' step holds")
    parser.add_argument("--cpu-s", type=float, default=0.3, help="CPU seconds of 'train model'")
    args = parser.parse_args(argv)

    # The application's OpenTelemetry set-up, with the exporting processor wrapped.
    provider = TracerProvider(resource=Resource.create({"service.name": "manual-spans-example"}))
    provider.add_span_processor(
        EnrichingSpanProcessor(
            *exporting_processors(args.otlp_endpoint),
            select=SpanSelector(names=["load *", "train *"], roots=True),
        )
    )
    trace.set_tracer_provider(provider)

    # The application's own tracing, unchanged.
    tracer = trace.get_tracer("manual-spans-example")
    with tracer.start_as_current_span("pipeline"):
        with tracer.start_as_current_span("load data"):
            data = bytearray(args.mib * 2**20)
            for offset in range(0, len(data), 4096):
                data[offset] = 1
            del data
        with tracer.start_as_current_span("train model"):
            deadline = time.thread_time() + args.cpu_s
            total = 0.0
            while time.thread_time() < deadline:
                total += sum(math.sqrt(i) for i in range(1, 1000))
        with tracer.start_as_current_span("report"):
            print(f"checksum {total:.0f}")
    provider.shutdown()  # exports what is left
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
