"""OTLP export of a run's root span: configured by option or the standard variables.

The OpenTelemetry SDK is imported only when an exporter is configured: it
takes about 0.1 s, more than the rest of ``taskmeter run``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..propagation import TraceParent

if TYPE_CHECKING:
    from ..task import Task

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_TIMEOUT_S = 10.0


class ExportConfig:
    """Where and how to send the span."""

    __slots__ = ("endpoint", "protocol", "timeout_s")

    def __init__(self, endpoint: str | None, protocol: str, timeout_s: float) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(
                f"OTLP protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
            )
        self.endpoint = endpoint
        """An explicit endpoint (``--otlp-endpoint``), or ``None`` to let the exporter read
        ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``."""
        self.protocol = protocol
        self.timeout_s = timeout_s

    def describe(self, environ: Mapping[str, str]) -> str:
        """The endpoint, for messages."""
        return self.endpoint or (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "(default endpoint)"
        )


def export_config(
    environ: Mapping[str, str],
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    disabled: bool = False,
) -> ExportConfig | None:
    """The export to do, or ``None``: an option, else the ``OTEL_*`` variables decide.

    Export happens when ``endpoint`` is given or ``OTEL_EXPORTER_OTLP_ENDPOINT``
    / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, unless ``disabled``,
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.  Raises
    ``ValueError`` for a protocol or timeout that cannot be used.
    """
    if disabled:
        return None
    if endpoint is None:
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
            return None
        if not (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        ):
            return None
    chosen = (
        protocol
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "http/protobuf"
    )
    timeout_text = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "").strip()
    )
    timeout_s = DEFAULT_TIMEOUT_S
    if timeout_text:
        try:
            timeout_s = float(timeout_text) / 1000.0  # the variables are in milliseconds
        except ValueError:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout_text!r} is not a number"
            ) from None
        if not timeout_s > 0:
            raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout_text!r} must be positive")
    if endpoint is not None and chosen == "http/protobuf":
        endpoint = _http_traces_url(endpoint)
    return ExportConfig(endpoint, chosen, timeout_s)


def _http_traces_url(base: str) -> str:
    # Like OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, to which the signal path is added.
    if "://" not in base:
        base = f"http://{base}"
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith("/v1/traces") else f"{trimmed}/v1/traces"


def export_root_span(
    config: ExportConfig,
    root: Task,
    *,
    ids: TraceParent,
    parent: TraceParent | None,
    attributes: dict[str, Any],
    error: str | None,
) -> str | None:
    """Send ``root`` as one span with the given ids; returns an error message or ``None``.

    The export runs on a daemon thread and is abandoned after the configured
    timeout (plus a second), so an unreachable collector cannot hold the
    command's exit status back for longer.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

    class PresetIds(IdGenerator):
        # The child was started with a traceparent naming these ids before
        # this span could exist; the span must carry exactly them.
        def generate_span_id(self) -> int:
            return ids.span_id

        def generate_trace_id(self) -> int:
            return ids.trace_id

    class Keep(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    keep = Keep()
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        # Neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named one.
        resource = resource.merge(Resource({"service.name": "taskmeter"}))
    provider = TracerProvider(resource=resource, id_generator=PresetIds())
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("taskmeter")
    context = None
    if parent is not None:
        remote = SpanContext(
            parent.trace_id, parent.span_id, is_remote=True, trace_flags=TraceFlags(parent.flags)
        )
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    start_ns = int((root.start_time or 0.0) * 1e9)
    end_ns = int((root.finish_time or 0.0) * 1e9)
    span = tracer.start_span(
        root.label, context=context, start_time=start_ns, attributes=attributes
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=max(end_ns, start_ns))

    exporter = _exporter(config)
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(exporter.export(keep.spans))
        except Exception as exc:  # the exporter's own failure, reported below
            outcome.append(exc)

    thread = threading.Thread(target=send, name="taskmeter-export", daemon=True)
    thread.start()
    thread.join(config.timeout_s + 1.0)
    where = config.describe(os.environ)
    if not outcome:
        return f"no answer from the OTLP endpoint {where} within {config.timeout_s:g} s"
    with contextlib.suppress(Exception):  # after a failed export, shutdown may fail too
        exporter.shutdown()
    result = outcome[0]
    if isinstance(result, Exception):
        return f"exporting to {where} failed: {type(result).__name__}: {result}"
    if result is not SpanExportResult.SUCCESS:
        return f"exporting to {where} failed (see the messages above)"
    return None


def _exporter(config: ExportConfig) -> Any:
    kwargs: dict[str, Any] = {"timeout": config.timeout_s}
    if config.endpoint is not None:
        kwargs["endpoint"] = config.endpoint
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if config.endpoint is not None and config.endpoint.startswith("http://"):
            kwargs["insecure"] = True
        return OTLPSpanExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(**kwargs)
