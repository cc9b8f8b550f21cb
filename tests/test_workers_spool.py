"""Spans of worker processes go through the export spool the parent shares with them.

Workers end abruptly (``Pool.terminate``, ``os._exit``), so a worker's durable processor writes
each batch to the spool before sending it, and its task records reach the parent only after
that write.  The parent replays what its workers spooled when their records arrive.  The
collector here is an OTLP sink on a port that refuses connections at first, then starts
listening (the outage ends), or an endpoint that accepts and never answers.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider

import taskmeter
from taskmeter import Task
from taskmeter.export import (
    DurableSpanExporter,
    DurableSpanProcessor,
    Outcome,
    Sender,
    SendResult,
    Spool,
)
from taskmeter.multiprocess import init_worker, worker_context
from tests import mp_workers
from tests.collector import OtlpSink, free_port, wait_until
from tests.export.servers import silent_endpoint
from tests.export.spools import spooled_span_names
from tests.worker_fixtures import fork_only, fresh_inbox  # noqa: F401 (autouse)


class Durable:
    """This process's task spans go through a DurableSpanProcessor to ``endpoint``."""

    def __init__(self, spool: Path, endpoint: str, timeout_s: float = 2.0) -> None:
        self.exporter = DurableSpanExporter(spool, endpoint=endpoint, timeout_s=timeout_s)
        self.processor = DurableSpanProcessor(self.exporter, schedule_delay_s=0.05)
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        taskmeter.use_tracer_provider(self.provider)

    def close(self) -> None:
        taskmeter.use_tracer_provider(None)
        self.provider.shutdown()


def received_ids(sink: OtlpSink) -> set[str]:
    return {span.span_id.hex() for span in sink.spans()}


@fork_only
def test_fork_workers_spans_wait_in_the_spool_and_the_parent_delivers_them(
    tmp_path: Path,
) -> None:
    """Collector down while forked workers run their tasks: their spans are in the spool when
    their records come back.  The collector comes up; the parent, told by the records that its
    workers spooled, replays them with no flush and no new span of its own: every worker span
    arrives, once."""
    port = free_port()
    spool = tmp_path / "spool"
    durable = Durable(spool, f"http://127.0.0.1:{port}")
    sink = OtlpSink()
    try:
        with Task("stage") as stage:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                results = pool.map(mp_workers.quick_task, [f"chunk {i}" for i in range(8)])
            names = spooled_span_names(spool)
            assert sorted(n for n in names if n.startswith("chunk")) == sorted(
                f"chunk {i}" for i in range(8)
            )
            sink.start(port)
        # The records were collected when the stage finished: the parent replays the spool.
        workers = {r["span_id"] for r in results}
        assert len(stage.subtasks) == 8
        assert wait_until(lambda: received_ids(sink) >= workers, 15), received_ids(sink)
        durable.provider.force_flush(10_000)
        assert wait_until(lambda: stage.span_id in received_ids(sink), 10)
        ids = [span.span_id.hex() for span in sink.spans()]
        assert len(ids) == len(set(ids)) == 9
    finally:
        durable.close()
        sink.stop()


@fork_only
def test_workers_do_not_wait_for_a_silent_collector_and_lose_nothing(tmp_path: Path) -> None:
    """A collector that accepts and never answers: a worker's task ends after a spool write,
    not after an export attempt, and a pool ended at once (terminate) leaves every span of its
    workers' finished tasks in the spool."""
    spool = tmp_path / "spool"
    try:
        with silent_endpoint() as endpoint:
            durable = Durable(spool, endpoint.url, timeout_s=3.0)
            began = time.monotonic()
            with Task("stage"), multiprocessing.get_context("fork").Pool(2) as pool:
                pool.map(mp_workers.quick_task, [f"chunk {i}" for i in range(8)])
            elapsed = time.monotonic() - began
    finally:
        durable.close()  # the endpoint is gone: a refused connection ends any attempt at once
    names = spooled_span_names(spool)
    assert sorted(n for n in names if n.startswith("chunk")) == [f"chunk {i}" for i in range(8)]
    assert "stage" in names
    assert elapsed < 2.5, f"the workers waited on the collector ({elapsed:.1f} s)"


