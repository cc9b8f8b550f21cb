"""OTLP export of a run's root span: configured by option or the standard variables.

The OpenTelemetry SDK is imported only when an exporter is configured: it
takes about 0.1 s, more than the rest of ``taskmeter run``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..propagation import TraceParent
from ..settings import LONGEST_EXPORT_WAIT_S

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
        """The endpoint, for messages (without credentials)."""
        from ..export.senders import redact_url

        endpoint = self.endpoint or (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        )
        return redact_url(endpoint) if endpoint else "(default endpoint)"


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
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.

    Raises ``ValueError``, with a message naming the variable, for an
    endpoint, protocol or timeout variable that cannot be used: the user
    asked for export, and a run must not send elsewhere (the library's
    exporters warn and fall back to ``localhost``) or find out only after
    the command ran.  ``endpoint`` itself is checked by the caller.
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
    chosen = protocol
    if chosen is None:
        name, text = _variable(environ, "PROTOCOL") or ("", "http/protobuf")
        chosen = text.lower()  # enum values in any case, as the OTel spec asks (GRPC is grpc)
        if chosen not in PROTOCOLS:
            raise ValueError(f"{name}={text!r}: the OTLP protocol is one of {', '.join(PROTOCOLS)}")
    timeout_s = DEFAULT_TIMEOUT_S
    found = _variable(environ, "TIMEOUT")
    if found is not None:
        name, text = found
        try:
            timeout_s = float(text) / 1000.0  # the variables are in milliseconds
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a number (of milliseconds)") from None
        if not 0 < timeout_s <= LONGEST_EXPORT_WAIT_S:
            raise ValueError(
                f"{name}={text!r} must be a number of milliseconds more than 0 and up to "
                f"{LONGEST_EXPORT_WAIT_S * 1000:.0f} (an hour)"
            )
    if endpoint is None:
        from ..export.config import endpoint_variable_problem

        problem = endpoint_variable_problem("traces", environ, protocol=chosen)
        if problem is not None:
            raise ValueError(problem)
    if endpoint is not None and chosen == "http/protobuf":
        endpoint = _http_traces_url(endpoint)
    return ExportConfig(endpoint, chosen, timeout_s)


def _variable(environ: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """``OTEL_EXPORTER_OTLP_TRACES_<SUFFIX>``, else ``OTEL_EXPORTER_OTLP_<SUFFIX>``, if set:
    its name and value."""
    for name in (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


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
    command's exit status back for longer.  With ``TASKMETER_SPOOL_DIR`` set,
    a span that cannot be delivered waits in the spool.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
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

    return _send(config, keep.spans)


def _send(config: ExportConfig, spans: list[Any]) -> str | None:
    """Deliver ``spans`` (or spool them, with ``TASKMETER_SPOOL_DIR``); a message if not sent.

    The attempt runs on a daemon thread and is abandoned after the timeout
    (plus a second), so an unreachable collector cannot hold the command's
    exit status back for longer.  With a spool, batches earlier runs left
    there are delivered too, for at most :data:`FLUSH_BUDGET_S` more.
    """
    from ..export import DurableSpanExporter, sender_for, spool_from_environment
    from ..export.senders import redact_url

    try:
        sender = sender_for(
            "traces", endpoint=config.endpoint, protocol=config.protocol, timeout_s=config.timeout_s
        )
    except ValueError as exc:
        return str(exc)
    spool = spool_from_environment()
    exporter = DurableSpanExporter(spool, sender=sender, replay=False)
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(exporter.export(spans))
            if spool is not None and exporter.stats.sent_batches and spool.pending("traces"):
                exporter.force_flush(int(FLUSH_BUDGET_S * 1000))
        except Exception as exc:  # a failure of taskmeter itself, reported below
            outcome.append(exc)

    where = redact_url(sender.where)
    with _quiet():
        thread = threading.Thread(target=send, name="taskmeter-export", daemon=True)
        thread.start()
        thread.join(config.timeout_s + 1.0 + (FLUSH_BUDGET_S if spool is not None else 0.0))
    if not outcome:
        return f"no answer from the OTLP endpoint {where} within {config.timeout_s:g} s"
    with contextlib.suppress(Exception):
        sender.close()
    result = outcome[0]
    if isinstance(result, Exception):
        return f"exporting to {where} failed: {type(result).__name__}"
    stats = exporter.stats
    if stats.sent_items:
        return None
    detail = exporter.delivery.last_error or "no answer"
    if stats.spooled_items and spool is not None:
        return (
            f"the OTLP endpoint {where} did not take the span ({detail}); it waits in the "
            f"spool {spool.directory} ('taskmeter flush' delivers it)"
        )
    return f"exporting to {where} failed: {detail}"


FLUSH_BUDGET_S = 2.0
"""The longest a run spends delivering what earlier runs left in the spool."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep taskmeter's own export warnings off the terminal: the run prints one line."""
    from .._log import logger

    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
