"""What MeasurementSpanProcessor costs per ending span, against a baseline measured in the same run.

    python bench/bench_processor.py [--quick]

Two measurements:

* ``on_end``: the processor's ``on_end`` called on finished spans of each
  kind, minus a processor that does nothing called on the same spans (the
  cost the processor adds to the SDK's processor chain);
* ``in situ``: ``with tracer.start_as_current_span(...)`` through a
  TracerProvider whose BatchSpanProcessor drops the spans, with and without
  the processor beside it; the difference is the processor's share.

Span kinds: a plain span (no timer keys, not a task), a timer span of an
unmatched method, a timer span that yields one Measurement, one that yields
three (timing, CPU, memory), and a task span (per-task metrics).  Rounds of
the candidate and the baseline are interleaved and the median is reported.
Last, a ``time_method`` call against lsst.utils' ``timeMethod`` (when
lsst-utils is installed).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from _sdk import DropExporter, NoopProcessor
from taskmeter import attributes as attr
from taskmeter.measure import (
    CpuTimingMetric,
    MeasurementSpanProcessor,
    MemoryMetric,
    TimingMetric,
)

TARGET_PLAIN_US = 2.0
TARGET_MEASUREMENT_US = 10.0


def timer_attributes(method: str, task: str | None) -> dict[str, Any]:
    """The attributes time_method puts on a span, with realistic values."""
    values: dict[str, Any] = {
        attr.HOST_NAME: "node-1",
        attr.CODE_FUNCTION_NAME: f"pipeline.Task.{method}",
        attr.TIMER_METHOD: method,
        attr.TIMER_VERSION: 1,
        attr.TASK_LABEL: "process visit",
    }
    if task:
        values[attr.TIMER_TASK] = task
    for phase, utc, cpu in (("Start", "12:00:00.000000", 1.5), ("End", "12:00:02.250000", 3.25)):
        values[attr.TIMER_ATTRIBUTES[phase + "Utc"]] = f"2026-01-01T{utc}+00:00"
        values[attr.TIMER_ATTRIBUTES[phase + "CpuTime"]] = cpu
        values[attr.TIMER_ATTRIBUTES[phase + "UserTime"]] = cpu * 0.9
        values[attr.TIMER_ATTRIBUTES[phase + "SystemTime"]] = cpu * 0.1
        values[attr.TIMER_ATTRIBUTES[phase + "MaxResidentSetSize"]] = 512 << 20
        for suffix in attr.TIMER_KEY_SUFFIXES[5:]:  # the counts after MaxResidentSetSize
            values[attr.TIMER_ATTRIBUTES[phase + suffix]] = 1000
    return values


SPAN_KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain span (no timer keys)": (
        "GET /items",
        {
            "http.request.method": "GET",
            "url.path": "/items",
            "http.response.status_code": 200,
            "server.address": "example.org",
            "server.port": 443,
        },
    ),
    "timer span, no spec matches": ("Task.writeOutputs", timer_attributes("writeOutputs", "isr")),
    "timer span, 1 Measurement": ("Task.runDataRef", timer_attributes("runDataRef", "apPipe")),
    "timer span, 3 Measurements": ("Task.run", timer_attributes("run", "apPipe:isr")),
    "task span (per-task metrics)": (
        "train model",
        {
            attr.TASK_ID: "6f1c5a0e-2b7d-4d5e-9a3c-1b2c3d4e5f60",
            attr.TASK_STATUS: "finished",
            attr.TASK_SUBPROCESS: False,
            attr.HOST_NAME: "node-1",
            attr.PROCESS_PID: 1234,
            attr.DURATION: 12.5,
            attr.CPU_TIME: 11.0,
            attr.CPU_USER: 10.0,
            attr.CPU_SYSTEM: 1.0,
            attr.CPU_TOTAL: 11.0,
            attr.MEMORY_PEAK: 1 << 30,
        },
    ),
}
MEASUREMENTS_PER_KIND = {"timer span, 1 Measurement": 1, "timer span, 3 Measurements": 3}

SPECS = (
    TimingMetric(target="apPipe.runDataRef", package="ap_pipe", metric="RunDataRefTime"),
    TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime"),
    CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
    MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory"),
)


def finished_span(provider: TracerProvider, name: str, attributes: dict[str, Any]) -> ReadableSpan:
    tracer = provider.get_tracer("bench")
    span = tracer.start_span(name, attributes=attributes)
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


def per_call_us(body: Callable[[int], None], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    body(n)
    return (time.perf_counter() - start) / n * 1e6


def interleaved(
    candidate: Callable[[int], None], baseline: Callable[[int], None], n: int, rounds: int
) -> tuple[float, float]:
    candidate(n // 10)  # warm caches
    baseline(n // 10)
    with_us, without_us = [], []
    for _ in range(rounds):
        with_us.append(per_call_us(candidate, n))
        without_us.append(per_call_us(baseline, n))
    return statistics.median(with_us), statistics.median(without_us)


def on_end_loop(processor: SpanProcessor, span: ReadableSpan) -> Callable[[int], None]:
    on_end = processor.on_end

    def body(n: int) -> None:
        for _ in range(n):
            on_end(span)

    return body


def in_situ_loop(provider: TracerProvider, name: str, attributes: dict[str, Any]) -> Any:
    tracer = provider.get_tracer("bench")

    def body(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span(name, attributes=attributes):
                pass

    return body


def sdk_record_floor(meter_provider: MeterProvider, n: int, rounds: int) -> float:
    """What the SDK's Histogram.record costs with a Measurement's three attributes."""
    histogram = meter_provider.get_meter("bench").create_histogram("bench.floor", unit="s")
    point = {"taskmeter.metric.target": "isr.run", attr.TASK_LABEL: "visit", attr.HOST_NAME: "n"}

    def record(count: int) -> None:
        for _ in range(count):
            histogram.record(2.25, point)

    def nothing(count: int) -> None:
        for _ in range(count):
            pass

    with_us, without_us = interleaved(record, nothing, n, rounds)
    return with_us - without_us


def timer_vs_lsst(n: int, rounds: int) -> None:
    """A time_method call (no SDK) against lsst.utils' timeMethod, both into a dict."""
    try:
        from lsst.utils.timer import timeMethod
    except ImportError:
        print("time_method vs lsst.utils: lsst-utils not installed (it is in the test extra)")
        return
    from taskmeter import time_method

    class Ours:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @time_method
        def run(self) -> None:
            pass

    class Theirs:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @timeMethod
        def run(self) -> None:
            pass

    def calls(cls: type[Ours] | type[Theirs]) -> Callable[[int], None]:
        def body(count: int) -> None:
            run = cls().run
            for _ in range(count):
                run()

        return body

    ours_us, theirs_us = interleaved(calls(Ours), calls(Theirs), n, rounds)
    print(
        f"time_method call (no SDK): {ours_us:.2f}us; lsst.utils timeMethod: {theirs_us:.2f}us "
        f"({ours_us / theirs_us:.2f}x)"
    )


