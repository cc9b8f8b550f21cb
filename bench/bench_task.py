"""What a task costs, as a ratio to a bare OpenTelemetry SDK span measured in the same run.

    python bench/bench_task.py [--quick]

Prints, for two SDK set-ups,

* ``sdk-min``: a SimpleSpanProcessor with an exporter that drops spans (the
  least the SDK can do per span; the strictest baseline), and
* ``sdk-batch``: the SDK's usual BatchSpanProcessor, with that exporter,
* ``sdk-otlp``: a BatchSpanProcessor with an exporter that encodes each batch
  to OTLP protobuf and drops the bytes (what a deployed application pays,
  minus the network),

the cost of ``with tracer.start_as_current_span(...)`` carrying the same
attributes as a task span (set in one call, and one by one), of the same
span with the three system calls a task's readings make around it (two
``getrusage`` and the ``clear_refs`` write of the memory reset: the floor
under any task on the machine, since the calls also slow the code after
them), and of
``with Task(...)`` nested under a root task (kept in its subtasks, as in a
pipeline) and top-level, with the ratios of the tasks to the first; then the
cost per subtask of a root task with 1k, 10k and 100k subtasks, and the
memory a root keeps per finished subtask (its record).  Rounds of
the variants are interleaved and the median round is reported, so drift
affects all alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

import taskmeter
from _sdk import DropExporter
from taskmeter import Task
from taskmeter.probes.memory import _write_holding_gil


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


@dataclass
class Comparison:
    """Median cost per call, in microseconds, of each variant in one set-up."""

    n_attributes: int
    bare: float
    bare_one_by_one: float
    floor: float
    nested_task: float
    top_level_task: float


def compare(kind: str, n: int, rounds: int) -> Comparison:
    provider = make_provider(kind)
    taskmeter.use_tracer_provider(provider)
    tracer = provider.get_tracer("bench")

    # A task span's attributes (same names, values and types) for the
    # baseline span to carry.
    counter = _AttributeCounter()
    provider.add_span_processor(counter)
    with Task("bench root"), Task("bench task"):
        pass
    provider._active_span_processor._span_processors = (  # drop the counter again
        provider._active_span_processor._span_processors[:-1]
    )
    attributes = counter.last
    items = list(attributes.items())

    # Each round ends with a flush, so the exporter's work (done by the batch
    # processor's thread) is counted, and the queue never overflows.
    def bare_spans(count: int) -> None:
        for _ in range(count):
            with tracer.start_as_current_span("bench task") as span:
                span.set_attributes(attributes)
        provider.force_flush()

    def bare_spans_one_by_one(count: int) -> None:
        for _ in range(count):
            with tracer.start_as_current_span("bench task") as span:
                for key, value in items:
                    span.set_attribute(key, value)
        provider.force_flush()

    try:
        clear_refs: int | None = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        clear_refs = None
    getrusage, self_, write, one = (
        resource.getrusage,
        resource.RUSAGE_SELF,
        _write_holding_gil,
        b"5",
    )

    def floor_spans(count: int) -> None:
        for _ in range(count):
            getrusage(self_)
            if clear_refs is not None:
                write(clear_refs, one)
            with tracer.start_as_current_span("bench task") as span:
                span.set_attributes(attributes)
            getrusage(self_)
        provider.force_flush()

    def tasks(count: int) -> None:
        for _ in range(count):
            with Task("bench task"):
                pass
        provider.force_flush()

    # Spans and nested tasks run under a root (a span, a task), as they would
    # in an application; the root task is renewed each round so that its
    # subtask list does not grow across rounds.  Top-level tasks are each a
    # root of their own (nothing keeps them).
    results: dict[str, list[float]] = {
        "bare": [],
        "one by one": [],
        "floor": [],
        "nested": [],
        "top-level": [],
    }
    for round_no in range(rounds + 1):
        measured: dict[str, float] = {}
        with tracer.start_as_current_span("bench root"):
            gc.collect()
            measured["bare"] = per_call_us(bare_spans, n)
            gc.collect()
            measured["one by one"] = per_call_us(bare_spans_one_by_one, n)
            gc.collect()
            measured["floor"] = per_call_us(floor_spans, n)
        with Task("bench root"):
            gc.collect()
            measured["nested"] = per_call_us(tasks, n)
        gc.collect()
        measured["top-level"] = per_call_us(tasks, n)
        if round_no:  # the first round warms up
            for key, value in measured.items():
                results[key].append(value)
    provider.shutdown()
    taskmeter.use_tracer_provider(None)
    if clear_refs is not None:
        os.close(clear_refs)
    median = {key: statistics.median(values) for key, values in results.items()}
    return Comparison(
        len(attributes),
        median["bare"],
        median["one by one"],
        median["floor"],
        median["nested"],
        median["top-level"],
    )


class _AttributeCounter(SimpleSpanProcessor):
    def __init__(self) -> None:
        super().__init__(DropExporter())
        self.last: dict[str, Any] = {}

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == "bench task":
            self.last = dict(span.attributes or {})


def subtask_scaling(sizes: Sequence[int], rounds: int) -> list[tuple[int, float]]:
    """Median cost per subtask of a root with each number of subtasks.

    The sizes are run in turn, ``rounds`` times (after one warm-up round of
    the smallest), so that drift of the machine's speed affects them alike.
    """
    runs: dict[int, list[float]] = {size: [] for size in sizes}
    for round_no in range(rounds + 1):
        for size in sizes if round_no else sizes[:1]:
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
            if round_no:
                runs[size].append(elapsed / size * 1e6)
            del root
            provider.shutdown()
            taskmeter.use_tracer_provider(None)
    return [(size, statistics.median(costs)) for size, costs in runs.items()]


def kept_bytes_per_subtask(count: int) -> float:
    """Bytes a root keeps per finished subtask (traced allocations, after a collection)."""
    provider = make_provider("sdk-min")
    taskmeter.use_tracer_provider(provider)
    try:
        with Task("warm-up"), Task("subtask"):
            pass
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            with Task("root") as root:
                for _ in range(count):
                    with Task("subtask"):
                        pass
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(root.subtasks) == count
        return kept / count
    finally:
        provider.shutdown()
        taskmeter.use_tracer_provider(None)


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
    print(
        "cost of one task vs a bare SDK span carrying the same attributes, set in one "
        f"call (median of {rounds} rounds of {n})"
    )
    print(
        f"{'set-up':10} {'attrs':>5} {'bare span':>10} {'one by one':>11} "
        f"{'span + syscalls':>15} {'nested task':>15} {'top-level task':>16}"
    )
    for kind in ("sdk-min", "sdk-batch", "sdk-otlp"):
        c = compare(kind, n, rounds)
        print(
            f"{kind:10} {c.n_attributes:5d} {c.bare:8.1f}us {c.bare_one_by_one:8.1f}us "
            f"{c.floor:8.1f}us {c.floor / c.bare:4.2f}x "
            f"{c.nested_task:8.1f}us {c.nested_task / c.bare:4.2f}x "
            f"{c.top_level_task:8.1f}us {c.top_level_task / c.bare:4.2f}x"
        )

    scaling_rounds = 1 if args.quick else 3
    print(
        "cost per subtask under one root (sdk-min), including the root's finish "
        f"(median of {scaling_rounds})"
    )
    scaling = subtask_scaling(sizes, scaling_rounds)
    first = scaling[0][1]
    for size, cost in scaling:
        print(
            f"{size:>8d} subtasks {cost:8.1f}us per subtask  ({cost / first:4.2f}x the 1k figure)"
        )

    print(
        "span + syscalls: the bare span with a task's three system calls around it "
        "(two getrusage, the clear_refs write), the floor under any task here"
    )
    kept = kept_bytes_per_subtask(1_000 if args.quick else 10_000)
    print(f"memory a root keeps per finished subtask: {kept:.0f} bytes")

    lk = lenskit_cost(200 if args.quick else 1000)
    if lk is not None:
        print(f"LensKit Task, same machine: {lk:.1f}us per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
