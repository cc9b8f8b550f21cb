"""Durable exporters and processor: nothing lost while the endpoint is away, memory bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from taskmeter import _log
from taskmeter.export import DurableMetricExporter, DurableSpanExporter, DurableSpanProcessor
from tests.collector import OtlpSink, wait_until

from .servers import Answer, closed_port, scripted_endpoint, silent_endpoint

ROOT = Path(__file__).resolve().parents[2]


def make_spans(provider: TracerProvider, count: int, prefix: str = "span") -> set[bytes]:
    """End ``count`` spans; returns their span ids as the sink will see them."""
    tracer = provider.get_tracer("test")
    ids = set()
    for index in range(count):
        with tracer.start_as_current_span(f"{prefix} {index}") as span:
            ids.add(span.get_span_context().span_id.to_bytes(8, "big"))
    return ids


def span_ids(bodies: list[bytes]) -> list[bytes]:
    """Every span id in the OTLP trace request bodies, duplicates included."""
    found = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                found.extend(span.span_id for span in scope_spans.spans)
    return found


def test_spans_are_sent_directly_while_the_endpoint_answers(tmp_path: Path) -> None:
    """An answering endpoint gets every span; nothing touches the spool."""
    with scripted_endpoint() as endpoint:
        exporter = DurableSpanExporter(tmp_path / "spool", endpoint=endpoint.url)
        provider = TracerProvider()
        provider.add_span_processor(DurableSpanProcessor(exporter))
        ids = make_spans(provider, 300)
        provider.shutdown()
    assert set(span_ids([r.body for r in endpoint.requests])) == ids
    assert exporter.stats.sent_items == 300
    assert exporter.stats.spooled_items == 0
    assert not (tmp_path / "spool").exists()


def test_refusing_endpoint_spools_then_everything_is_replayed(tmp_path: Path) -> None:
    """503s: the batches wait in the spool; once the endpoint takes requests all spans arrive."""
    with scripted_endpoint(*[Answer(503)] * 3) as endpoint:
        exporter = DurableSpanExporter(tmp_path / "spool", endpoint=endpoint.url)
        processor = DurableSpanProcessor(exporter, max_export_batch_size=100)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        ids = make_spans(provider, 500)
        processor.force_flush(10_000)
        assert wait_until(lambda: set(span_ids([r.body for r in endpoint.requests])) >= ids, 15)
        provider.shutdown()
    assert exporter.stats.spooled_items > 0
    assert exporter.stats.replayed_items == exporter.stats.spooled_items
    assert exporter.stats.lost_items == 0
    assert exporter.spool is not None and exporter.spool.entries() == []
    assert _log.error_counts["export.traces.unavailable"] >= 1


def test_a_dead_endpoint_costs_one_attempt_per_back_off(tmp_path: Path) -> None:
    """While the endpoint is known down, batches go straight to disk: the exporting thread
    does not wait out a timeout per batch."""
    with silent_endpoint() as endpoint:
        exporter = DurableSpanExporter(tmp_path, endpoint=endpoint.url, timeout_s=0.5)
        provider = TracerProvider()
        spans: list[ReadableSpan] = []

        class Keep(DurableSpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                spans.append(span)

        provider.add_span_processor(Keep(exporter))
        make_spans(provider, 20)
        began = time.monotonic()
        results = [exporter.export(spans[i : i + 2]) for i in range(0, 20, 2)]
        elapsed = time.monotonic() - began
        exporter.shutdown()
    assert all(r is SpanExportResult.SUCCESS for r in results)
    assert elapsed < 1.5  # one 0.5 s timeout, then the back-off
    assert exporter.stats.spooled_items == 20
    assert exporter.stats.failed_attempts <= 3


def test_rejected_batches_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP 400: the data is refused for good; counted, logged, not spooled."""
    with scripted_endpoint(Answer(400)) as endpoint:
        exporter = DurableSpanExporter(tmp_path, endpoint=endpoint.url)
        provider = TracerProvider()
        provider.add_span_processor(DurableSpanProcessor(exporter))
        make_spans(provider, 10)
        provider.shutdown()
    assert exporter.stats.rejected_items == 10
    assert exporter.stats.spooled_items == 0
    assert "refused a request of 10 traces item(s)" in caplog.text


