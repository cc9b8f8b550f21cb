"""Enrich spans that taskmeter did not create with a task's resource figures.

* :class:`SpanSelector`: which spans (by name, kind, local roots, or the
  ``taskmeter.enrich`` marker attribute); ``TASKMETER_ENRICH`` in text form.
* :class:`EnrichingSpanProcessor`: wraps the processors that export spans and
  hands them the selected spans enriched with CPU time (process and thread),
  peak memory, GPU memory and energy.

``opentelemetry-instrument`` sets this up by itself (see
:mod:`taskmeter.instrumentation`).
"""

from .processor import DEFAULT_MAX_OPEN, EnrichedSpan, EnrichingSpanProcessor, figure_attributes
from .selector import SpanSelector

__all__ = [
    "DEFAULT_MAX_OPEN",
    "EnrichedSpan",
    "EnrichingSpanProcessor",
    "SpanSelector",
    "figure_attributes",
]
