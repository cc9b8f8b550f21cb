"""Enrich spans that taskmeter did not create with the figures of a task.

Why a wrapping processor
------------------------
A :class:`~taskmeter.Task` sets its figures on its span before ending it.
A span that other code starts and ends (``tracer.start_as_current_span``, a
web framework's instrumentation) cannot be changed that late: in the
OpenTelemetry Python SDK 1.45, ``Span.end()`` makes the attributes immutable
*before* any processor hears of the ending span.  The SDK's private
``_on_ending`` hook (the specification's "OnEnding", still in development)
is called after that, so ``set_attribute`` is refused there too, and
``on_end`` receives a read-only ``ReadableSpan``.  Writing into the SDK's
private attribute storage would work for one SDK version and break silently
in the next.

What stays inside the public API is to be the processor that the exporting
processors hear from: :class:`EnrichingSpanProcessor` wraps them (a
``BatchSpanProcessor``, a ``MeasurementSpanProcessor``, ...), takes its
starting readings in ``on_start`` (where the span is fresh), and in
``on_end`` hands them a copy of the ended span — a ``ReadableSpan`` built
with its public constructor, or the same made faster where a check at import
found that a copy of its fields reads alike (:func:`enriched_copy`) — whose
attributes carry the figures.  Spans it
does not select are passed on untouched, at the cost of one dictionary test.
Processors added to the provider beside the wrapper (not inside it) see the
spans as they were.
"""

from __future__ import annotations

import dis
import inspect
import os
import sys
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from .. import attributes as attr
from .. import settings
from .._log import config_warning, debug_once, swallowed, warn_once
from .._spans import raw_attributes
from .._text import valid_text
from ..figures import Figures
from ..probes import active_probes
from ..probes.base import (
    Probe,
    ProbeStates,
    begin_probes,
    end_probes,
    finish_probes,
    release_dropped,
)
from .selector import SpanSelector

__all__ = [
    "DEFAULT_MAX_OPEN",
    "EnrichedSpan",
    "EnrichingSpanProcessor",
    "TooManyOpenSpansError",
    "figure_attributes",
]

DEFAULT_MAX_OPEN = 10_000
"""Selected spans open at once beyond which new ones are passed on without figures."""

_SPAN_ID = 1  # SpanContext(trace_id, span_id, is_remote, ...)[1]
_thread_time = time.thread_time
_time_ns = time.time_ns
_CLOCK_SLACK_NS = 1_000_000_000
"""How far in all a selected span's start and end times may be from the moments
the SDK reports them (or 1 % of the span's duration, if more): a span given
explicit times further away (one recorded after the fact) is not enriched, as
the readings would be of another interval."""
_perf_counter = time.perf_counter
_POOL_MODULE = "concurrent.futures.thread"
"""The module of the code that calls a function submitted to a ``ThreadPoolExecutor``."""
_SDK_TRACE_MODULE = "opentelemetry.sdk.trace"
"""The module of the SDK's span, whose ``start()`` calls the processors in its own thread."""
_CALLERS_LOOKED_AT = 8
"""How many callers of ``on_start`` are looked at for a thread pool's (processors
that forward to others stand between)."""


def _called_by_a_pool(frame: types.FrameType | None) -> bool:
    """Whether ``frame`` (``on_start``'s caller) or one of its first callers is a
    thread pool's worker running a submitted call (as the SDK's
    ``ConcurrentMultiSpanProcessor`` makes its processors' calls), before the SDK's
    span itself (which calls its processors in the thread that starts it)."""
    for _ in range(_CALLERS_LOOKED_AT):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__")
        if module == _POOL_MODULE:
            return True
        if module == _SDK_TRACE_MODULE and frame.f_code.co_name == "start":
            return False
        frame = frame.f_back
    return False


_this_thread = threading.local()
"""Holds a ``token`` object per thread: unlike ``threading.get_ident()``, which
the next thread often reuses once one exits, a token belongs to one thread only."""


def _thread_token() -> object:
    try:
        token: object = _this_thread.token
    except AttributeError:
        token = _this_thread.token = object()
    return token


