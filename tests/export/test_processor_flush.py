"""DurableSpanProcessor.force_flush keeps to its timeout while an export is under way."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from taskmeter.export import DurableSpanExporter, DurableSpanProcessor

from .servers import Answer, scripted_endpoint, silent_endpoint
from .test_exporters import make_spans

EXPORT_TIMEOUT_S = 3.0


def test_force_flush_returns_at_its_timeout_while_the_worker_waits_on_the_network(
    tmp_path: Path,
) -> None:
    """An endpoint that never answers holds the worker's export for the exporter's timeout:
    force_flush(200) gives up after about 200 ms (False), and nothing is lost."""
    with silent_endpoint() as endpoint:
        exporter = DurableSpanExporter(
            tmp_path, endpoint=endpoint.url, protocol="http/protobuf", timeout_s=EXPORT_TIMEOUT_S
        )
        processor = DurableSpanProcessor(exporter, schedule_delay_s=0.05)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 1, "first")
        time.sleep(0.3)  # the worker is now exporting the first span
        make_spans(provider, 1, "second")
        began = time.monotonic()
        flushed = processor.force_flush(200)
        elapsed = time.monotonic() - began
        provider.shutdown()
    assert flushed is False
    assert elapsed < 1.0, f"force_flush(200) took {elapsed:.2f} s"
    assert exporter.stats.lost_items == 0
    assert exporter.stats.spooled_items == 2
    assert processor.dropped_spans == 0


def test_a_flush_shorter_than_a_slow_answer_loses_nothing() -> None:
    """A collector that answers after 0.6 s, no spool, force_flush(300): the export
    begun is not cut short (a cut send is taken for a dead collector, and without a
    spool its spans would be dropped): the span is delivered, once."""
    with scripted_endpoint(Answer(delay_s=0.6)) as endpoint:
        exporter = DurableSpanExporter(
            endpoint=endpoint.url, protocol="http/protobuf", timeout_s=EXPORT_TIMEOUT_S
        )
        processor = DurableSpanProcessor(exporter, schedule_delay_s=30)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 1, "slow")
        processor.force_flush(300)
        provider.shutdown()
    assert exporter.stats.lost_items == 0
    assert exporter.stats.sent_items == 1
    assert len(endpoint.requests) == 1


def test_a_flush_that_leaves_spans_queued_says_so(tmp_path: Path) -> None:
    """Spans still queued when the flush's time is up: ``False``, not ``True``."""
    with scripted_endpoint(Answer(delay_s=0.5)) as endpoint:
        exporter = DurableSpanExporter(
            tmp_path, endpoint=endpoint.url, protocol="http/protobuf", timeout_s=EXPORT_TIMEOUT_S
        )
        processor = DurableSpanProcessor(exporter, schedule_delay_s=30, max_export_batch_size=1)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 3, "queued")
        flushed = processor.force_flush(200)
        provider.shutdown()
    assert flushed is False
    assert exporter.stats.lost_items == 0
