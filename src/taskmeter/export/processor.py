"""A batching span processor that never drops a span and never holds more than a bound.

The SDK's ``BatchSpanProcessor`` drops spans when its queue is full, which
happens whenever the exporter is slower than the application: a collector
that answers slowly, or one that is down while an exporter waits out its
timeout.  :class:`DurableSpanProcessor` batches the same way, but when its
queue is full the thread that ends a span writes the oldest batch to the
exporter's spool itself: memory stays bounded, the spans are kept, and the
application pays (a few milliseconds per batch) only while it produces
spans faster than they can be exported.  Where no spool can take them, the
spans dropped are counted (:attr:`DurableSpanProcessor.dropped_spans`) and
logged.

In a worker process (a forked child, or any ``multiprocessing`` child) the
processor writes every batch to the spool *first*, and the exporter's
replay thread sends it from there: a worker is usually ended abruptly
(``Pool.terminate`` sends ``SIGTERM``, workers leave with ``os._exit``), and
a batch held in memory during a slow network attempt would die with it.
Written first, it is delivered by whichever process replays the spool next
(the worker itself, its parent, a later run, ``taskmeter flush``).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from .._log import config_warning, swallowed
from ..settings import env_value, export_wait_ms, positive_int

__all__ = ["DurableSpanProcessor", "SpansDroppedError"]


DEFAULT_MAX_QUEUE_SIZE = 2048
DEFAULT_MAX_BATCH_SIZE = 512
DEFAULT_SCHEDULE_DELAY_S = 1.0
_BSP_SCHEDULE_DELAY = "OTEL_BSP_SCHEDULE_DELAY"
_BSP_MAX_QUEUE = "OTEL_BSP_MAX_QUEUE_SIZE"
_BSP_MAX_BATCH = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"


class SpansDroppedError(Exception):
    """Spans could be neither queued, exported nor spooled."""


class DurableSpanProcessor(SpanProcessor):
    """Exports ending spans in batches; overflow goes to the spool, not to the floor.

    Args:
        exporter: Usually a :class:`~taskmeter.export.DurableSpanExporter`;
            any ``SpanExporter`` works, but only one with a ``spill`` method
            (a spool) keeps the overflow.
        max_queue_size: Spans held in memory at most.
        max_export_batch_size: Spans per export request.
        schedule_delay_s: Longest wait before a partial batch is exported.
        spool_first: Write each batch to the spool before sending it (the
            replay thread sends it from there), so that a process killed
            at any moment loses no span it ended before its last flush.
            ``None`` (the default): only in worker processes (forked
            children and ``multiprocessing`` children), where a flush then
            costs a spool write instead of a network round trip.  Needs an
            exporter with a spool; without one, batches are sent directly.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_export_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        schedule_delay_s: float = DEFAULT_SCHEDULE_DELAY_S,
        spool_first: bool | None = None,
    ) -> None:
        if not isinstance(exporter, SpanExporter):
            raise TypeError(f"expected an OpenTelemetry SpanExporter, got {exporter!r}")
        for name, value in (
            ("max_queue_size", max_queue_size),
            ("max_export_batch_size", max_export_batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if max_export_batch_size > max_queue_size:
            raise ValueError("max_export_batch_size cannot exceed max_queue_size")
        if not (isinstance(schedule_delay_s, int | float) and 0 < schedule_delay_s < 3600):
            raise ValueError(
                f"schedule_delay_s must be in (0, 3600) seconds, not {schedule_delay_s!r}"
            )
        if spool_first is not None and not isinstance(spool_first, bool):
            raise TypeError(f"spool_first must be a bool or None, not {spool_first!r}")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay_s = float(schedule_delay_s)
        self.spilled_spans = 0
        """Spans written to the spool by the application's threads (the queue was full)."""
        self.dropped_spans = 0
        """Spans lost: neither exported, spooled nor spilled (counted, logged)."""
        self._spill = getattr(exporter, "spill", None)
        self._spool_first = spool_first
        self._forked = False
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._shutdown = False
        self._pid = os.getpid()
        self._thread = self._start_worker()
        _processors.add(self)

    def _start_worker(self) -> threading.Thread | None:
        thread = threading.Thread(target=self._worker, name="taskmeter-span-export", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # no threads left: spans are spooled by on_end instead
            swallowed("export.processor.thread", exc)
            return None
        return thread

    # ---------------------------------------------------------------- SpanProcessor

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span; if the queue is full, spool its oldest batch now."""
        try:
            context = span.context
            if context is None or not context.trace_flags.sampled:
                return
            if self._shutdown:
                self._export_now([span])
                return
            if self._pid != os.getpid():
                self._after_fork()
            queue = self._queue
            queue.append(span)  # deque operations are atomic: no lock on this path
            size = len(queue)
            if size > self.max_queue_size or self._thread is None:
                self._overflow(self._take(self.max_export_batch_size))
            elif size >= self.max_export_batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception as exc:
            swallowed("export.processor.on_end", exc)

    def _take(self, count: int) -> list[ReadableSpan]:
        """Up to ``count`` of the oldest queued spans (the worker may take some meanwhile)."""
        taken = []
        queue = self._queue
        for _ in range(count):
            try:
                taken.append(queue.popleft())
            except IndexError:
                break
        return taken

    def _overflow(self, spans: list[ReadableSpan]) -> None:
        if not spans:
            return
        kept = False
        if self._spill is not None:
            try:
                kept = bool(self._spill(spans))
            except Exception as exc:
                swallowed("export.processor.spill", exc)
        if kept:
            self.spilled_spans += len(spans)
        else:
            self._dropped(len(spans), "the export queue is full and the spool took none")

    def _dropped(self, count: int, why: str) -> None:
        self.dropped_spans += count
        swallowed("export.processor.dropped", SpansDroppedError(f"{count} span(s) dropped: {why}"))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every queued span, then ask the exporter to deliver its spool.

        When batches go to the spool first (in a worker process), the queued
        spans are written to the spool and the flush returns: they are safe
        there, and the replay thread sends them without holding the caller.
        """
        try:
            deadline = time.monotonic() + timeout_millis / 1000
            if not self._export_all(deadline):
                return False  # an export in progress outlasted the timeout
            if self.spools_first:
                return not self._queue
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 0)
            return bool(self.exporter.force_flush(remaining_ms)) and not self._queue
        except Exception as exc:
            swallowed("export.processor.flush", exc)
            return False

    def shutdown(self) -> None:
        """Export what is queued (the spool takes what cannot be sent) and stop."""
        self.close()

    def close(self, *, shutdown_exporter: bool = True) -> None:
        """Stop: export what is queued, then shut the exporter down unless told not to
        (``shutdown_exporter=False`` leaves it to another processor that shares it)."""
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._wake.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(30.0)
            self._export_all(None)
            if shutdown_exporter:
                self.exporter.shutdown()
        except Exception as exc:
            swallowed("export.processor.shutdown", exc)

    @classmethod
    def from_environment(
        cls, exporter: SpanExporter, environ: Mapping[str, str] | None = None
    ) -> DurableSpanProcessor:
        """A processor sized by the SDK's batch variables, as a ``BatchSpanProcessor`` is:
        ``OTEL_BSP_SCHEDULE_DELAY`` (ms), ``OTEL_BSP_MAX_QUEUE_SIZE``,
        ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``.  Unset, this class's defaults apply;
        a value that cannot be used is reported once as a warning."""
        queue = env_value(_BSP_MAX_QUEUE, positive_int, DEFAULT_MAX_QUEUE_SIZE, environ)
        batch = env_value(_BSP_MAX_BATCH, positive_int, DEFAULT_MAX_BATCH_SIZE, environ)
        delay_ms = env_value(
            _BSP_SCHEDULE_DELAY, export_wait_ms, DEFAULT_SCHEDULE_DELAY_S * 1000, environ
        )
        if batch > queue:
            config_warning(
                f"env.{_BSP_MAX_BATCH}",
                "%s=%d exceeds %s=%d; using %d",
                _BSP_MAX_BATCH,
                batch,
                _BSP_MAX_QUEUE,
                queue,
                queue,
            )
            batch = queue
        return cls(
            exporter,
            max_queue_size=queue,
            max_export_batch_size=batch,
            schedule_delay_s=delay_ms / 1000,
        )

    # ---------------------------------------------------------------- internals

    def _worker(self) -> None:
        while not self._shutdown:
            self._wake.wait(self.schedule_delay_s)
            self._wake.clear()
            if self._shutdown:
                break
            try:
                self._export_batches(full_only=False)
            except Exception as exc:  # a bug below must not stop the exports for good
                swallowed("export.processor.worker", exc)

    def _export_batches(self, *, full_only: bool) -> None:
        with self._export_lock:
            first = True
            while True:
                size = len(self._queue)
                if size == 0 or (not first and size < self.max_export_batch_size):
                    return
                if full_only and size < self.max_export_batch_size:
                    return
                batch = self._take(self.max_export_batch_size)
                first = False
                if batch:
                    self._export_now(batch)

    def _export_all(self, deadline: float | None) -> bool:
        """Export the queued spans until ``deadline``; ``False`` if another export (the
        worker's) held the processor past it, or spans are still queued at it: they are
        left to the worker.  An export begun is not cut short (a send cut at the
        caller's deadline would be taken for a dead collector: spooled, or dropped
        without a spool, though the collector may have had it)."""
        wait_s = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not self._export_lock.acquire(timeout=wait_s):
            return False
        try:
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    return not self._queue
                batch = self._take(self.max_export_batch_size)
                if not batch:
                    return True
                self._export_now(batch)
        finally:
            self._export_lock.release()

    def _export_now(self, batch: list[ReadableSpan]) -> None:
        if self.spools_first and self._spill_batch(batch):
            return
        # The export's own HTTP calls must not become spans.
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_KEY, True))
        try:
            result = self.exporter.export(batch)
        except Exception as exc:
            swallowed("export.processor.export", exc)
            result = None
        finally:
            otel_context.detach(token)
        if result is None or getattr(result, "name", "") != "SUCCESS":
            self._dropped(len(batch), "the exporter could neither deliver nor spool them")

    def _spill_batch(self, batch: list[ReadableSpan]) -> bool:
        """Write ``batch`` to the spool (sent by the replay thread); ``False``: not written."""
        assert self._spill is not None
        try:
            return bool(self._spill(batch))
        except Exception as exc:
            swallowed("export.processor.spill", exc)
            return False

    @property
    def spools_first(self) -> bool:
        """Whether batches go to the spool before the network (see ``spool_first``)."""
        if self._spill is None or getattr(self.exporter, "spool", None) is None:
            return False
        if self._spool_first is not None:
            return self._spool_first
        return self._forked or in_worker_process()

    def _after_fork(self) -> None:
        # The parent's queued spans are the parent's to export.
        self._pid = os.getpid()
        self._forked = True
        self._export_lock = threading.Lock()
        self._queue.clear()
        self._wake = threading.Event()
        self._thread = self._start_worker()

    @property
    def queued(self) -> int:
        """Spans waiting in memory now."""
        return len(self._queue)


def in_worker_process() -> bool:
    """Whether this process is a ``multiprocessing`` child (any start method)."""
    mp_process: Any = sys.modules.get("multiprocessing.process")
    return mp_process is not None and mp_process.parent_process() is not None


def _suppress_key() -> Any:
    try:
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

        return _SUPPRESS_INSTRUMENTATION_KEY
    except ImportError:  # pragma: no cover - older API
        return "suppress_instrumentation"


_SUPPRESS_KEY = _suppress_key()
_processors: weakref.WeakSet[DurableSpanProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_processors):
        processor._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
