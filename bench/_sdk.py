"""Stand-ins for the parts of an SDK pipeline that the benchmarks keep out of their figures."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class DropExporter(SpanExporter):
    """Accepts spans and does nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class NoopProcessor(SpanProcessor):
    """A processor that receives every span and does nothing (a baseline)."""

    def on_end(self, span: ReadableSpan) -> None:
        return None