class _Opened(weakref.ref[Span]):
    """The starting readings of one selected span, and a weak reference to the span.

    Weak, with the processor's ``_dropped.append`` as its callback: a span that
    is garbage-collected without having ended (an abandoned request's) has its
    readings released at the next selected span, instead of holding them, and
    a place under ``max_open``, for good.  The fields are set after the
    reference is made (see :meth:`EnrichingSpanProcessor._begin`).
    """

    __slots__ = (
        "late_ns",
        "perf_start",
        "probe_states",
        "span_id",
        "thread",
        "thread_cpu_start",
    )

    probe_states: ProbeStates
    span_id: int
    thread: object
    thread_cpu_start: float
    perf_start: float
    late_ns: int
    """How far the span's start time is from the moment it was reported."""


class EnrichedSpan(ReadableSpan):
    """A copy of an ended span with more attributes; what the wrapped processors receive.

    ``cut_attributes``: how many attributes were left off the copy for the
    span attribute count limit; ``dropped_attributes`` reports them on top
    of those the SDK dropped from the original, as the SDK counts an
    attribute it cannot keep.
    """

    _cut_attributes = 0

    def __init__(
        self,
        original: ReadableSpan,
        attributes: dict[str, AttributeValue],
        cut_attributes: int = 0,
    ) -> None:
        # Positional, in the constructor's order (see also enriched_copy).
        super().__init__(
            original.name,
            original.context,
            original.parent,
            original.resource,
            attributes,
            original.events,
            original.links,
            original.kind,
            None,
            original.status,
            original.start_time,
            original.end_time,
            original.instrumentation_scope,
        )
        self._original = original
        self._cut_attributes = cut_attributes

    @property
    def dropped_attributes(self) -> int:
        return self._original.dropped_attributes + self._cut_attributes

    @property
    def dropped_events(self) -> int:
        return self._original.dropped_events

    @property
    def dropped_links(self) -> int:
        return self._original.dropped_links


def enriched_copy(
    original: ReadableSpan, attributes: dict[str, AttributeValue], cut_attributes: int = 0
) -> EnrichedSpan:
    """``EnrichedSpan(original, attributes, cut_attributes)``, made faster for the SDK's
    own ``ReadableSpan``.

    The constructor reads thirteen properties (two of which copy the events
    and links into tuples) and passes them on: about 2 us a selected span.
    The SDK hands ``on_end`` a plain ``ReadableSpan`` that keeps its fields
    in its ``__dict__``, so a copy of that dictionary with other attributes
    is the same span for a fraction of the cost.  That depends on the SDK's
    private layout, so it is used only where :func:`_dict_copy_is_faithful`
    found, on the installed SDK, that it gives what the constructor gives;
    otherwise, and for any other span class, the constructor runs.
    """
    if _DICT_COPY_IS_FAITHFUL and type(original) is ReadableSpan:
        return _dict_copy(original, attributes, cut_attributes)
    return EnrichedSpan(original, attributes, cut_attributes)


def _dict_copy(
    original: ReadableSpan, attributes: dict[str, AttributeValue], cut_attributes: int = 0
) -> EnrichedSpan:
    copy: EnrichedSpan = _new_object(EnrichedSpan)
    fields = copy.__dict__
    fields.update(original.__dict__)
    fields["_attributes"] = attributes
    fields["_original"] = original
    if cut_attributes:  # else the class's 0
        fields["_cut_attributes"] = cut_attributes
    return copy


_new_object = object.__new__

_PUBLIC_FIELDS = (
    "name",
    "context",
    "parent",
    "resource",
    "kind",
    "start_time",
    "end_time",
    "instrumentation_scope",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
)


def _dict_copy_is_faithful() -> bool:
    """Whether a ``__dict__`` copy of a ``ReadableSpan`` reads as a constructed copy.

    Checked once, on a span that has every field set, dropped events and
    links, and an error status.
    """
    try:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.util import BoundedList
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

        attributes = BoundedAttributes(maxlen=4, attributes={"a": 1, "b": 2}, immutable=True)
        events: BoundedList[Event] = BoundedList(1)
        events.extend([Event("e1", {"n": 1}, 5), Event("e2", {"n": 2}, 6)])
        links: BoundedList[Link] = BoundedList(1)
        linked = SpanContext(3, 4, is_remote=True)
        links.extend([Link(linked, {"l": 1}), Link(linked, {"l": 2})])
        original = ReadableSpan(
            "probe",
            SpanContext(1, 2, is_remote=False),
            SpanContext(1, 3, is_remote=True),
            Resource({"service.name": "probe"}),
            attributes,
            events,
            links,
            SpanKind.SERVER,
            None,
            Status(StatusCode.ERROR, "broken"),
            10,
            20,
            InstrumentationScope("scope", "1.0"),
        )
        added = {"taskmeter.probe": 1.5, "a": 1, "b": 2}
        fast = _dict_copy(original, dict(added))
        slow = EnrichedSpan(original, dict(added))
        for name in _PUBLIC_FIELDS:
            if getattr(fast, name) != getattr(slow, name):
                return False
        return (
            dict(fast.attributes or {}) == added
            and tuple(fast.events) == tuple(slow.events)
            and tuple(fast.links) == tuple(slow.links)
            and fast.status.status_code is slow.status.status_code
            and fast.status.description == slow.status.description
            and fast.to_json() == slow.to_json()
        )
    except Exception:  # an SDK this check does not fit: the constructor it is
        return False


