"""What a task costs, as a ratio to a bare OpenTelemetry SDK span measured in the same run.

    python bench/bench_task.py [--quick]

Prints, for two SDK set-ups,

* ``sdk-min``: a SimpleSpanProcessor with an exporter that drops spans (the
  least the SDK can do per span; the strictest baseline), and
* ``sdk-batch``: the SDK's usual BatchSpanProcessor, with that exporter,
* ``sdk-otlp``: a BatchSpanProcessor with an exporter that encodes each batch
  to OTLP protobuf and drops the bytes (what a deployed application pays,
  minus the network),

the cost of ``with Task(...)`` and of ``with tracer.start_as_current_span(...)``
carrying the same number of attributes, and their ratio; then the cost per
subtask of a root task with 1k, 10k and 100k subtasks.  Rounds of the two are
interleaved and the median round is reported, so drift affects both alike.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

import taskmeter
from taskmeter import Task


class DropExporter(SpanExporter):
    """Accepts spans and does nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class EncodeExporter(SpanExporter):
    """Encodes spans to OTLP protobuf, as the OTLP exporters do, and drops the bytes."""

    def __init__(self) -> None:
        self.bytes = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.bytes += len(encode_spans(spans).SerializeToString())
        return SpanExportResult.SUCCESS


def make_provider(kind: str) -> TracerProvider:
    provider = TracerProvider()
    if kind == "sdk-min":
        provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    elif kind == "sdk-batch":
        provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=1 << 16))
    else:
        provider.add_span_processor(BatchSpanProcessor(EncodeExporter(), max_queue_size=1 << 16))
    return provider


def per_call_us(body: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    body(n)
    return (time.perf_counter() - start) / n * 1e6


def compare(kind: str, n: int, rounds: int) -> tuple[float, float, int]:
    provider = make_provider(kind)
    taskmeter.use_tracer_provider(provider)
    tracer = provider.get_tracer("bench")

    # A task span's attribute count, for a baseline span that carries as many.
    with Task("bench root"), Task("bench task") as sample:
        pass
    del sample
    counter = _AttributeCounter()
    provider.add_span_processor(counter)
    with Task("bench root"), Task("bench task"):
        pass
    provider._active_span_processor._span_processors = (  # drop the counter again
        provider._active_span_processor._span_processors[:-1]
    )
    n_attributes = counter.last
    attributes = {f"bench.attribute.{i}": float(i) for i in range(n_attributes)}

    # Each round ends with a flush, so the exporter's work (done by the batch
    # processor's thread) is counted, and the queue never overflows.
    def bare_spans(count: int) -> None:
        for _ in range(count):
            with tracer.start_as_current_span("bench task") as span:
                span.set_attributes(attributes)
        provider.force_flush()

    def tasks(count: int) -> None:
        for _ in range(count):
            with Task("bench task"):
                pass
        provider.force_flush()

    # Both run under a root (a span, and a task), as they would in an
    # application; the root task is renewed each round so that its subtask
    # list does not grow across rounds.
    bare: list[float] = []
    task: list[float] = []
    for round_no in range(rounds + 1):
        with tracer.start_as_current_span("bench root"):
            gc.collect()
            bare_us = per_call_us(bare_spans, n)
        with Task("bench root"):
            gc.collect()
            task_us = per_call_us(tasks, n)
        if round_no:  # the first round warms up
            bare.append(bare_us)
            task.append(task_us)
    provider.shutdown()
    taskmeter.use_tracer_provider(None)
    return statistics.median(bare), statistics.median(task), n_attributes


class _AttributeCounter(SimpleSpanProcessor):
    def __init__(self) -> None:
        super().__init__(DropExporter())
        self.last = 0

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == "bench task":
            self.last = len(span.attributes or {})


def subtask_scaling(sizes: Sequence[int]) -> list[tuple[int, float]]:
    results = []
    for size in sizes:
        provider = make_provider("sdk-min")
        taskmeter.use_tracer_provider(provider)
        gc.collect()
        start = time.perf_counter()
        with Task("root") as root:
            for _ in range(size):
                with Task("subtask"):
                    pass
        elapsed = time.perf_counter() - start
        assert len(root.subtasks) == size
        results.append((size, elapsed / size * 1e6))
        del root
        provider.shutdown()
        taskmeter.use_tracer_provider(None)
    return results


def lenskit_cost(n: int) -> float | None:
    try:
        from lenskit.logging.tasks import Task as LensKitTask
    except Exception:
        return None

    def body(count: int) -> None:
        for _ in range(count):
            with LensKitTask("bench task"):
                pass

    body(10)
    return per_call_us(body, n)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args(argv)
    n, rounds = (2_000, 3) if args.quick else (20_000, 7)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)

    print(f"taskmeter {taskmeter.__version__}, Python {sys.version.split()[0]}")
    print(f"cost of one task vs a bare SDK span with as many attributes (median of {rounds})")
    print(f"{'set-up':10} {'attrs':>5} {'bare span':>10} {'task':>10} {'ratio':>6}")
    for kind in ("sdk-min", "sdk-batch", "sdk-otlp"):
        bare, task, n_attributes = compare(kind, n, rounds)
        print(f"{kind:10} {n_attributes:5d} {bare:8.1f}us {task:8.1f}us {task / bare:5.2f}x")

    print("cost per subtask under one root (sdk-min), including the root's finish")
    scaling = subtask_scaling(sizes)
    first = scaling[0][1]
    for size, cost in scaling:
        print(
            f"{size:>8d} subtasks {cost:8.1f}us per subtask  ({cost / first:4.2f}x the 1k figure)"
        )

    lk = lenskit_cost(200 if args.quick else 1000)
    if lk is not None:
        print(f"LensKit Task, same machine: {lk:.1f}us per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
