"""A long-running process stays bounded: what taskmeter keeps returns to its baseline.

Each test drives thousands of spans or tasks through the real SDK and
taskmeter's processors, then checks, after a garbage collection, the sizes
of taskmeter's process-wide structures, open file descriptors, threads and
the memory traced by ``tracemalloc`` against a baseline taken in the same
test.  Growth of one object per span or task makes them fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from taskmeter import Task, _log, task, time_method, tracing
from taskmeter import attributes as attr
from taskmeter.enrich import EnrichingSpanProcessor
from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor, TimingMetric
from taskmeter.monitor import Monitor
from taskmeter.probes import peaks

TRACED_BYTES_PER_SPAN = 16
"""Memory a span may leave behind on average (a leaked object costs 50 bytes or more)."""


class CountingExporter(SpanExporter):
    """Counts exported spans, and those carrying figures, and keeps none."""

    def __init__(self) -> None:
        self.exported = 0
        self.enriched = 0

    def export(self, spans: Any) -> SpanExportResult:
        batch: list[ReadableSpan] = list(spans)
        self.exported += len(batch)
        self.enriched += sum(1 for s in batch if s.attributes and attr.DURATION in s.attributes)
        return SpanExportResult.SUCCESS


class Stack:
    """Enrichment around an exporter and the Measurement processor, as in a service."""

    def __init__(self, select: str = "root,marked,name:req *", max_open: int = 10_000) -> None:
        self.exporter = CountingExporter()
        self.meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        specs = [
            TimingMetric(target="Worker.run", package="p", metric="RunTime"),
            CpuTimingMetric(target="Worker.run", package="p", metric="RunCpu"),
        ]
        self.measure = MeasurementSpanProcessor(
            specs, meter_provider=self.meters, task_metrics=True
        )
        self.enrich = EnrichingSpanProcessor(
            SimpleSpanProcessor(self.exporter), self.measure, select=select, max_open=max_open
        )
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.enrich)
        self.tracer: Tracer = self.provider.get_tracer("soak")

    def sizes(self) -> dict[str, int]:
        """Every structure that could grow with the number of spans or tasks."""
        return {
            "running tasks": len(task._running),
            "open peak trackers": sum(r.open_count for r in list(peaks._registers)),
            "open enriched spans": len(self.enrich._open),
            "measure match cache": len(self.measure._matches),
            "task metric attribute sets": len(self.measure._task_attributes),
            "measurement attribute sets": len(self.measure._measurement_attributes),
            "logged message keys": len(_log._seen) + len(_log._last_logged),
            "swallowed errors": sum(_log.error_counts.values()),
            "threads": threading.active_count(),
            "open file descriptors": len(os.listdir("/proc/self/fd")),
        }


@pytest.fixture
def stack() -> Iterator[Stack]:
    built = Stack()
    previous = tracing.current_tracer_provider()
    tracing.use_tracer_provider(built.provider)
    try:
        yield built
    finally:
        tracing.use_tracer_provider(previous)
        built.provider.shutdown()
        built.meters.shutdown()


class Worker:
    """An LSST-style task object whose ``run`` is timed."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return "Worker"

    @time_method
    def run(self) -> None:
        self.metadata.clear()


def _settle() -> None:
    """Collect garbage, then start one task, which releases what dropped tasks held."""
    gc.collect()
    with Task("settle"):
        pass
    gc.collect()


