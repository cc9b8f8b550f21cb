"""Durable OTLP export: what cannot be delivered waits on disk, and arrives later.

::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from taskmeter.export import DurableSpanExporter, DurableSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(DurableSpanExporter("/var/spool/myapp")))
    trace.set_tracer_provider(provider)

* :class:`DurableSpanExporter`, :class:`DurableMetricExporter`: OTLP
  exporters (HTTP/protobuf or gRPC, configured by arguments or the standard
  ``OTEL_EXPORTER_OTLP_*`` variables) that write each batch they cannot
  deliver to a :class:`Spool` and replay it when the endpoint answers again,
  in this process or a later one (``taskmeter flush``).  The spool directory
  is an argument or ``TASKMETER_SPOOL_DIR``.
* :class:`DurableSpanProcessor`: batches spans like the SDK's
  ``BatchSpanProcessor``, but spools its overflow instead of dropping it.
* :func:`durable_tracer_provider`: both, on a new tracer provider.

Delivery is at least once: a batch whose delivery was not confirmed (a lost
answer, a process killed after sending) is sent again, so a backend may see
a span (same trace and span id) or a metric point (same series, same
timestamps) twice.
"""

from __future__ import annotations

import os
from typing import Any

from .config import endpoint_for, sender_for
from .delivery import Delivery, DeliveryStats, ExportRejectedError, ExportUnavailableError
from .exporters import DurableMetricExporter, DurableSpanExporter, spool_from_environment
from .processor import DurableSpanProcessor, SpansDroppedError
from .senders import GrpcSender, HttpSender, Outcome, Sender, SendResult, redact_url
from .spool import (
    Batch,
    Spool,
    SpoolCorruptError,
    SpoolEntry,
    SpoolFullError,
    SpoolStats,
    decode_batch,
    encode_batch,
)

__all__ = [
    "Batch",
    "Delivery",
    "DeliveryStats",
    "DurableMetricExporter",
    "DurableSpanExporter",
    "DurableSpanProcessor",
    "ExportRejectedError",
    "ExportUnavailableError",
    "GrpcSender",
    "HttpSender",
    "Outcome",
    "SendResult",
    "Sender",
    "SpansDroppedError",
    "Spool",
    "SpoolCorruptError",
    "SpoolEntry",
    "SpoolFullError",
    "SpoolStats",
    "decode_batch",
    "durable_tracer_provider",
    "encode_batch",
    "endpoint_for",
    "redact_url",
    "sender_for",
    "spool_from_environment",
]


def durable_tracer_provider(
    spool: Spool | str | os.PathLike[str] | None = None, **exporter_options: Any
) -> Any:
    """A new ``TracerProvider`` exporting through a :class:`DurableSpanProcessor`.

    ``spool`` and ``exporter_options`` are :class:`DurableSpanExporter`'s.
    The resource is the SDK's default (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``).  Set it as the global provider, or pass
    it to :func:`taskmeter.use_tracer_provider`.
    """
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(
        DurableSpanProcessor(DurableSpanExporter(spool, **exporter_options))
    )
    return provider
