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
swaps them back, keeping any processor added since.  A provider of another
shape is left alone, with a warning: nothing is enriched then.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)

from .._log import warn_once
from ..enrich import EnrichingSpanProcessor, SpanSelector

__all__ = ["Wrapped", "wrap_provider"]


class Wrapped:
    """An enriching wrapper installed in a provider, and how to take it out again."""

    def __init__(
        self,
        multi: SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor,
        wrapper: EnrichingSpanProcessor,
        added: tuple[SpanProcessor, ...],
    ) -> None:
        self._multi = multi
        self.wrapper = wrapper
        self._added = added

    def undo(self) -> None:
        """Put the wrapped processors back in the wrapper's place; drop the ones taskmeter added."""
        multi: Any = self._multi
        with multi._lock:
            restored: list[SpanProcessor] = []
            for processor in multi._span_processors:
                if processor is self.wrapper:
                    restored.extend(p for p in self.wrapper.processors if p not in self._added)
                else:
                    restored.append(processor)
            multi._span_processors = tuple(restored)


def wrap_provider(
    provider: object,
    *,
    select: SpanSelector | str | None = None,
    extra: tuple[SpanProcessor, ...] = (),
) -> Wrapped | None:
    """Wrap every processor of an SDK ``provider`` (and ``extra`` ones) in an enriching wrapper.

    Returns ``None`` (after a warning) when ``provider`` is not an SDK
    tracer provider of the known shape.
    """
    if not isinstance(provider, TracerProvider):
        warn_once(
            "instrument.provider",
            "the tracer provider %r is not the OpenTelemetry SDK's: spans are not enriched",
            provider,
        )
        return None
    multi: Any = getattr(provider, "_active_span_processor", None)
    if not isinstance(multi, SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor) or (
        not isinstance(getattr(multi, "_span_processors", None), tuple)
    ):
        warn_once(
            "instrument.processors",
            "cannot find the span processors of %r (an SDK of another version?): "
            "spans are not enriched",
            provider,
        )
        return None
    with multi._lock:
        wrapper = EnrichingSpanProcessor(*extra, *multi._span_processors, select=select)
        multi._span_processors = (wrapper,)
    return Wrapped(multi, wrapper, extra)
