"""Helpers for testing code that uses taskmeter: capture spans in memory.

::

    from taskmeter.testing import capture_spans

    def test_training_is_measured():
        with capture_spans() as captured:
            train()
        span = captured.one("train model")
        assert span.attributes["taskmeter.cpu.time"] > 0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from . import tracing

__all__ = ["SpanCapture", "capture_spans"]


class SpanCapture:
    """Finished spans of taskmeter (and of :attr:`tracer`), kept in memory."""

    def __init__(self, *processors: SpanProcessor) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("taskmeter.testing")
        """A tracer whose spans are captured too (for user spans around tasks)."""

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        """The finished spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The single finished span called ``name`` (an ``AssertionError`` otherwise)."""
        found = self.named(name)
        if len(found) != 1:
            raise AssertionError(f"expected one span named {name!r}, found {len(found)}")
        return found[0]

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()


@contextmanager
def capture_spans(*processors: SpanProcessor) -> Iterator[SpanCapture]:
    """Send taskmeter's spans to memory for the duration of the block.

    Extra ``processors`` (a :class:`~taskmeter.measure.MeasurementSpanProcessor`,
    say) are added to the capturing provider.  The previous provider is
    restored on exit.
    """
    capture = SpanCapture(*processors)
    previous = tracing.current_tracer_provider()
    tracing.use_tracer_provider(capture.provider)
    try:
        yield capture
    finally:
        tracing.use_tracer_provider(previous)
        capture.provider.shutdown()
