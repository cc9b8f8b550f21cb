"""taskmeter's span processors never raise into the application, and contain a processor they wrap.

The OpenTelemetry SDK calls span processors without catching what they raise: an exception in
``on_start`` or ``on_end`` would come out of the application's ``start_as_current_span`` or
``span.end()``.  Each processor here is driven through a real ``TracerProvider``, with the
parts beneath it (a wrapped third-party processor, the meter, the exporter) failing on every
call, and with spans of odd shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskmeter import Task, _log
from taskmeter import attributes as attr
from taskmeter.enrich import EnrichingSpanProcessor
from taskmeter.export import DurableSpanExporter, DurableSpanProcessor
from taskmeter.measure import MeasurementSpanProcessor
from taskmeter.testing import capture_spans

SPANS = 25


class Exploding(SpanProcessor):
    """A third-party processor that raises from the methods named in ``failing``."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.calls: dict[str, int] = {}

    def _call(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if method in self.failing:
            raise RuntimeError(f"{method} is broken")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._call("on_start")

    def _on_ending(self, span: Span) -> None:
        self._call("on_ending")

    def on_end(self, span: ReadableSpan) -> None:
        self._call("on_end")

    def shutdown(self) -> None:
        self._call("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._call("force_flush")
        return True


METHODS = ("on_start", "on_ending", "on_end", "force_flush", "shutdown")


def run_spans(provider: TracerProvider, count: int = SPANS) -> None:
    tracer = provider.get_tracer("app")
    for i in range(count):
        with tracer.start_as_current_span(f"request {i}"):
            pass


@pytest.mark.parametrize("method", METHODS)
def test_a_wrapped_processor_that_raises_is_contained(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Inside EnrichingSpanProcessor, a processor raising from any method reaches neither the
    application nor the processors beside it (they still get every span, enriched); each
    failure is counted and the first is logged, once."""
    caplog.set_level(logging.WARNING, logger="taskmeter")
    exporter = InMemorySpanExporter()
    broken = Exploding(method)
    wrapper = EnrichingSpanProcessor(broken, SimpleSpanProcessor(exporter), select="all")
    provider = TracerProvider()
    provider.add_span_processor(wrapper)
    run_spans(provider)  # raises nothing
    assert provider.force_flush(5_000) is (method != "force_flush")
    provider.shutdown()
    spans = exporter.get_finished_spans()
    assert len(spans) == SPANS
    assert all(attr.CPU_TIME in (span.attributes or {}) for span in spans)
    key = f"enrich.processor.Exploding.{method}"
    expected = SPANS if method in ("on_start", "on_ending", "on_end") else 1
    assert _log.error_counts[key] == expected
    logged = [r for r in caplog.records if r.getMessage().startswith(key)]
    assert len(logged) == 1 and f"{method} is broken" in logged[0].getMessage()


def test_without_the_wrapper_the_sdk_lets_the_exception_through() -> None:
    """Why the containment matters: the SDK itself does not catch (the control case)."""
    provider = TracerProvider()
    provider.add_span_processor(Exploding("on_end"))
    with pytest.raises(RuntimeError, match="on_end is broken"):
        run_spans(provider, 1)
    provider.shutdown()


class OddSpan(ReadableSpan):
    """A span whose attributes cannot even be read."""

    @property
    def attributes(self) -> Any:
        raise RuntimeError("attributes unreadable")


def test_measurement_processor_never_raises() -> None:
    """A meter whose instruments raise, spans with unusable figures, a span whose attributes
    cannot be read: counted on taskmeter.processor.errors' key, nothing raised."""
    processor = MeasurementSpanProcessor(meter_provider=MeterProvider())
    for _, instrument in processor._task_instruments:
        instrument.record = _raises  # type: ignore[method-assign]
    with capture_spans(processor):
        for _ in range(5):
            with Task("app"):
                pass
    processor.on_end(OddSpan("odd"))
    processor.on_start(None, None)  # type: ignore[arg-type]
    assert processor.force_flush() is True
    processor.shutdown()
    assert sum(n for key, n in _log.error_counts.items() if key.startswith("measure.")) >= 6


def _raises(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("broken below")


class BrokenExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("export is broken")

    def shutdown(self) -> None:
        raise RuntimeError("shutdown is broken")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("flush is broken")


def broken_durable_exporter(tmp_path: Path) -> DurableSpanExporter:
    exporter = DurableSpanExporter(tmp_path, endpoint="http://127.0.0.1:9", replay=False)
    exporter.export = _raises  # type: ignore[method-assign]
    exporter.spill = _raises  # type: ignore[method-assign]
    exporter.force_flush = _raises  # type: ignore[method-assign]
    exporter.shutdown = _raises  # type: ignore[method-assign]
    return exporter


@pytest.mark.parametrize(
    "make_exporter",
    [lambda tmp_path: BrokenExporter(), broken_durable_exporter],
    ids=["third-party exporter", "durable exporter"],
)
def test_durable_processor_never_raises(
    tmp_path: Path, make_exporter: Callable[[Path], SpanExporter]
) -> None:
    """An exporter (and spool) failing on every call, a full queue spilling, a flush and a
    shutdown: the application sees nothing; the lost spans are counted."""
    processor = DurableSpanProcessor(
        make_exporter(tmp_path), max_queue_size=4, max_export_batch_size=2, schedule_delay_s=0.01
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    run_spans(provider, 40)
    processor.on_end(OddSpan("odd"))
    assert processor.force_flush(1_000) is False
    provider.shutdown()
    assert processor.dropped_spans >= 30
    assert _log.error_counts["export.processor.dropped"] >= 1
