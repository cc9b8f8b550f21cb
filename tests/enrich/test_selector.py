"""SpanSelector: the text form, and which spans each term selects."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind

from taskmeter import attributes as attr
from taskmeter.enrich import SpanSelector

LOCAL = SpanContext(trace_id=1, span_id=2, is_remote=False)
REMOTE = SpanContext(trace_id=1, span_id=3, is_remote=True)


def span(
    name: str = "work",
    *,
    parent: SpanContext | None = LOCAL,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, object] | None = None,
    scope: str = "app",
) -> ReadableSpan:
    return ReadableSpan(
        name,
        parent=parent,
        kind=kind,
        attributes=attributes or {},  # type: ignore[arg-type]
        instrumentation_scope=InstrumentationScope(scope),
    )


def test_root_selects_spans_without_a_local_parent() -> None:
    select = SpanSelector.parse("root")
    assert select(span(parent=None))
    assert select(span(parent=REMOTE))  # a server span continuing a caller's trace
    assert not select(span(parent=LOCAL))


def test_kind_name_and_marker_terms() -> None:
    select = SpanSelector.parse("kind:server, name:GET /items*, marked")
    assert select(span(kind=SpanKind.SERVER))
    assert not select(span(kind=SpanKind.CLIENT))
    assert select(span("GET /items/{id}"))
    assert not select(span("POST /items"))
    assert select(span(attributes={attr.ENRICH: True}))
    assert not select(span(attributes={attr.ENRICH: "yes"}))  # only the boolean true marks


def test_taskmeter_own_spans_are_never_selected() -> None:
    assert not SpanSelector.parse("all")(span(scope="taskmeter"))
    assert SpanSelector.parse("all")(span(scope="app"))


def test_none_selects_nothing_and_selections_describe_themselves() -> None:
    for text in ("none", " none ", "none,none"):
        selector = SpanSelector.parse(text)
        assert selector.selects_nothing
        assert not selector(span(parent=None))
    assert not SpanSelector.parse("name:none").selects_nothing  # a pattern, not the keyword
    assert SpanSelector().selects_nothing
    assert SpanSelector.parse("name:a*,root,kind:SERVER").description == (
        "root,kind:server,name:a*"
    )


@pytest.mark.parametrize("text", ["NONE", "None", " nOnE ", "none,NONE"])
def test_none_is_read_in_any_case_as_the_other_keywords_are(text: str) -> None:
    """NONE selects nothing, as ROOT selects roots (it used to be an unknown term, and
    TASKMETER_ENRICH=NONE fell back to root,marked)."""
    assert SpanSelector.parse("ROOT").description == "root"
    selector = SpanSelector.parse(text)
    assert selector.selects_nothing
    assert not selector(span(parent=None))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty span selection"),
        (",", "empty span selection"),
        (" , ", "empty span selection"),
        ("none,root", "none beside other terms"),
        ("marked, none", "none beside other terms"),
        ("NONE,root", "none beside other terms"),
        ("root, None", "none beside other terms"),
    ],
)
def test_selections_that_contradict_themselves_are_value_errors(text: str, message: str) -> None:
    """No term at all, or none beside terms that select spans, is not read as "none"."""
    with pytest.raises(ValueError, match=message):
        SpanSelector.parse(text)


@pytest.mark.parametrize("text", ["roots", "kind:serverish", "name", "colour:red"])
def test_unknown_terms_are_value_errors_naming_the_term(text: str) -> None:
    with pytest.raises(ValueError, match="span"):
        SpanSelector.parse(text)


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="one string"):
        SpanSelector(names="GET *")
    with pytest.raises(ValueError, match="non-empty"):
        SpanSelector(names=[""])
    with pytest.raises(TypeError, match="roots"):
        SpanSelector(roots=1)  # type: ignore[arg-type]


class _Unreadable(ReadableSpan):
    @property
    def parent(self) -> SpanContext | None:
        raise RuntimeError("no parent for you")


def test_a_span_that_cannot_be_read_is_not_selected_and_is_counted() -> None:
    from taskmeter import _log

    selector = SpanSelector.parse("root")
    before = _log.error_counts["enrich.select"]
    assert selector(_Unreadable("odd")) is False
    assert _log.error_counts["enrich.select"] == before + 1
    with pytest.raises(RuntimeError):  # the unguarded test, for callers that catch
        selector.test(_Unreadable("odd"))


def test_the_unguarded_test_agrees_with_the_selector() -> None:
    selector = SpanSelector.parse("root,marked,kind:server,name:load *")
    cases = [
        span(parent=None),
        span(parent=REMOTE),
        span(),
        span(kind=SpanKind.SERVER),
        span("load data"),
        span(attributes={attr.ENRICH: True}),
        span(parent=None, scope="taskmeter"),
    ]
    assert [selector.test(s) for s in cases] == [selector(s) for s in cases]
    assert [selector(s) for s in cases] == [True, True, False, True, True, True, False]