def _traffic(stack: Stack, spans: int) -> None:
    """``spans`` spans in all: requests with a nested span, tasks top-level and nested,
    timed calls, from this thread, another thread and asyncio tasks."""
    tracer = stack.tracer
    worker = Worker()

    def requests(count: int) -> None:
        for i in range(count // 2):
            with (
                tracer.start_as_current_span(f"req {i % 20}"),
                tracer.start_as_current_span("inner"),
            ):
                pass

    def tasks(count: int) -> None:
        for i in range(count // 3):
            with Task(f"top {i % 10}"), Task("nested"):
                worker.run()

    async def handlers(count: int) -> None:
        async def one(i: int) -> None:
            with Task(f"async {i % 5}"), tracer.start_as_current_span("req async"):
                await asyncio.sleep(0)

        for start in range(0, count // 2, 200):
            await asyncio.gather(*(one(i) for i in range(start, min(count // 2, start + 200))))

    quarter = spans // 4
    thread = threading.Thread(target=requests, args=(quarter,))
    thread.start()
    requests(quarter)
    tasks(quarter)
    asyncio.run(handlers(quarter))
    thread.join()


def test_ten_thousand_spans_leave_structures_fds_and_memory_at_baseline(
    stack: Stack,
) -> None:
    """After 10k spans (requests, tasks, timed calls, in threads and asyncio), every
    structure, the fd and thread counts are back at the baseline, and traced memory
    grew by less than TRACED_BYTES_PER_SPAN bytes per span."""
    _traffic(stack, 2_000)  # caches, attribute sets, metric streams: made once
    _settle()
    tracemalloc.start()
    try:
        _settle()
        baseline = stack.sizes()
        traced_before = tracemalloc.get_traced_memory()[0]
        exported_before = stack.exporter.exported
        _traffic(stack, 10_000)
        _settle()
        traced_after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    spans = stack.exporter.exported - exported_before
    assert spans >= 9_000
    assert stack.exporter.enriched > 0
    assert stack.sizes() == baseline
    assert traced_after - traced_before < TRACED_BYTES_PER_SPAN * spans


def _abandoned_span(tracer: Tracer, name: str) -> None:
    # Started, never ended, dropped: a request whose handler was cancelled.
    tracer.start_span(name)


def test_spans_dropped_before_ending_release_their_readings(stack: Stack) -> None:
    """Selected spans that are garbage-collected without having ended give back their
    place in the open set and their peak trackers; spans after them are enriched."""
    _settle()
    trackers = sum(r.open_count for r in list(peaks._registers))
    enriched = stack.exporter.enriched
    for i in range(5_000):
        _abandoned_span(stack.tracer, f"req {i}")
    gc.collect()
    with stack.tracer.start_as_current_span("req after"):
        assert len(stack.enrich._open) == 1
        assert sum(r.open_count for r in list(peaks._registers)) == trackers + 1
    assert stack.enrich._open == {}
    assert sum(r.open_count for r in list(peaks._registers)) == trackers
    assert stack.exporter.enriched == enriched + 1


def test_dropped_spans_never_use_up_max_open() -> None:
    """With max_open=100, 1000 spans dropped unended (in batches, with spans that end
    between them) still leave every ended span enriched and nothing counted."""
    small = Stack(select="name:req *", max_open=100)
    for batch in range(10):
        for i in range(100):
            _abandoned_span(small.tracer, f"req dropped {batch}.{i}")
        gc.collect()
        with small.tracer.start_as_current_span("req kept"):
            pass
    small.provider.shutdown()
    assert small.exporter.enriched == small.exporter.exported == 10
    assert _log.error_counts["enrich.max_open"] == 0


def test_tasks_dropped_while_running_are_forgotten_with_their_trackers(stack: Stack) -> None:
    """Tasks started in a context that is then dropped (and their running subtasks),
    never finished, leave neither an entry among the running tasks nor an open peak
    tracker once collected; traced memory returns to its baseline."""
    contextvars.Context().run(Task("dropped first").start)  # its debug line, once
    _settle()
    baseline = stack.sizes()
    tracemalloc.start()
    try:
        traced_before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):
            dropped = Task(f"dropped {i}")
            contextvars.Context().run(dropped.start)
            child = Task("dropped child", parent=dropped)
            contextvars.Context().run(child.start)
            del dropped, child
        _settle()
        traced_after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert stack.sizes() == baseline
    assert traced_after - traced_before < TRACED_BYTES_PER_SPAN * 4_000


def test_a_running_task_someone_holds_stays_running() -> None:
    """Only dropped tasks are forgotten: a task held by the caller, started in a
    context that is gone, is still found by id and finishes with its figures."""
    held = Task("held")
    contextvars.Context().run(held.start)
    gc.collect()
    _settle()
    sub = Task("sub", parent=held.task_id)
    assert sub.parent_id == held.task_id
    assert task._running_task(held.task_id) is held
    held.finish()
    assert held.cpu_time is not None and held.peak_memory is not None


def test_removed_monitor_jobs_leave_the_schedule_and_release_their_callbacks() -> None:
    """1000 jobs added and removed, none of them due (a task saving a file each):
    the schedule keeps no more than a few of them, and none keeps its callback."""
    monitor = Monitor()

    class Refresh:
        def __call__(self) -> None:
            pass

    try:
        callbacks = [Refresh() for _ in range(1_000)]
        handles = [monitor.add(callback, interval=3600.0) for callback in callbacks]
        keeper = monitor.add(Refresh(), interval=3600.0)
        for handle in handles:
            monitor.remove(handle)
        assert len(monitor._jobs) <= 18  # the keeper and at most 17 removed ones
        assert monitor.job_count == 1
        del callbacks, handles
        gc.collect()
        assert not [o for o in gc.get_objects() if type(o) is Refresh][1:]
        monitor.remove(keeper)
    finally:
        monitor.stop()
