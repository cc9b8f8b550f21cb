"""Deliver one signal's requests: send now if the endpoint answers, else spool and replay.

:class:`Delivery` is what the durable exporters share.  A batch handed to
:meth:`Delivery.submit` is sent at once while the endpoint is known to
answer; when an attempt fails it goes to the spool, the endpoint is marked
down for a back-off period (0.5 s, doubling to 30 s, or what ``Retry-After``
says), and batches submitted meanwhile go straight to the spool without
touching the network, so the exporting thread never waits on a dead
endpoint more than once per period.  An endpoint found unreachable is
marked for every signal sent to it (:mod:`.endpoints`), and an exit does
not try again an endpoint that has just failed.  A replay thread sends the spooled
batches, oldest first, when the period is over, and again whenever a fresh
batch gets through; batches spooled by earlier processes are replayed too.
The thread starts only once there is something to replay, and sleeps
without a timeout while there is nothing (an idle exporter costs no wake-ups).
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY

from .._log import logger, swallowed
from . import endpoints
from .senders import Outcome, Sender, SendResult
from .spool import Spool

__all__ = ["Delivery", "DeliveryStats", "ExportRejectedError", "ExportUnavailableError"]

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
EXIT_RETRY_GAP_S = 2.0
"""At exit, an endpoint that failed less than this long ago is not tried again."""


class ExportUnavailableError(Exception):
    """The OTLP endpoint could not be reached (or did not take the request)."""


class ExportRejectedError(Exception):
    """The OTLP endpoint refused a request's data; it is dropped."""


@dataclass
class DeliveryStats:
    """What one :class:`Delivery` did in this process (counters only grow)."""

    sent_batches: int = 0
    sent_items: int = 0
    """Items delivered as they were exported (not through the spool)."""
    spooled_batches: int = 0
    spooled_items: int = 0
    replayed_batches: int = 0
    replayed_items: int = 0
    """Items delivered from the spool (by this process)."""
    rejected_items: int = 0
    """Items the endpoint refused (whole requests, or parts of them)."""
    lost_items: int = 0
    """Items that could be neither sent nor spooled (no spool, a write error)."""
    failed_attempts: int = 0


