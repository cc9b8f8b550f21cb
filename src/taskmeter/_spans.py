"""Fast access to the attributes of SDK spans: read-only for span processors, and
one write for a task's own span."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as _SdkSpan

__all__ = ["raw_attributes", "set_fresh_attributes"]


def raw_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The span's attributes, as the plain dict inside the SDK's span where there is one.

    ``ReadableSpan.attributes`` wraps the SDK's ``BoundedAttributes`` in a
    ``MappingProxyType``, whose ``get`` goes through ``__getitem__`` and a
    ``KeyError`` for every missing key: a microsecond on each span that lacks
    the key looked for.  Other spans (and other SDK versions) use the public
    property.  The mapping must not be modified.
    """
    bounded = getattr(span, "_attributes", None)
    raw = getattr(bounded, "_dict", None)
    if isinstance(raw, dict):
        return raw
    if isinstance(bounded, dict):  # spans built with a plain dict (enriched copies)
        return bounded
    return span.attributes


try:
    from opentelemetry.sdk.trace import _Span as _SdkSpanClass
except ImportError:  # pragma: no cover - an SDK without the class
    _SdkSpanClass = None  # type: ignore[assignment,misc]

_SDK_SET_ATTRIBUTES = _SdkSpan.set_attributes
# The types the SDK stores as they are (its _clean_attribute_value returns
# them unchanged when no length limit applies).
_PLAIN_VALUE_TYPES = frozenset({bool, int, float, str})


def set_fresh_attributes(span: trace.Span, attributes: dict[str, Any]) -> None:
    """``span.set_attributes(attributes)``, for a span that has no attributes yet.

    The SDK cleans each value and stores it under two locks, through three
    Python calls per attribute: 70k instructions (5 us) for a task span's
    dozen.  A task's values are plain ``str``, ``bool``, ``int`` and ``float``,
    which the SDK stores unchanged, so where the outcome is provably the
    same they are stored in one step under the same locks: an SDK span of
    the SDK's own class (no subclass, ``set_attributes`` not replaced), still
    recording, with the SDK's attribute store holding nothing yet, no
    length limit on values, room for them all under the count limit, and
    only plain values.  :func:`_fresh_store_is_faithful` checks at import,
    on a real span, that the result reads alike; anywhere else, the SDK's
    own ``set_attributes`` runs.
    """
    if (
        _FAST_STORE
        and type(span) is _SdkSpanClass
        and _SdkSpanClass.set_attributes is _SDK_SET_ATTRIBUTES
    ):
        bounded = span._attributes
        if (
            type(bounded) is BoundedAttributes
            and not bounded._dict
            and bounded.max_value_len is None
            and (bounded.maxlen is None or len(attributes) <= bounded.maxlen)
            and _PLAIN_VALUE_TYPES.issuperset(map(type, attributes.values()))
        ):
            # The SDK's two locks, in its order.  ``with``, never acquire()
            # then ``try``: an interrupt raised just after acquire() returns
            # would leave the lock held, and the span's end waiting for good.
            with span._lock:
                if span._end_time is None and not bounded._immutable:
                    with bounded._lock:
                        if not bounded._dict:
                            bounded._dict.update(attributes)
                            return
    span.set_attributes(attributes)


def _fresh_store_is_faithful() -> bool:
    """Whether the one-step store gives a span what ``set_attributes`` gives it."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.trace import SpanContext

        if _SdkSpanClass is None:
            return False
        values: dict[str, Any] = {"s": "text", "b": True, "i": 7, "f": 1.5}
        spans = []
        for store in (_SDK_SET_ATTRIBUTES, _store_directly):
            span = _SdkSpanClass("probe", SpanContext(1, 2, is_remote=False), resource=Resource({}))
            span.start()
            store(span, dict(values))
            span.end()
            spans.append(span)
        fast, slow = spans
        fast_store: Any = fast._attributes
        slow_store: Any = slow._attributes
        return (
            type(fast_store) is BoundedAttributes
            and dict(fast.attributes or {}) == dict(slow.attributes or {}) == values
            and list(fast_store) == list(slow_store)
            and fast.dropped_attributes == slow.dropped_attributes == 0
            and fast_store._immutable is slow_store._immutable is True
        )
    except Exception:  # an SDK this check does not fit: set_attributes it is
        return False


def _store_directly(span: Any, attributes: dict[str, Any]) -> None:
    with span._lock, span._attributes._lock:
        span._attributes._dict.update(attributes)


_FAST_STORE = _fresh_store_is_faithful()
