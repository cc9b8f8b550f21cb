"""Which tracer taskmeter's own spans go to."""

from __future__ import annotations

from opentelemetry import trace

from . import __about__

_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer | None = None

INSTRUMENTATION_NAME = "taskmeter"


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Send taskmeter's spans to ``provider`` instead of the global tracer provider.

    ``None`` goes back to the global provider.  Spans from other libraries
    still nest under tasks (and tasks under them): the active context is
    shared whatever the provider.
    """
    global _provider, _tracer
    if provider is not None and not isinstance(provider, trace.TracerProvider):
        raise TypeError(f"expected an OpenTelemetry TracerProvider, got {provider!r}")
    _provider = provider
    _tracer = None


def get_tracer() -> trace.Tracer:
    """The tracer for task spans (cached; follows a later global provider)."""
    global _tracer
    tracer = _tracer
    if tracer is None:
        if _provider is not None:
            tracer = _provider.get_tracer(INSTRUMENTATION_NAME, __about__.__version__)
        else:
            tracer = trace.get_tracer(INSTRUMENTATION_NAME, __about__.__version__)
        _tracer = tracer
    return tracer


def current_tracer_provider() -> trace.TracerProvider | None:
    """The provider set with :func:`use_tracer_provider`, or ``None`` for the global one."""
    return _provider
