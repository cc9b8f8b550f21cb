"""Put an :class:`~taskmeter.enrich.EnrichingSpanProcessor` in front of a provider's processors.

When the application (or a distro's configurator) built the tracer provider,
its exporting processors are already registered, and the SDK offers no
public way to list or replace them: ``TracerProvider.add_span_processor``
only appends.  Appending a wrapper would leave the exporters receiving the
spans unenriched.  So this module reaches, once, into the provider's
``_active_span_processor`` (the SDK's ``SynchronousMultiSpanProcessor`` or
``ConcurrentMultiSpanProcessor``, whose ``_span_processors`` tuple the SDK
itself replaces under its ``_lock`` when a processor is added), and swaps
the registered processors for one wrapper around them.  :meth:`Wrapped.undo`
swaps them back, keeping any processor added since.

While it is there, a ``BatchSpanProcessor`` that feeds taskmeter's
:class:`~taskmeter.export.DurableSpanExporter` (what a configurator makes of
``OTEL_TRACES_EXPORTER=taskmeter``) is replaced by a
:class:`~taskmeter.export.DurableSpanProcessor` around the same exporter,
which spools what its queue cannot hold instead of dropping it.  With
``TASKMETER_SPOOL_DIR`` set and spans going to another OTLP exporter, a
warning says how to make that export durable.

A provider of another shape is counted and logged: nothing is enriched
then, but the extra processors (Measurements, task metrics) are still added
beside the exporters when the provider takes processors at all.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .. import settings
from .._log import config_warning, swallowed
from ..enrich import EnrichingSpanProcessor, SpanSelector

__all__ = ["ProviderShapeError", "Wrapped", "wrap_provider"]


class ProviderShapeError(TypeError):
    """The tracer provider is not one whose processors taskmeter can wrap."""


class Wrapped:
    """An enriching wrapper installed in a provider, and how to take it out again."""

    def __init__(
        self,
        multi: SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor,
        wrapper: EnrichingSpanProcessor,
        added: tuple[SpanProcessor, ...],
        replaced: dict[SpanProcessor, SpanProcessor] | None = None,
    ) -> None:
        self._multi = multi
        self.wrapper = wrapper
        self._added = added
        self.replaced: dict[SpanProcessor, SpanProcessor] = dict(replaced or {})
        """The durable processors put in place of batch processors, and those they replaced."""

    def undo(self) -> None:
        """Put the wrapped processors back in the wrapper's place; drop the ones taskmeter added."""
        multi: Any = self._multi
        with multi._lock:
            restored: list[SpanProcessor] = []
            for processor in multi._span_processors:
                if processor is self.wrapper:
                    restored.extend(
                        self.replaced.get(p, p)
                        for p in self.wrapper.processors
                        if p not in self._added
                    )
                else:
                    restored.append(processor)
            multi._span_processors = tuple(restored)
        # The spans open now end outside the wrapper: their readings (a sampled
        # probe's registration with the monitor among them) must not stay held.
        self.wrapper._release_open()
        for durable in self.replaced:
            # Its queue goes out through the exporter it shares with the restored processor.
            close: Any = getattr(durable, "close", None)
            if close is not None:
                close(shutdown_exporter=False)


def wrap_provider(
    provider: object,
    *,
    select: SpanSelector | str | None = None,
    extra: tuple[SpanProcessor, ...] = (),
) -> Wrapped | None:
    """Wrap every processor of an SDK ``provider`` (and ``extra`` ones) in an enriching wrapper.

    Returns ``None`` (the problem counted and logged) when ``provider`` is
    not an SDK tracer provider of the known shape; ``extra`` processors are
    then added beside the others if the provider has ``add_span_processor``.
    """
    multi: Any = getattr(provider, "_active_span_processor", None)
    if not isinstance(provider, TracerProvider):
        problem = f"the tracer provider {provider!r} is not the OpenTelemetry SDK's"
    elif not isinstance(multi, SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor) or (
        not isinstance(getattr(multi, "_span_processors", None), tuple)
    ):
        problem = f"cannot find the span processors of {provider!r} (an SDK of another version?)"
    else:
        problem = ""
    if problem:
        swallowed("instrument.provider", ProviderShapeError(f"{problem}: spans are not enriched"))
        _add_beside(provider, extra)
        return None
    with multi._lock:
        replaced: dict[SpanProcessor, SpanProcessor] = {}
        processors = [_durable_in_place_of(p, replaced) for p in multi._span_processors]
        wrapper = EnrichingSpanProcessor(*extra, *processors, select=select)
        multi._span_processors = (wrapper,)
    _warn_if_spool_unused(processors)
    return Wrapped(multi, wrapper, extra, replaced)


def _add_beside(provider: object, extra: tuple[SpanProcessor, ...]) -> None:
    add: Any = getattr(provider, "add_span_processor", None)
    if add is None or not extra:
        return
    try:
        for processor in extra:
            add(processor)
    except Exception as exc:
        swallowed("instrument.provider", exc)


def _durable_in_place_of(
    processor: SpanProcessor, replaced: dict[SpanProcessor, SpanProcessor]
) -> SpanProcessor:
    """A DurableSpanProcessor for a BatchSpanProcessor feeding a DurableSpanExporter."""
    if not isinstance(processor, BatchSpanProcessor):
        return processor
    from ..export import DurableSpanExporter, DurableSpanProcessor

    exporter = getattr(processor, "span_exporter", None)
    if not isinstance(exporter, DurableSpanExporter):
        return processor
    durable = DurableSpanProcessor.from_environment(exporter)
    # The batch processor keeps an idle thread; it is not shut down, as that would shut
    # the shared exporter down too.  undo() puts it back.
    replaced[durable] = processor
    return durable


def _warn_if_spool_unused(processors: list[SpanProcessor]) -> None:
    directory = settings.spool_dir()
    if directory is None:
        return
    for processor in processors:
        # BatchSpanProcessor and SimpleSpanProcessor both show their exporter.
        exporter: Any = getattr(processor, "span_exporter", None)
        if exporter is None or not type(exporter).__module__.startswith(
            "opentelemetry.exporter.otlp"
        ):
            continue
        config_warning(
            "env.TASKMETER_SPOOL_DIR.unused",
            "%s is set, but spans go to %s.%s, which does not use it: set "
            "OTEL_TRACES_EXPORTER=taskmeter and OTEL_METRICS_EXPORTER=taskmeter to export "
            "through the spool",
            settings.ENV_SPOOL_DIR,
            type(exporter).__module__,
            type(exporter).__qualname__,
        )
        return