def sdk_provider(*processors: SpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=1 << 16))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans and rounds")
    args = parser.parse_args(argv)
    n, rounds = (5_000, 5) if args.quick else (50_000, 9)

    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    processor = MeasurementSpanProcessor(SPECS, meter_provider=meter_provider)
    noop = NoopProcessor()
    plain_provider = TracerProvider()
    print(f"python {sys.version.split()[0]}; {n} spans x {rounds} rounds, median round")
    print()
    print("on_end (processor minus a no-op processor, same spans)")
    print(f"{'span kind':34} {'with':>9} {'baseline':>9} {'cost':>9} {'per meas.':>10}")
    verdict: list[str] = []
    for kind, (name, attributes) in SPAN_KINDS.items():
        span = finished_span(plain_provider, name, attributes)
        with_us, without_us = interleaved(
            on_end_loop(processor, span), on_end_loop(noop, span), n, rounds
        )
        cost = with_us - without_us
        count = MEASUREMENTS_PER_KIND.get(kind)
        per = f"{cost / count:8.2f}us" if count else ""
        print(f"{kind:34} {with_us:7.2f}us {without_us:7.2f}us {cost:7.2f}us {per:>10}")
        if kind.startswith("plain") or kind.endswith("no spec matches"):
            verdict.append(f"{kind}: {cost:.2f}us (target <= {TARGET_PLAIN_US}us)")
        elif count:
            verdict.append(
                f"{kind}: {cost:.2f}us per span, {cost / count:.2f}us per Measurement "
                f"(target <= {TARGET_MEASUREMENT_US}us per span yielding a Measurement)"
            )
    floor = sdk_record_floor(meter_provider, n, rounds)
    print(f"{'(SDK Histogram.record, 3 attributes)':34} {floor:7.2f}us")
    verdict.append(
        f"of which the OpenTelemetry SDK's Histogram.record: {floor:.2f}us per Measurement"
    )
    print()
    print("in situ (BatchSpanProcessor + processor, minus BatchSpanProcessor alone)")
    print(f"{'span kind':34} {'with':>9} {'baseline':>9} {'cost':>9} {'ratio':>7}")
    with_provider = sdk_provider(processor)
    without_provider = sdk_provider()
    for kind, (name, attributes) in SPAN_KINDS.items():
        with_us, without_us = interleaved(
            in_situ_loop(with_provider, name, attributes),
            in_situ_loop(without_provider, name, attributes),
            n,
            rounds,
        )
        print(
            f"{kind:34} {with_us:7.2f}us {without_us:7.2f}us {with_us - without_us:7.2f}us "
            f"{with_us / without_us:6.2f}x"
        )
    with_provider.shutdown()
    without_provider.shutdown()
    print()
    timer_vs_lsst(n // 5, rounds)
    print()
    for line in verdict:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
