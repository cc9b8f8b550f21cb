"""Where the figures of tasks and timed calls whose spans are not recorded go.

A span the sampler drops (or one made with no SDK tracer provider set) reaches
no span processor, yet the task or timed call it stood for ran and was
measured.  Metrics must not depend on trace sampling, as OpenTelemetry's own
instrumentations record theirs whatever the sampler decides: so each live
:class:`taskmeter.measure.MeasurementSpanProcessor` registers here, and a
task or timed call whose span is not recording hands it the attributes the
span would have carried.

The registry is a tuple replaced as a whole (readers take no lock), of weak
references: a processor that is dropped without being shut down stops
receiving figures when it is collected.  With none registered, a task pays
one truth test of an empty tuple.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

from ._log import swallowed

__all__ = ["UnrecordedSink", "add", "remove", "sinks", "task_ended", "timer_ended"]


class UnrecordedSink(Protocol):
    """What receives the figures of spans that were not recorded."""

    def unrecorded_task(self, name: str, attributes: Mapping[str, Any]) -> None:
        """A task ended whose span was not recorded: its label and span attributes."""

    def unrecorded_timer(self, attributes: Mapping[str, Any]) -> None:
        """A timed call ended whose span was not recorded: its span attributes."""


sinks: tuple[weakref.ref[UnrecordedSink], ...] = ()
"""The registered sinks; empty when there are none, so ``if sinks`` is the whole cost."""
_lock = threading.Lock()


def add(sink: UnrecordedSink) -> None:
    """Register ``sink`` (kept by a weak reference; adding it twice keeps it once)."""
    global sinks
    with _lock:
        live = tuple(ref for ref in sinks if ref() is not None and ref() is not sink)
        sinks = (*live, weakref.ref(sink))


def remove(sink: UnrecordedSink) -> None:
    """Stop sending figures to ``sink`` (nothing if it was not registered)."""
    global sinks
    with _lock:
        sinks = tuple(ref for ref in sinks if ref() is not None and ref() is not sink)


def task_ended(name: str, attributes: Mapping[str, Any]) -> None:
    """Hand every registered sink the figures of a task whose span was not recorded."""
    for ref in sinks:
        sink = ref()
        if sink is not None:
            try:
                sink.unrecorded_task(name, attributes)
            except Exception as exc:  # sinks absorb their own errors; this is a last guard
                swallowed("unrecorded.task", exc)


def timer_ended(attributes: Mapping[str, Any]) -> None:
    """Hand every registered sink the keys of a timed call whose span was not recorded."""
    for ref in sinks:
        sink = ref()
        if sink is not None:
            try:
                sink.unrecorded_timer(attributes)
            except Exception as exc:
                swallowed("unrecorded.timer", exc)
