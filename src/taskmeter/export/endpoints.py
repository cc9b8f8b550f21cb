"""Which OTLP endpoints this process found unreachable, shared by every signal's delivery.

Traces, metrics and logs usually go to one collector.  When a request of one
signal finds no connection, or no answer within its timeout, the others
would each wait out their own timeout to learn the same thing: at exit, when
the tracer and meter providers shut down one after the other, that is one
timeout per signal (10 s each by default) before the program ends.  A
delivery that finds its endpoint unreachable marks it here until the end of
its back-off period, and the other deliveries to the same ``host:port``
spool their batches meanwhile instead of trying.

Only failures of the endpoint itself are shared (no connection, no answer,
a TLS failure, gRPC ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``): an HTTP status
or another gRPC code is the answer of one signal's service, which may differ
from the next one's.  A request that gets through clears the mark.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

__all__ = ["down_until", "failed_since", "forget", "is_down", "mark_down", "mark_up"]


@dataclass
class _Mark:
    down_until: float
    """``time.monotonic()`` until which the endpoint is left alone."""
    failed_at: float
    """When the last failure was seen (``time.monotonic()``)."""


_marks: dict[str, _Mark] = {}
_lock = threading.Lock()


def mark_down(address: str, down_until: float) -> None:
    """``address`` did not answer: leave it alone until ``down_until`` (monotonic)."""
    now = time.monotonic()
    with _lock:
        mark = _marks.get(address)
        if mark is None:
            _marks[address] = _Mark(down_until, now)
        else:
            mark.down_until = max(mark.down_until, down_until)
            mark.failed_at = now


def mark_up(address: str) -> None:
    """``address`` took a request: it is no longer down."""
    if address in _marks:
        with _lock:
            _marks.pop(address, None)


def is_down(address: str) -> bool:
    """Whether a delivery found ``address`` unreachable and its back-off is not over."""
    return time.monotonic() < down_until(address)


def down_until(address: str) -> float:
    """The ``time.monotonic()`` until which ``address`` is left alone (0: not down)."""
    mark = _marks.get(address)
    return 0.0 if mark is None else mark.down_until


def failed_since(address: str) -> float | None:
    """Seconds since ``address`` was last found unreachable (``None``: not since it answered)."""
    mark = _marks.get(address)
    return None if mark is None else time.monotonic() - mark.failed_at


def forget() -> None:
    """Drop every mark (for tests that reuse ports)."""
    with _lock:
        _marks.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
