"""A task span's attributes stored in one step give the span exactly what the SDK's
``set_attributes`` gives it, and the SDK's own path runs wherever that is not provable."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import _Span as SdkSpan

from taskmeter import Task, _spans
from taskmeter import attributes as attr
from taskmeter._spans import set_fresh_attributes
from taskmeter.testing import capture_spans

VALUES: dict[str, Any] = {"s": "text", "b": False, "i": 12, "f": 0.25, "t": "x" * 40}


def _span(limits: SpanLimits | None = None, **kwargs: Any) -> Span:
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    return provider.get_tracer("test").start_span("span", **kwargs)  # type: ignore[return-value]


def _both(
    values: dict[str, Any], limits: SpanLimits | None = None, **kwargs: Any
) -> tuple[Span, Span]:
    fast, slow = _span(limits, **kwargs), _span(limits, **kwargs)
    set_fresh_attributes(fast, dict(values))
    slow.set_attributes(dict(values))
    fast.end()
    slow.end()
    return fast, slow


def _same(fast: Span, slow: Span) -> None:
    assert list((fast.attributes or {}).items()) == list((slow.attributes or {}).items())
    assert fast.dropped_attributes == slow.dropped_attributes


@pytest.fixture
def counted_set_items(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the SDK's own attribute store ran (its cleaning and locking) for
    the attributes of these tests (resources and others use it too)."""
    calls: list[int] = []
    original = BoundedAttributes._set_items

    def counting(self: BoundedAttributes, attributes: Any) -> None:
        if "s" in attributes or attr.TASK_ID in attributes:
            calls.append(len(attributes))
        original(self, attributes)

    monkeypatch.setattr(BoundedAttributes, "_set_items", counting)
    return calls


def test_the_installed_sdk_passes_the_import_check() -> None:
    """The supported SDK (1.45) gets the one-step store; if this fails after an SDK
    upgrade, tasks still work (through set_attributes), only slower."""
    assert _spans._FAST_STORE is True


def test_plain_values_on_a_fresh_span_skip_the_sdk_store(counted_set_items: list[int]) -> None:
    fast, slow = _both(VALUES)
    _same(fast, slow)
    assert counted_set_items == [len(VALUES)]  # the slow span's call only
    assert fast._attributes._immutable is True  # frozen by end() as usual


def test_a_task_span_reads_alike_through_either_store(
    counted_set_items: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's own attributes (ids, host, pid, figures) are all plain values."""
    seen: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span)

    with capture_spans(Keep()), Task("fast", machine="box"):
        pass
    assert counted_set_items == []
    monkeypatch.setattr(_spans, "_FAST_STORE", False)
    with capture_spans(Keep()), Task("slow", machine="box"):
        pass
    assert counted_set_items != []
    fast, slow = seen
    assert list(dict(fast.attributes or {})) == list(dict(slow.attributes or {}))
    for key in (attr.TASK_STATUS, attr.MACHINE, attr.HOST_NAME, attr.PROCESS_PID):
        assert (fast.attributes or {})[key] == (slow.attributes or {})[key]


def test_too_many_attributes_go_through_the_sdk_which_drops_the_oldest(
    counted_set_items: list[int],
) -> None:
    fast, slow = _both(VALUES, SpanLimits(max_span_attributes=3))
    _same(fast, slow)
    assert fast.dropped_attributes == len(VALUES) - 3
    assert len(counted_set_items) == 2


def test_a_value_length_limit_goes_through_the_sdk_which_truncates(
    counted_set_items: list[int],
) -> None:
    fast, slow = _both(VALUES, SpanLimits(max_span_attribute_length=5))
    _same(fast, slow)
    assert (fast.attributes or {})["t"] == "xxxxx"
    assert len(counted_set_items) == 2


def test_a_span_with_attributes_already_goes_through_the_sdk(
    counted_set_items: list[int],
) -> None:
    """The SDK moves a re-set key to the end; the one-step store does not try to."""
    fast, slow = _both(VALUES, attributes={"i": 1, "early": "yes"})
    _same(fast, slow)
    assert list(fast.attributes or {}) == ["early", "s", "b", "i", "f", "t"]
    assert len(counted_set_items) == 2


def test_values_the_sdk_would_convert_go_through_the_sdk(counted_set_items: list[int]) -> None:
    class Custom:
        def __str__(self) -> str:
            return "custom"

    values = {**VALUES, "list": [1, 2], "none": None, "custom": Custom()}
    fast, slow = _both(values)
    _same(fast, slow)
    assert (fast.attributes or {})["list"] == (1, 2)
    assert len(counted_set_items) == 2


def test_an_ended_span_is_left_as_the_sdk_leaves_it(caplog: pytest.LogCaptureFixture) -> None:
    span = _span()
    span.end()
    with caplog.at_level(logging.WARNING):
        set_fresh_attributes(span, dict(VALUES))
    assert dict(span.attributes or {}) == {}
    assert "ended span" in caplog.text


def test_a_replaced_set_attributes_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instrumentation (or a test) that wraps Span.set_attributes still sees the call."""
    calls: list[dict[str, Any]] = []
    original = Span.set_attributes

    def wrapped(self: Span, attributes: Any) -> None:
        calls.append(dict(attributes))
        original(self, attributes)

    monkeypatch.setattr(Span, "set_attributes", wrapped)
    span = _span()
    set_fresh_attributes(span, dict(VALUES))
    assert calls == [VALUES]
    assert dict(span.attributes or {}) == VALUES


def test_a_span_subclass_gets_its_own_set_attributes() -> None:
    calls: list[int] = []

    class Subclass(SdkSpan):
        def set_attributes(self, attributes: Any) -> None:
            calls.append(len(attributes))
            super().set_attributes(attributes)

    span = Subclass("sub", _span().get_span_context())
    span.start()
    set_fresh_attributes(span, dict(VALUES))
    assert calls == [len(VALUES)]
    assert dict(span.attributes or {}) == VALUES


def test_spans_of_other_tracers_get_set_attributes() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    span = NonRecordingSpan(SpanContext(1, 2, is_remote=False))
    set_fresh_attributes(span, dict(VALUES))  # a no-op, as set_attributes is there
    assert not span.is_recording()
