"""Which tracer taskmeter's own spans go to."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from . import __about__
from ._text import valid_text

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


def record_failure(span: trace.Span, error: BaseException, *, set_status: bool = True) -> None:
    """Record ``error`` on ``span`` (an ``exception`` event), and with ``set_status`` mark
    the span as failed with ``"<type>: <message>"``.

    A message or stack trace holding text that is not valid Unicode (an undecodable file
    name, as Python gives it) is recorded with that text as ``\\xNN`` (see
    :func:`taskmeter._text.valid_text`): exporters refuse such text, and drop the spans
    sent with it.
    """
    message = str(error)
    valid_message = valid_text(message)
    overrides: dict[str, str] | None = None
    if valid_message is not message:
        import traceback

        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        overrides = {"exception.message": valid_message, "exception.stacktrace": valid_text(stack)}
    span.record_exception(error, attributes=overrides)
    if set_status:
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {valid_message}"))
