"""Durable OTLP export: what cannot be delivered waits on disk, and arrives later.

::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from taskmeter.export import DurableSpanExporter, DurableSpanProcessor

    from .exporters import DurableSpanExporter
    from .processor import DurableSpanProcessor

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

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "endpoint_for": ".config",
    "sender_for": ".config",
    "Delivery": ".delivery",
    "DeliveryStats": ".delivery",
    "ExportRejectedError": ".delivery",
    "ExportUnavailableError": ".delivery",
    "DurableMetricExporter": ".exporters",
    "DurableSpanExporter": ".exporters",
    "spool_from_environment": ".exporters",
    "DurableSpanProcessor": ".processor",
    "SpansDroppedError": ".processor",
    "GrpcSender": ".senders",
    "HttpSender": ".senders",
    "Outcome": ".senders",
    "SendResult": ".senders",
    "Sender": ".senders",
    "redact_url": ".senders",
    "Batch": ".spool",
    "Spool": ".spool",
    "SpoolCorruptError": ".spool",
    "SpoolEntry": ".spool",
    "SpoolFullError": ".spool",
    "SpoolStats": ".spool",
    "decode_batch": ".spool",
    "encode_batch": ".spool",
}
"""Public name -> the module (relative to this package) that defines it.

Imported on first use (PEP 562): the exporters and the processor import the
OpenTelemetry SDK, which reading the ``OTEL_*`` configuration (``taskmeter
run`` before it starts the command) and replaying a spool (``taskmeter
flush``) do not need.
"""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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

    from .exporters import DurableSpanExporter
    from .processor import DurableSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(
        DurableSpanProcessor(DurableSpanExporter(spool, **exporter_options))
    )
    return provider