class Delivery:
    """Sends ``signal``'s batches through ``sender``, spooling what cannot be sent.

    Args:
        signal: ``traces``, ``metrics`` or ``logs``.
        sender: One attempt per call, bounded in time.
        spool: Where undeliverable batches wait; ``None``: they are dropped
            (counted and logged).
        replay: Replay the spool on a background thread (``False``: only
            :meth:`flush` delivers it, as ``taskmeter flush`` does).
    """

    def __init__(
        self,
        signal: str,
        sender: Sender,
        spool: Spool | None,
        *,
        replay: bool = True,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.signal = signal
        self.sender = sender
        self.spool = spool
        self.stats = DeliveryStats()
        self.last_error: str | None = None
        """What the last failed attempt said (safe to show: no credentials)."""
        self._replay = replay and spool is not None
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = initial_backoff_s
        self._down_until = 0.0
        self._down = False
        self._failed_at: float | None = None
        self._address = sender.address
        self._cond = threading.Condition()
        self._wake = False
        self._waiting = False
        """The spool holds batches this process failed to deliver (retry after the back-off)."""
        self._stuck: set[str] = set()
        """Batches delivered but not removable (a read-only spool): not sent again here."""
        self._spooled = 0
        """Batches this process spooled (to notice those spooled during a replay)."""
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        _deliveries.add(self)
        if self._replay and spool is not None and spool.entries(signal):
            self._start_thread(wake=True)  # batches left by earlier processes

    # ---------------------------------------------------------------- exporting

    def submit(self, payload: bytes, items: int) -> bool:
        """Deliver or spool one request; ``False`` if it is lost (counted and logged)."""
        if self.spool is not None and self.is_down():
            return self._spool(payload, items)
        result = self._send(payload, None)
        if result.outcome is Outcome.DELIVERED:
            self.stats.sent_batches += 1
            self.stats.sent_items += items
            self._partially_rejected(result.rejected_items)
            self._mark_up()
            return True
        if result.outcome is Outcome.REJECTED:
            self._rejected(items, result.detail)
            return False
        self._mark_down(result.detail, result.retry_after_s, unreachable=result.unreachable)
        if self.spool is None:
            self.stats.lost_items += items
            swallowed(
                f"export.{self.signal}.lost",
                ExportUnavailableError(
                    f"{self.sender.where}: {result.detail}; {items} {self.signal} item(s) "
                    f"dropped (set TASKMETER_SPOOL_DIR to keep them)"
                ),
            )
            return False
        return self._spool(payload, items)

    def _send(self, payload: bytes, timeout_s: float | None) -> SendResult:
        # The request must not become a span of an instrumented HTTP or gRPC
        # client: replayed, that span would make a batch of its own, for ever.
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_KEY, True))
        try:
            return self.sender.send(payload, timeout_s)
        finally:
            otel_context.detach(token)

    def spool_only(self, payload: bytes, items: int) -> bool:
        """Put a request in the spool without trying the network (``False``: lost)."""
        if self.spool is None:
            self.stats.lost_items += items
            return False
        return self._spool(payload, items)

    def _spool(self, payload: bytes, items: int) -> bool:
        assert self.spool is not None
        if not self.spool.put(self.signal, payload, items):
            self.stats.lost_items += items
            return False
        self.stats.spooled_batches += 1
        self.stats.spooled_items += items
        with self._cond:
            self._waiting = True
            self._spooled += 1
        if self._replay:
            self._start_thread(wake=False)
        return True

    # ---------------------------------------------------------------- endpoint state

    def is_down(self) -> bool:
        """Whether the endpoint failed recently and is being left alone (after a failure
        of this delivery, or of another one that found the same endpoint unreachable)."""
        return time.monotonic() < self._down_until or endpoints.is_down(self._address)

    def _mark_down(
        self,
        detail: str,
        retry_after_s: float | None,
        *,
        unreachable: bool = False,
        replaying: bool = False,
    ) -> None:
        self.stats.failed_attempts += 1
        self.last_error = detail
        with self._cond:
            self._down = True
            backoff = self._backoff_s * random.uniform(0.8, 1.2)
            if retry_after_s is not None:
                backoff = max(backoff, retry_after_s)
            self._failed_at = time.monotonic()
            self._down_until = self._failed_at + backoff
            self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
        if unreachable:
            endpoints.mark_down(self._address, self._down_until)
        if self.spool is None:
            where = "not spooled"
        elif replaying:  # the batch came from the spool: it stays there, nothing is added
            where = f"the spooled batches stay in {self.spool.directory}"
        else:
            where = f"spooling to {self.spool.directory}"
        swallowed(
            f"export.{self.signal}.unavailable",
            ExportUnavailableError(f"{self.sender.where}: {detail}; {where}"),
        )

    def _mark_up(self) -> None:
        endpoints.mark_up(self._address)
        with self._cond:
            was_down = self._down
            self._down = False
            self._down_until = 0.0
            self._failed_at = None
            self._backoff_s = self._initial_backoff_s
            waiting = self._waiting
        if was_down:
            logger.info("the OTLP %s endpoint %s answers again", self.signal, self.sender.where)
        if waiting and self._replay:
            self._start_thread(wake=True)

    def _rejected(self, items: int, detail: str) -> None:
        self.stats.rejected_items += items
        self.last_error = f"refused: {detail}"
        swallowed(
            f"export.{self.signal}.rejected",
            ExportRejectedError(
                f"{self.sender.where} refused a request of {items} {self.signal} item(s) "
                f"({detail}); it is dropped"
            ),
        )

    def _partially_rejected(self, items: int) -> None:
        if items > 0:
            self._rejected(items, "partial success")

    # ---------------------------------------------------------------- replaying

    def flush(self, timeout_s: float | None = None) -> bool:
        """Deliver the spooled batches now (ignoring the back-off), until ``timeout_s``.

        Returns whether none of this signal's batches is left (batches another
        process is delivering at this moment count as left).
        """
        if self.spool is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            failed = self._drain(deadline)
            waiting = [e for e in self.spool.entries(self.signal) if e.path.name not in self._stuck]
            if not waiting:
                return len(self._stuck) == 0 or self.spool.pending(self.signal) == 0
            if failed or (deadline is not None and time.monotonic() >= deadline):
                return False
            # Batches locked by a delivery in progress (the replay thread, or
            # another process): wait for it to finish with them.
            time.sleep(0.02)

    def _drain(self, deadline: float | None) -> bool:
        """Send spooled batches, oldest first; ``True`` if the endpoint failed (retry later)."""
        spool = self.spool
        assert spool is not None
        delivered = 0
        for entry in spool.entries(self.signal):
            if entry.path.name in self._stuck:
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            with self._cond:
                if self._stopping and deadline is None:
                    break
            with spool.claim(entry) as claimed:
                if claimed is None:
                    continue
                batch = claimed.batch
                timeout = None if remaining is None else min(remaining, self.sender.timeout_s)
                result = self._send(batch.payload, timeout)
                if result.outcome is Outcome.RETRY:
                    self._mark_down(
                        result.detail,
                        result.retry_after_s,
                        unreachable=result.unreachable,
                        replaying=True,
                    )
                    return True
                if not claimed.done():
                    self._stuck.add(entry.path.name)
                if result.outcome is Outcome.REJECTED:
                    self._rejected(batch.items, result.detail)
                    continue
                self._partially_rejected(result.rejected_items)
                delivered += 1
                self.stats.replayed_batches += 1
                self.stats.replayed_items += batch.items
        if delivered:
            self._mark_up()
            logger.info(
                "delivered %d spooled %s batch(es) to %s", delivered, self.signal, self.sender.where
            )
        return False

    def _start_thread(self, *, wake: bool) -> None:
        with self._cond:
            if wake:
                self._wake = True
            if self._stopping:
                return
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(
                    target=self._run, name=f"taskmeter-replay-{self.signal}", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # no more threads: the spool waits for a flush
                    swallowed("export.replay.thread", exc)
                    return
                self._thread = thread
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._wake:
                        self._wake = False
                        break
                    if not self._waiting:
                        self._cond.wait()
                        continue
                    until = max(self._down_until, endpoints.down_until(self._address))
                    delay = until - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopping:
                    return
                spooled_before = self._spooled
            try:
                failed = self._drain(None)
            except Exception as exc:  # a bug or a vanished directory: never kill the thread
                swallowed(f"export.{self.signal}.replay", exc)
                failed = True
                with self._cond:
                    self._down_until = time.monotonic() + self._backoff_s
            with self._cond:
                # Batches spooled while the replay ran may not have been listed.
                self._waiting = failed or self._spooled != spooled_before

    def notice(self) -> None:
        """Another process may have spooled batches: replay them (after any back-off).

        A worker process writes its spans to the shared spool before it
        reports a task; its parent calls this when the report arrives, so
        batches the worker could not send before it ended are not left
        waiting for this process's own next failure or exit.
        """
        if not self._replay:
            return
        with self._cond:
            self._waiting = True
            self._spooled += 1  # a replay running now lists the spool again after it
        self._start_thread(wake=False)

    def _after_fork_in_child(self) -> None:
        # The replay thread is not in the child, and a lock it held stays held.
        self._pid = os.getpid()
        self._thread = None
        self._cond = threading.Condition()
        self._wake = self._waiting

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s`` and stop the replay thread.

        What is left stays in the spool for a later process or ``taskmeter flush``.
        """
        deadline = time.monotonic() + timeout_s
        pending = self.spool.pending(self.signal) if self.spool is not None else 0
        failed_now = self._failed_just_now()
        if pending and failed_now:
            # It has just failed (this delivery's last export, or another
            # signal's to the same endpoint): trying again now would only
            # hold the exit for one more timeout.
            logger.info(
                "%s is not answering: %d %s batch(es) stay in %s for a later run "
                "or `taskmeter flush`",
                self.sender.where,
                pending,
                self.signal,
                self.spool.directory if self.spool is not None else "the spool",
            )
        elif pending:
            # While the endpoint is known to be down, one short try: it may be
            # back, but a dead one must not hold the process's exit for long.
            budget = min(timeout_s, 1.0) if self.is_down() else timeout_s
            try:
                self.flush(budget)
            except Exception as exc:
                swallowed(f"export.{self.signal}.replay", exc)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A replay waiting on an endpoint that has just failed is not
            # waited for: its batch stays in the spool (a daemon thread).
            left_s = max(deadline - time.monotonic(), 0.0)
            thread.join(0.05 if failed_now else min(left_s, 1.0))
        self.sender.close()

    def _failed_just_now(self) -> bool:
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < EXIT_RETRY_GAP_S:
            return True
        since = endpoints.failed_since(self._address)
        return since is not None and since < EXIT_RETRY_GAP_S


_deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()


def notice_spooled_elsewhere() -> None:
    """Tell every delivery of this process that other processes may have spooled batches."""
    for delivery in list(_deliveries):
        try:
            delivery.notice()
        except Exception as exc:
            swallowed("export.replay.notice", exc)


def _after_fork_in_child() -> None:
    for delivery in list(_deliveries):
        delivery._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