def test_without_a_spool_undeliverable_spans_are_counted_as_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No spool configured: a failed batch is lost, but never silently."""
    monkeypatch.delenv("TASKMETER_SPOOL_DIR", raising=False)
    exporter = DurableSpanExporter(endpoint=f"http://127.0.0.1:{closed_port()}")
    assert exporter.spool is None
    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(exporter))
    make_spans(provider, 5)
    provider.shutdown()
    assert exporter.stats.lost_items == 5
    assert "set TASKMETER_SPOOL_DIR to keep them" in caplog.text


def test_spool_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TASKMETER_SPOOL_DIR and TASKMETER_SPOOL_MAX_BYTES configure the default spool."""
    monkeypatch.setenv("TASKMETER_SPOOL_DIR", str(tmp_path / "env-spool"))
    monkeypatch.setenv("TASKMETER_SPOOL_MAX_BYTES", "2MiB")
    exporter = DurableSpanExporter(endpoint="http://127.0.0.1:1", replay=False)
    assert exporter.spool is not None
    assert exporter.spool.directory == tmp_path / "env-spool"
    assert exporter.spool.max_bytes == 2 * 1024 * 1024
    exporter.shutdown()


def test_a_later_process_delivers_what_an_earlier_one_spooled(tmp_path: Path) -> None:
    """A program that ran while the collector was down leaves its spans; the next process
    that exports to the spool delivers them when the endpoint answers."""
    spool = tmp_path / "spool"
    port = closed_port()
    program = textwrap.dedent(
        f"""
        from opentelemetry.sdk.trace import TracerProvider
        from taskmeter.export import DurableSpanExporter, DurableSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(DurableSpanProcessor(
            DurableSpanExporter({str(spool)!r}, endpoint="http://127.0.0.1:{port}")))
        tracer = provider.get_tracer("earlier")
        for i in range(250):
            with tracer.start_as_current_span(f"earlier {{i}}") as span:
                print(format(span.get_span_context().span_id, "016x"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    earlier = {bytes.fromhex(line) for line in result.stdout.split()}
    assert len(earlier) == 250 and any(spool.iterdir())
    sink = OtlpSink().start(port=port)
    try:
        exporter = DurableSpanExporter(spool, endpoint=sink.endpoint)  # replays at once
        assert wait_until(lambda: {s.span_id for s in sink.spans()} >= earlier, 15)
        exporter.shutdown()
    finally:
        sink.stop()
    assert not any(p for p in spool.iterdir() if not p.name.startswith("."))


def test_metric_points_wait_in_the_spool_and_arrive(tmp_path: Path) -> None:
    """A metric reader exporting while the endpoint refuses: the points arrive afterwards."""
    with scripted_endpoint(*[Answer(503)] * 2) as endpoint:
        exporter = DurableMetricExporter(tmp_path, endpoint=endpoint.url)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        provider = MeterProvider(metric_readers=[reader])
        counter = provider.get_meter("test").create_counter("things")
        for round_ in range(3):
            counter.add(5, {"round": round_})
            reader.collect()
        assert exporter.stats.spooled_items > 0
        spool = exporter.spool
        assert spool is not None
        # The replay thread delivers once the endpoint takes requests again.
        assert wait_until(lambda: spool.pending() == 0, 15)
        provider.shutdown()
    names = set()
    for request in endpoint.requests[2:]:
        decoded = ExportMetricsServiceRequest.FromString(request.body)
        for resource_metrics in decoded.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                names.update(metric.name for metric in scope_metrics.metrics)
    assert "things" in names
    assert exporter.stats.replayed_items == exporter.stats.spooled_items
    assert exporter.stats.lost_items == 0


class SlowExporter(SpanExporter):
    """Takes ``delay_s`` per export (a slow collector), and keeps what it got."""

    def __init__(self, inner: DurableSpanExporter, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.exported = 0

    def export(self, spans: object) -> SpanExportResult:
        time.sleep(self.delay_s)
        self.exported += len(spans)  # type: ignore[arg-type]
        return self.inner.export(spans)  # type: ignore[arg-type]

    def spill(self, spans: object) -> bool:
        return self.inner.spill(spans)  # type: ignore[arg-type]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def test_a_full_queue_spills_to_the_spool_instead_of_dropping(tmp_path: Path) -> None:
    """A slow exporter: the queue never holds more than its bound; overflow is spooled by the
    ending thread; every span arrives in the end."""
    with scripted_endpoint() as endpoint:
        exporter = SlowExporter(DurableSpanExporter(tmp_path, endpoint=endpoint.url), 0.3)
        processor = DurableSpanProcessor(exporter, max_queue_size=100, max_export_batch_size=50)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        largest = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal largest
            while not stop.is_set():
                largest = max(largest, processor.queued)
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        ids = make_spans(provider, 2000)
        stop.set()
        watcher.join()
        assert processor.force_flush(30_000)
        provider.shutdown()
    assert largest <= 100
    assert processor.spilled_spans > 0
    assert processor.dropped_spans == 0
    received = span_ids([r.body for r in endpoint.requests])
    assert set(received) == ids


def test_without_a_spool_overflow_is_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No spool to spill into: dropped spans are counted and logged, never silent."""
    monkeypatch.delenv("TASKMETER_SPOOL_DIR", raising=False)

    class Stuck(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            time.sleep(0.5)
            return SpanExportResult.SUCCESS

    processor = DurableSpanProcessor(Stuck(), max_queue_size=10, max_export_batch_size=5)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    make_spans(provider, 100)
    assert processor.dropped_spans >= 80
    assert processor.queued <= 10
    assert "span(s) dropped" in caplog.text
    provider.shutdown()


def test_shutdown_while_down_leaves_everything_in_the_spool(tmp_path: Path) -> None:
    """At exit with the collector away, queued spans are spooled, not lost."""
    exporter = DurableSpanExporter(tmp_path, endpoint=f"http://127.0.0.1:{closed_port()}")
    processor = DurableSpanProcessor(exporter, schedule_delay_s=60)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    make_spans(provider, 40)
    provider.shutdown()
    assert exporter.stats.spooled_items == 40
    assert exporter.stats.lost_items == 0
    assert sum(1 for _ in tmp_path.glob("*.traces.otlp")) >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_exports_its_own_spans(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """After fork the child has its own queue, worker and connections: its spans arrive, and
    the parent's queued spans are not sent twice."""
    exporter = DurableSpanExporter(tmp_path, endpoint=otlp_sink.endpoint)
    processor = DurableSpanProcessor(exporter, schedule_delay_s=60)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    parent_ids = make_spans(provider, 10, "parent")  # queued, not exported yet
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            make_spans(provider, 30, "child")
            status = 0 if processor.force_flush(10_000) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    provider.shutdown()
    names = [span.name for span in otlp_sink.spans()]
    assert sum(name.startswith("child") for name in names) == 30
    assert {s.span_id for s in otlp_sink.spans() if s.name.startswith("parent")} == parent_ids
    assert len(names) == 40


def test_the_replay_is_not_held_by_a_directory_named_like_a_batch(tmp_path: Path) -> None:
    """A directory named like the oldest batch does not stop the replay: the batches after it
    arrive, a flush reports nothing left at once (it waited out its timeout for the directory),
    and the directory stays."""
    spool = tmp_path / "spool"
    down = DurableSpanExporter(spool, endpoint=f"http://127.0.0.1:{closed_port()}", replay=False)
    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(down))
    ids = make_spans(provider, 20)
    provider.shutdown()
    assert down.stats.spooled_items == 20
    stranger = spool / "00000000000000000001-1-000000.traces.otlp"
    stranger.mkdir()
    with scripted_endpoint() as endpoint:
        exporter = DurableSpanExporter(spool, endpoint=endpoint.url)
        started = time.monotonic()
        assert exporter.force_flush(5_000)
        assert time.monotonic() - started < 4
        exporter.shutdown()
    assert set(span_ids([r.body for r in endpoint.requests])) == ids
    assert exporter.stats.replayed_items == 20
    assert stranger.is_dir()
    assert exporter.spool is not None and exporter.spool.entries() == []