_DICT_COPY_IS_FAITHFUL = _dict_copy_is_faithful()


def figure_attributes(figures: Figures, thread_cpu_s: float | None = None) -> dict[str, Any]:
    """The ``taskmeter.*`` span attributes of ``figures``; unmeasured figures are absent."""
    # The names as module globals (one lookup each instead of two): this
    # runs for every selected span.
    out: dict[str, Any] = {}
    if figures.duration_s is not None:
        out[_A_DURATION] = figures.duration_s
    user, system = figures.cpu_user_s, figures.cpu_system_s
    if user is not None and system is not None:  # Figures.cpu_time_s, inline
        out[_A_CPU_TIME] = user + system
        out[_A_CPU_USER] = user
        out[_A_CPU_SYSTEM] = system
    if thread_cpu_s is not None:
        out[_A_CPU_THREAD] = thread_cpu_s
    if figures.peak_memory_bytes is not None:
        out[_A_MEMORY_PEAK] = figures.peak_memory_bytes
    if figures.peak_gpu_memory_bytes is not None:
        out[_A_GPU_MEMORY_PEAK] = figures.peak_gpu_memory_bytes
    if figures.energy_j:
        for domain, joules in figures.energy_j.items():
            out[attr.ENERGY[domain]] = joules
            source = figures.energy_source.get(domain)
            if source:
                out[attr.ENERGY_SOURCE[domain]] = source
    return out


_A_DURATION = attr.DURATION
_A_CPU_TIME = attr.CPU_TIME
_A_CPU_USER = attr.CPU_USER
_A_CPU_SYSTEM = attr.CPU_SYSTEM
_A_CPU_THREAD = attr.CPU_THREAD
_A_MEMORY_PEAK = attr.MEMORY_PEAK
_A_GPU_MEMORY_PEAK = attr.GPU_MEMORY_PEAK


