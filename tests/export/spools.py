"""Reading what a spool holds, for tests."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from taskmeter.export import decode_batch


def spooled_span_names(spool: Path) -> list[str]:
    """The names of the spans in a spool's trace batches, oldest batch first."""
    names = []
    for path in sorted(spool.glob("*.traces.otlp")):
        request = ExportTraceServiceRequest()
        request.ParseFromString(decode_batch(path.read_bytes()).payload)
        names.extend(
            span.name
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        )
    return names