def test_spawned_workers_spool_to_the_same_directory(tmp_path: Path) -> None:
    """spawn, with the durable set-up as the workers' initializer: their spans and the parent's
    share one spool, and all arrive once the collector is up."""
    port = free_port()
    spool = tmp_path / "spool"
    endpoint = f"http://127.0.0.1:{port}"
    durable = Durable(spool, endpoint)
    sink = OtlpSink()
    try:
        with Task("stage") as stage:
            with multiprocessing.get_context("spawn").Pool(
                2,
                initializer=init_worker,
                initargs=(worker_context(), mp_workers.setup_durable, str(spool), endpoint),
            ) as pool:
                results = pool.map(mp_workers.quick_task, [f"spawned {i}" for i in range(4)])
            assert {r["pid"] for r in results} - {os.getpid()}
            names = spooled_span_names(spool)
            assert sorted(n for n in names if n.startswith("spawned")) == [
                f"spawned {i}" for i in range(4)
            ]
            sink.start(port)
        assert len(stage.subtasks) == 4
        workers = {r["span_id"] for r in results}
        assert wait_until(lambda: received_ids(sink) >= workers, 15)
        for span in sink.spans():
            if span.name.startswith("spawned"):
                assert span.parent_span_id.hex() == stage.span_id
    finally:
        durable.close()
        sink.stop()


def test_spool_first_writes_each_batch_before_sending_it(tmp_path: Path) -> None:
    """spool_first=True: a flush only writes the spool (it returns at once with the collector
    silent); the replay thread sends from there once the collector answers."""
    with silent_endpoint() as endpoint:
        exporter = DurableSpanExporter(tmp_path, endpoint=endpoint.url, timeout_s=3.0)
        processor = DurableSpanProcessor(exporter, schedule_delay_s=60, spool_first=True)
        assert processor.spools_first
        provider = TracerProvider()
        provider.add_span_processor(processor)
        for i in range(10):
            with provider.get_tracer("t").start_as_current_span(f"span {i}"):
                pass
        began = time.monotonic()
        assert processor.force_flush(10_000)
        assert time.monotonic() - began < 1.0
        assert sorted(spooled_span_names(tmp_path)) == sorted(f"span {i}" for i in range(10))
        processor.close(shutdown_exporter=False)
        exporter.delivery.close(0.1)


def test_spool_first_needs_a_spool_and_a_bool(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("TASKMETER_SPOOL_DIR", raising=False)
    no_spool = DurableSpanExporter(endpoint="http://127.0.0.1:9", replay=False)
    processor = DurableSpanProcessor(no_spool, spool_first=True)
    assert not processor.spools_first  # without a spool, batches are sent directly
    processor.shutdown()
    assert not DurableSpanProcessor(
        DurableSpanExporter(tmp_path, endpoint="http://127.0.0.1:9", replay=False)
    ).spools_first  # not a worker process
    with pytest.raises(TypeError, match="spool_first"):
        DurableSpanProcessor(no_spool, spool_first="yes")  # type: ignore[arg-type]


def test_notice_replays_batches_another_process_spooled(tmp_path: Path) -> None:
    """A delivery that spooled nothing itself replays the spool when told others did."""
    sink = OtlpSink().start()
    exporter = DurableSpanExporter(tmp_path, endpoint=sink.endpoint)
    try:
        Spool(tmp_path).put("traces", ExportTraceServiceRequest().SerializeToString(), 1)
        time.sleep(0.3)
        assert Spool(tmp_path).pending() == 1  # nothing replays it yet
        from taskmeter.export.delivery import notice_spooled_elsewhere

        notice_spooled_elsewhere()
        assert wait_until(lambda: Spool(tmp_path).pending() == 0, 10)
        assert exporter.stats.replayed_batches == 1
    finally:
        exporter.shutdown()
        sink.stop()


class _RecordingSender(Sender):
    """Delivers everything, noting whether instrumentation was suppressed at each attempt."""

    signal = "traces"
    timeout_s = 1.0

    def __init__(self) -> None:
        self.suppressed: list[bool] = []

    @property
    def where(self) -> str:
        return "memory"

    def send(self, payload: bytes, timeout_s: float | None = None) -> SendResult:
        self.suppressed.append(bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY)))
        return SendResult(Outcome.DELIVERED, "ok")


def test_replayed_requests_are_not_instrumented(tmp_path: Path) -> None:
    """An instrumented HTTP or gRPC client must not make a span of a replayed request: in a
    worker every batch is replayed, and each such span would make a batch of its own."""
    sender = _RecordingSender()
    exporter = DurableSpanExporter(tmp_path, sender=sender)
    processor = DurableSpanProcessor(exporter, schedule_delay_s=60, spool_first=True)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    assert processor.force_flush(5_000)
    assert wait_until(lambda: Spool(tmp_path).pending() == 0, 10)
    provider.shutdown()
    assert sender.suppressed and all(sender.suppressed)
