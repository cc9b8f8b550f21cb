"""Which spans (that taskmeter did not create) are enriched with resource figures."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from .. import attributes as attr
from .._log import swallowed
from .._spans import raw_attributes
from ..tracing import INSTRUMENTATION_NAME

__all__ = ["SpanSelector"]

_IS_REMOTE = 2  # SpanContext(trace_id, span_id, is_remote, ...)[2]

_KINDS: dict[str, SpanKind] = {kind.name.lower(): kind for kind in SpanKind}


class SpanSelector:
    """Chooses the spans to enrich: by name, by kind, local roots, or a marker attribute.

    A span is selected when any of the given tests holds:

    * ``names``: its name matches one of these shell-style patterns
      (``"GET /items*"``; case-sensitive);
    * ``kinds``: its kind is one of these (``SpanKind.SERVER`` or ``"server"``);
    * ``roots``: it is a local root, with no parent in this process (no parent
      at all, or a remote one, as a server span continuing a caller's trace);
    * ``marked``: it carries ``taskmeter.enrich = True`` when it starts
      (``tracer.start_as_current_span("load", attributes={"taskmeter.enrich": True})``);
    * ``everything``: always.

    Spans of taskmeter's own tasks and timers already carry their figures
    and are never selected.  :meth:`parse` reads the same choices from text
    (``TASKMETER_ENRICH``).
    """

    __slots__ = (
        "_everything",
        "_kinds",
        "_marked",
        "_match_name",
        "_roots",
        "description",
        "test",
    )

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        kinds: Iterable[SpanKind | str] = (),
        roots: bool = False,
        marked: bool = False,
        everything: bool = False,
    ) -> None:
        if isinstance(names, str):
            raise TypeError("names must be an iterable of patterns, not one string")
        patterns = list(names)
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"a span-name pattern must be a non-empty string, not {pattern!r}")
        if isinstance(kinds, str | SpanKind):
            kinds = (kinds,)
        self._kinds = frozenset(_kind(kind) for kind in kinds)
        for flag, value in (("roots", roots), ("marked", marked), ("everything", everything)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, not {value!r}")
        self._roots = roots
        self._marked = marked
        self._everything = everything
        self._match_name: Callable[[str], Any] | None = None
        if patterns:
            regex = "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
            self._match_name = re.compile(regex).match
        parts = ["all"] if everything else []
        parts += ["root"] if roots else []
        parts += ["marked"] if marked else []
        parts += [f"kind:{kind.name.lower()}" for kind in sorted(self._kinds, key=_order)]
        parts += [f"name:{pattern}" for pattern in patterns]
        self.description = ",".join(parts) or "none"
        """The selection in :meth:`parse`'s syntax."""
        self.test: Callable[[ReadableSpan], bool] = _compile(
            everything, roots, self._kinds, self._match_name, marked
        )
        """The same test as calling the selector, without its guard: it may raise
        on a span whose fields cannot be read (for callers that catch)."""

    @classmethod
    def parse(cls, text: str) -> SpanSelector:
        """A selector from comma-separated terms.

        Terms: ``root``, ``marked``, ``kind:<server|client|consumer|producer|internal>``,
        ``name:<pattern>``, ``all``, ``none``.  ``"root,kind:consumer,name:batch *"``
        selects local roots, consumer spans and spans whose name starts with
        ``batch``.  Raises ``ValueError`` naming a term it does not know, for
        ``none`` beside other terms (``"none,root"``: which is meant?), and for
        text with no term at all (``""``, ``","``).
        """
        if not isinstance(text, str):
            raise TypeError(f"expected a string of selection terms, not {text!r}")
        names: list[str] = []
        kinds: list[str] = []
        flags = {"root": False, "marked": False, "all": False}
        terms = [term.strip() for term in text.split(",") if term.strip()]
        if not terms:
            raise ValueError(
                f"empty span selection {text!r}: expected root, marked, all, none, "
                "kind:<kind> or name:<pattern>, comma-separated"
            )
        # Keywords in any case, as root, all and kind:<kind> are read.
        nones = [term.lower() == "none" for term in terms]
        if any(nones) and not all(nones):
            raise ValueError(
                f"span selection {text!r} names none beside other terms: give none alone, "
                "or only the spans to enrich"
            )
        for term, is_none in zip(terms, nones, strict=True):
            if is_none:
                continue
            key, sep, value = term.partition(":")
            key = key.strip().lower()
            if sep and key == "name":
                names.append(value.strip())
            elif sep and key == "kind":
                kinds.append(value.strip())
            elif not sep and key in flags:
                flags[key] = True
            else:
                raise ValueError(
                    f"unknown span selection {term!r}: expected root, marked, all, none, "
                    "kind:<kind> or name:<pattern>"
                )
        return cls(
            names=names,
            kinds=kinds,
            roots=flags["root"],
            marked=flags["marked"],
            everything=flags["all"],
        )

    @property
    def selects_nothing(self) -> bool:
        """Whether no span can be selected (``none``)."""
        return self.description == "none"

    def __call__(self, span: ReadableSpan) -> bool:
        """Whether ``span`` (starting, or ended) is to be enriched.

        Never raises: a span whose fields cannot be read is not selected.
        The tests are those of :attr:`test`, cheapest first.
        """
        try:
            return self.test(span)
        except Exception as exc:
            swallowed("enrich.select", exc)
            return False

    def __repr__(self) -> str:
        return f"SpanSelector.parse({self.description!r})"


def _compile(
    everything: bool,
    roots: bool,
    kinds: frozenset[SpanKind],
    match_name: Callable[[str], Any] | None,
    marked: bool,
) -> Callable[[ReadableSpan], bool]:
    """The selector's test as one function, its settings bound as locals.

    Called for every span that starts under an enriching processor, so it
    avoids attribute lookups on the selector and a call for the marker; the
    tests run cheapest first.
    """
    if everything:
        return _not_taskmeter
    enrich_key = attr.ENRICH

    def test(span: ReadableSpan) -> bool:
        if roots:
            parent = span.parent
            # SpanContext is a tuple; item 2 is its is_remote (read without
            # the property's call: this runs for every span that starts).
            if parent is None or parent[_IS_REMOTE]:
                return _not_taskmeter(span)
        if kinds and span.kind in kinds:
            return _not_taskmeter(span)
        if match_name is not None and match_name(span.name):
            return _not_taskmeter(span)
        if marked:
            # raw_attributes(span), its common case inline.
            raw = getattr(getattr(span, "_attributes", None), "_dict", None)
            if type(raw) is not dict:
                raw = raw_attributes(span)
            if raw and raw.get(enrich_key) is True:
                return _not_taskmeter(span)
        return False

    return test


def _not_taskmeter(span: ReadableSpan) -> bool:
    # Checked only for selected spans: the unselected ones must stay cheap.
    scope = span.instrumentation_scope
    return scope is None or scope.name != INSTRUMENTATION_NAME


def _kind(kind: SpanKind | str) -> SpanKind:
    if isinstance(kind, SpanKind):
        return kind
    if isinstance(kind, str):
        found = _KINDS.get(kind.strip().lower())
        if found is not None:
            return found
    raise ValueError(f"unknown span kind {kind!r}: expected one of {', '.join(_KINDS)}")


def _order(kind: SpanKind) -> int:
    return int(kind.value)
