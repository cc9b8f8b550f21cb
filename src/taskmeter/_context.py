"""The current OpenTelemetry context and a span's ids, reached without the API's wrappers.

A task reads the current context, makes the context holding its span and
attaches it when it starts, and looks at the current context again when it
ends.  Through the API (``context.get_current()``, ``trace.set_span_in_context``,
``context.attach()``) that is two Python calls each, to reach one
``ContextVar``; and the SDK, given no context, reads the current one again
(twice more, two calls each) to find the parent span and sample.  Where the
runtime context is OpenTelemetry's own (a ``ContextVar``, the default), this
module hands out that variable's ``get`` and ``set``, which are single C
calls, and the task passes the context it read to the SDK.

Everything here is checked when the module is imported, against the API
itself: a runtime context configured through ``OTEL_PYTHON_CONTEXT``, or an
OpenTelemetry whose internals differ, gets the API's own functions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext

__all__ = [
    "SPAN_IDS_BY_INDEX",
    "SPAN_KEY",
    "attach_context",
    "current_context",
]


def _runtime_variable() -> ContextVar[Context] | None:
    """The ``ContextVar`` behind OpenTelemetry's runtime context, if it is one."""
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
        if type(runtime) is not ContextVarsRuntimeContext:
            return None
        variable = getattr(runtime, "_current_context", None)
        if not isinstance(variable, ContextVar) or variable.get() is not runtime.get_current():
            return None
        return variable
    except Exception:  # an OpenTelemetry this does not fit: the API it is
        return None


_variable = _runtime_variable()

current_context: Callable[[], Context] = (
    otel_context.get_current if _variable is None else _variable.get
)
"""``opentelemetry.context.get_current``, or the same in one C call."""

attach_context: Callable[[Context], object] = (
    otel_context.attach if _variable is None else _variable.set
)
"""``opentelemetry.context.attach``, or the same in one C call (its token is
the variable's ``Token``, which ``opentelemetry.context.detach`` also takes)."""


def _span_key() -> str | None:
    """The key under which ``trace.set_span_in_context`` puts the span, if it is a
    plain entry of a copy of the context (as checked on a real call)."""
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY

        base = Context({"other": 1})
        span = trace.NonRecordingSpan(SpanContext(1, 2, is_remote=False))
        made = trace.set_span_in_context(span, base)
        mine = Context({**base, _SPAN_KEY: span})
        if (
            isinstance(_SPAN_KEY, str)
            and type(made) is type(mine) is Context
            and dict(made) == dict(mine)
            and trace.get_current_span(mine) is span
        ):
            return _SPAN_KEY
    except Exception:  # an OpenTelemetry this does not fit: set_span_in_context it is
        pass
    return None


SPAN_KEY: str | None = _span_key()
"""The context key of the current span: ``Context({**context, SPAN_KEY: span})`` is
``trace.set_span_in_context(span, context)``.  ``None`` where that was not so."""


def _span_ids_by_index() -> bool:
    """Whether a ``SpanContext``'s items 0, 1 and 5 are its trace id, span id and
    ``is_valid``: its properties read them, in three Python calls, where indexing
    it takes none (checked on real ones)."""
    try:
        return all(
            (probe[0], probe[1], probe[5]) == (probe.trace_id, probe.span_id, probe.is_valid)
            for probe in (
                SpanContext(0x1234, 0x56, is_remote=False),
                SpanContext(0, 0x56, is_remote=False),
                trace.INVALID_SPAN_CONTEXT,
            )
        )
    except Exception:
        return False


SPAN_IDS_BY_INDEX: bool = _span_ids_by_index()
"""Whether ``span_context[0]``, ``[1]`` and ``[5]`` are its ``trace_id``,
``span_id`` and ``is_valid``."""