class EnrichingSpanProcessor(SpanProcessor):
    """Passes spans on to ``processors``, the selected ones enriched with a task's figures.

    Put the processors that export (or otherwise read) spans *inside* it::

        provider.add_span_processor(
            EnrichingSpanProcessor(
                BatchSpanProcessor(OTLPSpanExporter()),
                select=SpanSelector(names=["load *"], roots=True),
            )
        )

    A selected span ends up with the attributes a task span carries, for the
    time it was open: ``taskmeter.duration``, ``taskmeter.cpu.time`` (with
    ``.user`` and ``.system``: the whole process), ``taskmeter.cpu.thread``
    (the one thread that started and ended it; absent when those differ, or
    when the provider calls its processors from a thread pool, as the SDK's
    ``ConcurrentMultiSpanProcessor`` does),
    ``taskmeter.memory.peak``, ``taskmeter.gpu.memory.peak``,
    ``taskmeter.energy.*`` where a probe measures them, and
    ``taskmeter.machine`` when set.  The figures come from the same probes
    as tasks (:func:`taskmeter.active_probes`), so a span and the tasks
    around or inside it each get a correct memory peak.  An attribute the
    span already has is kept as it is.  A span whose explicit start or end
    time is more than a second (or 1 % of its duration) from the moment it
    started or ended (recorded after the fact) is passed on without figures:
    they would be of another interval.

    Args:
        processors: The processors that receive the spans.
        select: Which spans to enrich: a :class:`SpanSelector`, its text form
            (``"root,kind:server"``), or ``None`` for ``TASKMETER_ENRICH``
            (default ``root,marked``).
        probes: The probes to read (default: the active probes when each
            span starts).
        reset_peak: Start a new memory high-water mark for each selected span
            (as tasks do), so its peak is its own; ``False`` saves a system
            call per span, and the peak then includes what ran before.
        max_open: Selected spans that may be open at once (spans that are
            never ended must not hold readings forever); beyond it, spans are
            passed on without figures.

    Never raises into the application: a failing probe or copy is counted
    and logged (rate-limited), and the span is passed on unenriched; a
    wrapped processor that raises is counted and logged the same way
    (``enrich.processor.<class>.<method>``), and the others still receive
    the span.  Selected spans beyond ``max_open`` are counted
    (``enrich.max_open``) and passed on without figures.

    A wrapped processor whose ``on_start`` (or the SDK's private
    ``_on_ending``) has a body of ``pass`` alone is not called for it; this is
    decided when the processor is wrapped.
    """

    def __init__(
        self,
        *processors: SpanProcessor,
        select: SpanSelector | str | None = None,
        probes: Iterable[Probe] | None = None,
        reset_peak: bool = True,
        max_open: int = DEFAULT_MAX_OPEN,
    ) -> None:
        for processor in processors:
            if not isinstance(processor, SpanProcessor):
                raise TypeError(f"not an OpenTelemetry span processor: {processor!r}")
        if select is None:
            select = _selector_from_environment()
        elif isinstance(select, str):
            select = SpanSelector.parse(select)
        elif not isinstance(select, SpanSelector):
            raise TypeError(f"select must be a SpanSelector or a string, not {select!r}")
        probe_tuple: tuple[Probe, ...] | None = None
        if probes is not None:
            probe_tuple = tuple(probes)
            for probe in probe_tuple:
                if not isinstance(probe, Probe):
                    raise TypeError(f"not a taskmeter probe: {probe!r}")
        if not isinstance(reset_peak, bool):
            raise TypeError(f"reset_peak must be a bool, not {reset_peak!r}")
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise ValueError(f"max_open must be a positive int, not {max_open!r}")
        self._processors: tuple[SpanProcessor, ...] = ()
        self._starting: tuple[SpanProcessor, ...] = ()
        self._ending: tuple[SpanProcessor, ...] = ()
        self._wrap(tuple(processors))
        self._lock = threading.Lock()
        self.selector: SpanSelector = select
        """The spans this processor enriches."""
        self._select = None if select.selects_nothing else select.test
        self._probes = probe_tuple
        self._reset_peak = reset_peak
        self._max_open = max_open
        self._open: dict[int, _Opened] = {}
        # Readings of spans collected without having ended (see _Opened).
        self._dropped: deque[_Opened] = deque()
        _processors.add(self)

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        """The wrapped processors, in the order they are called."""
        return self._processors

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Wrap one more processor (called after the others)."""
        if not isinstance(processor, SpanProcessor):
            raise TypeError(f"not an OpenTelemetry span processor: {processor!r}")
        with self._lock:
            self._wrap((*self._processors, processor))

    def remove_span_processor(self, processor: SpanProcessor) -> None:
        """Stop passing spans to ``processor`` (a no-op if it is not wrapped)."""
        with self._lock:
            self._wrap(tuple(p for p in self._processors if p is not processor))

    def _wrap(self, processors: tuple[SpanProcessor, ...]) -> None:
        # Most processors' on_start and _on_ending do nothing (the SDK's
        # exporting processors among them); calling them anyway would cost
        # every span, selected or not, about 0.05 us a call.
        self._starting = tuple(p for p in processors if not _does_nothing(p, "on_start"))
        self._ending = tuple(p for p in processors if not _does_nothing(p, "_on_ending"))
        self._processors = processors

    # ------------------------------------------------------------ SpanProcessor

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Pass the start on; take the starting readings of a selected span."""
        for processor in self._starting:
            try:
                processor.on_start(span, parent_context)
            except Exception as exc:
                _inner_failed(processor, "on_start", exc)
        select = self._select
        if select is None:
            return
        try:
            if not select(span):
                return
            if self._dropped:
                self._release_dropped()
            if len(self._open) >= self._max_open:
                swallowed(
                    "enrich.max_open",
                    TooManyOpenSpansError(
                        f"{self._max_open} selected spans are open (never ended?); "
                        f"{span.name!r} and further ones are not enriched"
                    ),
                )
                return
            span_id = span.context.span_id
            # Called by a thread pool's worker (the SDK's ConcurrentMultiSpanProcessor
            # calls its processors so), this thread is not the one the span runs on.
            pooled = _called_by_a_pool(sys._getframe(1))
            self._open[span_id] = self._begin(span, span_id, pooled)
        except Exception as exc:
            swallowed("enrich.start", exc)

    def _on_ending(self, span: Span) -> None:
        # The SDK's private hook (1.45; SpanProcessor defines it as a no-op):
        # forwarded so wrapped processors that use it still can.
        for processor in self._ending:
            try:
                processor._on_ending(span)
            except Exception as exc:
                _inner_failed(processor, "on_ending", exc)

    def on_end(self, span: ReadableSpan) -> None:
        """Pass the ended span on: the selected ones as an enriched copy.

        A ``BaseException`` (``KeyboardInterrupt``) raised while a selected span's
        last readings are taken goes on once the span has been passed on.
        """
        interrupted: BaseException | None = None
        if self._open:
            context = span.context
            # SpanContext is a tuple: its span_id property is item 1, read
            # here without the property's call (a tenth of a microsecond).
            opened = self._open.pop(context[_SPAN_ID], None) if context is not None else None
            if opened is not None:
                try:
                    # Whether the readings are of the span's interval: its start
                    # and end times are (in all) at most _CLOCK_SLACK_NS from when
                    # it was reported started and ended, or 1 % of its duration.
                    end_ns = span.end_time
                    if (
                        end_ns is None
                        or (late_ns := opened.late_ns + abs(_time_ns() - end_ns)) <= _CLOCK_SLACK_NS
                        or _late_within_duration(span, late_ns)
                    ):
                        span = self._enriched(span, opened)
                    else:
                        _end_probes(opened)
                except Exception as exc:
                    swallowed("enrich.end", exc)
                    _end_probes(opened)  # those not ended yet (the states are taken once)
                except BaseException as exc:
                    interrupted = exc
                    _end_probes(opened)
        for processor in self._processors:
            try:
                processor.on_end(span)
            except Exception as exc:
                _inner_failed(processor, "on_end", exc)
        if interrupted is not None:
            raise interrupted

    def shutdown(self) -> None:
        """Shut the wrapped processors down and release the readings of open spans."""
        self._release_open()
        for processor in self._processors:
            try:
                processor.shutdown()
            except Exception as exc:
                _inner_failed(processor, "shutdown", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped processors, within ``timeout_millis`` in all."""
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = True
        for processor in self._processors:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return False
            try:
                flushed = bool(processor.force_flush(remaining_ms)) and flushed
            except Exception as exc:
                _inner_failed(processor, "force_flush", exc)
                flushed = False
        return flushed

    # ------------------------------------------------------------ internals

    def _release_open(self) -> None:
        """End the probes of the spans open now: this processor will not see them end."""
        opened, self._open = self._open, {}
        self._dropped.clear()  # their entries were in ``opened`` (or released)
        for entry in opened.values():
            _end_probes(entry)

    def _release_dropped(self) -> None:
        """End the probes of selected spans that were collected without having ended.

        Called when a selected span starts (outside every lock).
        """
        release_dropped(
            self._dropped,
            self._open,
            _span_id_of,
            "enrich.dropped",
            "a selected span was garbage-collected without having ended: its readings are released",
        )

    def _begin(self, span: Span, span_id: int, pooled: bool = False) -> _Opened:
        start_time_ns = span.start_time
        late_ns = abs(_time_ns() - start_time_ns) if start_time_ns is not None else 0
        probes = self._probes if self._probes is not None else active_probes()
        opened = _Opened(span, self._dropped.append)
        opened.span_id = span_id
        opened.probe_states = begin_probes(probes, self._reset_peak)
        # A pool's worker: a token no thread holds, so no thread CPU (that of
        # the worker would stand for the span's).
        opened.thread = object() if pooled else _thread_token()
        opened.thread_cpu_start = _thread_time()
        opened.perf_start = _perf_counter()
        opened.late_ns = late_ns
        return opened

    def _enriched(self, span: ReadableSpan, opened: _Opened) -> ReadableSpan:
        thread_cpu: float | None = None
        if getattr(_this_thread, "token", None) is opened.thread:  # _thread_token(), inline
            thread_cpu = _thread_time() - opened.thread_cpu_start
            if thread_cpu < 0.0:
                thread_cpu = 0.0
        figures = Figures(duration_s=_perf_counter() - opened.perf_start)
        states, opened.probe_states = opened.probe_states, ()
        finish_probes(states, figures)
        added = figure_attributes(figures, thread_cpu)
        machine = settings.machine()
        if machine is not None:
            added[attr.MACHINE] = valid_text(machine)
        original = raw_attributes(span)
        if original:
            added.update(original)  # the span's own values win
        kept = _within_limit(span, added)
        return enriched_copy(span, kept, len(added) - len(kept))


_processors: weakref.WeakSet[EnrichingSpanProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The spans open at the fork are the parent's: their starting readings are
    # the parent process's, and the child never ends them (a worker exits
    # inside them), so it must not hold them against max_open.
    for processor in list(_processors):
        processor._open = {}
        processor._dropped = deque()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class TooManyOpenSpansError(Exception):
    """More selected spans are open than ``max_open``: the newest are not enriched."""


def _does_nothing(processor: SpanProcessor, method: str) -> bool:
    """Whether ``processor``'s ``method`` is a function whose body is only ``pass``.

    Such a method (the base class's, or the SDK's exporting processors' own)
    need not be called.  Anything else is called: a method set on the
    instance, a wrapped or built-in function, a class that intercepts
    attribute access, and any body this check does not recognise.
    """
    cls = type(processor)
    if cls.__getattribute__ is not object.__getattribute__:
        return False
    if method in getattr(processor, "__dict__", {}):
        return False
    code = getattr(inspect.getattr_static(cls, method, None), "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    body = [
        (instruction.opname, instruction.argval)
        for instruction in dis.get_instructions(code)
        if instruction.opname not in ("RESUME", "NOP", "CACHE")
    ]
    return body in _EMPTY_BODIES


# A function that returns None and does nothing else, in the bytecode of
# Python 3.11 and of 3.12 and later.
_EMPTY_BODIES = ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _inner_failed(processor: SpanProcessor, method: str, exc: Exception) -> None:
    # The SDK calls processors without catching: what one raises would reach the
    # code that started or ended the span.  The others still get the span.
    swallowed(f"enrich.processor.{type(processor).__name__}.{method}", exc)


def _selector_from_environment() -> SpanSelector:
    text = settings.enrich_selection()
    try:
        return SpanSelector.parse(text)
    except ValueError as exc:
        config_warning(
            f"env.{settings.ENV_ENRICH}",
            "ignoring %s=%r: %s; using %r",
            settings.ENV_ENRICH,
            text,
            exc,
            settings.DEFAULT_ENRICH,
        )
        return SpanSelector.parse(settings.DEFAULT_ENRICH)


def _late_within_duration(span: ReadableSpan, late_ns: int) -> bool:
    """Whether ``late_ns``, how far in all the start and end times of ``span`` are from
    when it was reported started and ended, is within 1 % of its duration (else
    it is not enriched, said once at debug level)."""
    start_ns, end_ns = span.start_time, span.end_time
    if start_ns is not None and end_ns is not None and late_ns <= (end_ns - start_ns) // 100:
        return True
    debug_once(
        "enrich.time",
        "span %r has explicit start or end times %.1f s away from when it started and "
        "ended: it is not enriched (the figures would be those of another interval)",
        span.name,
        late_ns / 1e9,
    )
    return False


def _span_id_of(opened: _Opened) -> int:
    return opened.span_id


def _end_probes(opened: _Opened) -> None:
    states, opened.probe_states = opened.probe_states, ()
    end_probes(states)


def _within_limit(span: ReadableSpan, attributes: dict[str, Any]) -> dict[str, Any]:
    """Keep the SDK's attribute-count limit: the span's own attributes first.

    ``attributes`` holds the span's own ones too, so the figures left off
    number ``len(attributes) - len(result)`` (counted as dropped, see
    :class:`EnrichedSpan`)."""
    limit = getattr(getattr(span, "_attributes", None), "maxlen", None)
    if not isinstance(limit, int) or len(attributes) <= limit:
        return attributes
    warn_once(
        "enrich.limit",
        "span attribute limit (%d) reached: some taskmeter figures are left off spans "
        "(raise OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT)",
        limit,
    )
    original: Mapping[str, Any] = raw_attributes(span) or {}
    kept = dict(original)
    for key, value in attributes.items():
        if len(kept) >= limit:
            break
        kept.setdefault(key, value)
    return kept
