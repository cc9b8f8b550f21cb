"""OTLP span and metric exporters that keep what they cannot deliver in a spool.

They encode each batch with the OpenTelemetry exporters' own encoders (the
bytes are exactly the request an ``OTLPSpanExporter`` would send) and hand
it to a :class:`~taskmeter.export.delivery.Delivery`: sent at once while the
endpoint answers, spooled (and replayed later) while it does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import settings
from .._log import config_warning, swallowed
from .config import sender_for
from .delivery import Delivery, DeliveryStats
from .senders import Sender
from .spool import Spool

__all__ = ["DurableMetricExporter", "DurableSpanExporter", "spool_from_environment"]

DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
"""The longest a shutdown tries to deliver the spool before it leaves it for later."""
WORKER_SHUTDOWN_TIMEOUT_S = 0.5
"""The same in a worker process, whose batches are safe in the spool already and are
replayed by the parent process (which collects its records) or a later run."""


def spool_from_environment() -> Spool | None:
    """The spool ``TASKMETER_SPOOL_DIR`` names (bounded by ``TASKMETER_SPOOL_MAX_BYTES``),
    or ``None`` when it is not set."""
    directory = settings.usable_spool_dir()
    if directory is None:
        return None
    return Spool(directory, max_bytes=settings.spool_max_bytes())


def _spool(spool: Spool | str | os.PathLike[str] | None, max_bytes: int | None) -> Spool | None:
    if isinstance(spool, Spool):
        if max_bytes is not None:
            raise ValueError("max_bytes applies to a spool given as a directory, not a Spool")
        return spool
    if spool is None:
        from_environment = spool_from_environment()
        if from_environment is not None and max_bytes is not None:
            from_environment.max_bytes = max_bytes
        return from_environment
    if not isinstance(spool, str | os.PathLike):
        raise TypeError(f"spool must be a directory or a Spool, not {type(spool).__name__}")
    return Spool(spool, max_bytes=settings.spool_max_bytes() if max_bytes is None else max_bytes)


class _Durable:
    """What both exporters share: the spool, the sender and their delivery."""

    signal: str

    def _setup(
        self,
        spool: Spool | str | os.PathLike[str] | None,
        *,
        endpoint: str | None,
        protocol: str | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
        max_bytes: int | None,
        sender: Sender | None,
        replay: bool,
    ) -> None:
        if sender is None:
            sender = sender_for(
                self.signal,
                endpoint=endpoint,
                protocol=protocol,
                headers=headers,
                timeout_s=timeout_s,
            )
        elif sender.signal != self.signal:
            raise ValueError(f"a {sender.signal} sender cannot export {self.signal}")
        self._delivery = Delivery(self.signal, sender, _spool(spool, max_bytes), replay=replay)
        self._shutdown = False
        self._pid = os.getpid()

    @property
    def spools_first(self) -> bool:
        """Whether batches go to the spool before the network: in a worker process
        (a forked child or a ``multiprocessing`` child) with a spool, as
        :class:`~taskmeter.export.DurableSpanProcessor` does there."""
        if self._delivery.spool is None:
            return False
        from .processor import in_worker_process

        return os.getpid() != self._pid or in_worker_process()

    @property
    def spool(self) -> Spool | None:
        """Where undeliverable batches wait (``None``: they are dropped, counted)."""
        return self._delivery.spool

    @property
    def stats(self) -> DeliveryStats:
        """What was sent, spooled, replayed, rejected and lost by this exporter."""
        return self._delivery.stats

    @property
    def delivery(self) -> Delivery:
        """The delivery behind this exporter."""
        return self._delivery

    def _shutdown_timeout_s(self, asked_s: float) -> float:
        limit = WORKER_SHUTDOWN_TIMEOUT_S if self.spools_first else DEFAULT_SHUTDOWN_TIMEOUT_S
        return min(asked_s, limit)

    def _submit(self, encode: Any, items: int, *, network: bool = True) -> bool:
        if self._shutdown:
            # The SDK exports the last batches before shutting an exporter
            # down; anything later goes to the spool, never nowhere.
            network = False
        try:
            payload = encode()
        except Exception as exc:
            swallowed(f"export.{self.signal}.encode", exc)
            self._delivery.stats.lost_items += items
            return False
        try:
            if network:
                return self._delivery.submit(payload, items)
            return self._delivery.spool_only(payload, items)
        except Exception as exc:  # a bug below: counted, never raised into the SDK
            swallowed(f"export.{self.signal}.submit", exc)
            self._delivery.stats.lost_items += items
            return False


class DurableSpanExporter(_Durable, SpanExporter):
    """An OTLP span exporter whose undeliverable batches wait in a spool.

    Args:
        spool: The spool directory (or a :class:`Spool`); default
            ``TASKMETER_SPOOL_DIR``; with neither, batches that cannot be
            delivered are dropped (counted and logged).
        endpoint: Base URL of the collector (``http://127.0.0.1:4318``; the
            ``/v1/traces`` path is added for HTTP); default: the ``OTEL_*``
            variables, as OpenTelemetry's exporters read them.
        protocol: ``http/protobuf`` (default) or ``grpc``.
        headers: Extra headers (added to ``OTEL_EXPORTER_OTLP_HEADERS``).
        timeout_s: The longest one attempt may take (default 10 s).
        max_bytes: Bound of the spool (default ``TASKMETER_SPOOL_MAX_BYTES``, 256 MiB).
        sender: A ready :class:`~taskmeter.export.senders.Sender` instead.
        replay: Replay the spool on a background thread.

    Use it behind :class:`~taskmeter.export.DurableSpanProcessor` (or the
    SDK's ``BatchSpanProcessor``).  It never raises: a batch that can be
    neither delivered nor spooled makes :meth:`export` return ``FAILURE``,
    and is counted in :attr:`stats` and logged.
    """

    signal = "traces"

    def __init__(
        self,
        spool: Spool | str | os.PathLike[str] | None = None,
        *,
        endpoint: str | None = None,
        protocol: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
        sender: Sender | None = None,
        replay: bool = True,
    ) -> None:
        self._setup(
            spool,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            sender=sender,
            replay=replay,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Deliver the spans, or spool them; ``FAILURE`` only if they are lost."""
        if not spans:
            return SpanExportResult.SUCCESS
        ok = self._submit(lambda: _encode_spans(spans), len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def spill(self, spans: Sequence[ReadableSpan]) -> bool:
        """Write the spans to the spool without trying the network (``False``: lost)."""
        if not spans:
            return True
        return self._submit(lambda: _encode_spans(spans), len(spans), network=False)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver the spooled spans now; whether none is left."""
        try:
            return self._delivery.flush(timeout_millis / 1000)
        except Exception as exc:
            swallowed("export.traces.flush", exc)
            return False

    def shutdown(self) -> None:
        """Deliver what can be within a few seconds; the rest stays spooled."""
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._delivery.close(self._shutdown_timeout_s(DEFAULT_SHUTDOWN_TIMEOUT_S))
        except Exception as exc:
            swallowed("export.traces.shutdown", exc)


def _encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(spans).SerializeToString())


class DurableMetricExporter(_Durable, MetricExporter):
    """An OTLP metric exporter whose undeliverable batches wait in a spool.

    The arguments are :class:`DurableSpanExporter`'s, plus the metric
    exporter's ``preferred_temporality`` (by default what
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks for, as the
    OTLP exporters read it, else cumulative: a replayed duplicate then
    repeats a value instead of adding to it) and ``preferred_aggregation``.
    Use it in a ``PeriodicExportingMetricReader``.
    """

    signal = "metrics"

    def __init__(
        self,
        spool: Spool | str | os.PathLike[str] | None = None,
        *,
        endpoint: str | None = None,
        protocol: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
        sender: Sender | None = None,
        replay: bool = True,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
    ) -> None:
        if preferred_temporality is None:
            preferred_temporality = temporality_from_environment()
        MetricExporter.__init__(
            self,
            preferred_temporality=preferred_temporality,
            preferred_aggregation=preferred_aggregation,
        )
        self._setup(
            spool,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            sender=sender,
            replay=replay,
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Deliver the data points, or spool them; ``FAILURE`` only if they are lost."""
        points = _count_points(metrics_data)
        if points == 0:
            return MetricExportResult.SUCCESS
        # A worker may be ended at any moment (Pool.terminate): its points go
        # to the spool first, and the replay thread (or the parent) sends them.
        ok = self._submit(
            lambda: _encode_metrics(metrics_data), points, network=not self.spools_first
        )
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Deliver the spooled data points now; whether none is left.

        In a worker process (:attr:`spools_first`) the exported points are
        already safe in the spool: the replay thread sends them, and the
        caller is not held by the network.
        """
        if self.spools_first:
            return True
        try:
            return self._delivery.flush(timeout_millis / 1000)
        except Exception as exc:
            swallowed("export.metrics.flush", exc)
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Deliver what can be within a few seconds; the rest stays spooled."""
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._delivery.close(self._shutdown_timeout_s(timeout_millis / 1000))
        except Exception as exc:
            swallowed("export.metrics.shutdown", exc)


TEMPORALITY_PREFERENCE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"


def temporality_from_environment(
    environ: Mapping[str, str] | None = None,
) -> dict[type, AggregationTemporality] | None:
    """The temporality ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks for.

    ``cumulative`` (or unset): ``None``, every instrument cumulative;
    ``delta``: counters and histograms delta, up-down counters and gauges
    cumulative; ``lowmemory``: synchronous counters and histograms delta.
    Another value is reported once as a warning, and cumulative applies.
    """
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
    )

    text = settings.env_text(TEMPORALITY_PREFERENCE, environ)
    if text is None or text.lower() == "cumulative":
        return None
    delta = AggregationTemporality.DELTA
    if text.lower() == "delta":
        return {Counter: delta, Histogram: delta, ObservableCounter: delta}
    if text.lower() == "lowmemory":
        return {Counter: delta, Histogram: delta}
    config_warning(
        f"env.{TEMPORALITY_PREFERENCE}",
        "ignoring %s=%r: expected cumulative, delta or lowmemory; using cumulative",
        TEMPORALITY_PREFERENCE,
        text,
    )
    return None


def _encode_metrics(metrics_data: MetricsData) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    return bytes(encode_metrics(metrics_data).SerializeToString())


def _count_points(metrics_data: MetricsData) -> int:
    try:
        return sum(
            len(metric.data.data_points)
            for resource_metrics in metrics_data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        )
    except Exception:  # an odd MetricsData: count it as one item
        return 1
