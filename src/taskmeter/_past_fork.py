"""Run a callback in a forking parent once ``os.fork()`` has returned to its caller.

From Python 3.13, ``os.fork()`` checks whether the process is multi-threaded
(and warns, ``DeprecationWarning``) *after* the ``after_in_parent`` handlers
of :func:`os.register_at_fork` have run: a thread started there is counted.
The monitor's thread, stopped for the fork, must start again only after.

:func:`call_past_fork`, called from an ``after_in_parent`` handler, turns on
``sys.monitoring`` ``CALL`` events for a tool of its own until the forking
thread makes its first call from the frame that called ``os.fork()`` (or from
below it, once that frame has returned); the callback runs then and the events
are turned off and the tool id freed.  Calls made by the other ``after_in_parent`` handlers (frames
above the forking frame, which is still at its call of ``os.fork()``) are not
that call.  Where ``sys.monitoring`` is missing or its free tool ids are taken
(a debugger, a profiler and a coverage tool at once), nothing is deferred.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from ._log import swallowed

_TOOL_IDS = (4, 3)
"""Tool ids that no standard tool claims (0, 1, 2 and 5 are the debugger's, coverage's,
the profiler's and the optimizer's)."""

_TOOL_NAME = "taskmeter-fork"


class _Deferred:
    __slots__ = ("callbacks", "frame", "lasti", "thread_id")

    def __init__(self, frame: FrameType, callbacks: list[Callable[[], object]]) -> None:
        self.frame: FrameType | None = frame
        self.lasti = frame.f_lasti
        self.thread_id = threading.get_ident()
        self.callbacks = callbacks


_tool: int | None = None
_deferred: _Deferred | None = None
_lock = threading.Lock()


def forking_frame() -> FrameType | None:
    """The frame that called ``os.fork()``, from the at-fork handler that calls this."""
    try:
        return sys._getframe(2)
    except ValueError:
        return None


def call_past_fork(callback: Callable[[], object], frame: FrameType | None) -> bool:
    """Run ``callback`` in this thread at its first call made past the ``os.fork()`` that
    ``frame`` is making.  Returns ``False`` where that cannot be arranged (the caller
    runs ``callback`` itself)."""
    global _deferred
    monitoring: Any = getattr(sys, "monitoring", None)
    if monitoring is None or frame is None:
        return False
    with _lock:
        tool = _claim_tool(monitoring)
        if tool is None:
            return False
        # One at a time: a callback still waiting (another thread's fork) waits
        # for this one, which is past that fork too.
        waiting = _deferred.callbacks if _deferred is not None else []
        _deferred = _Deferred(frame, [*waiting, callback])
        monitoring.set_events(tool, monitoring.events.CALL)
    return True


def _claim_tool(monitoring: Any) -> int | None:
    # Held only while a callback waits (microseconds, as a rule): freed by _release.
    global _tool
    if _tool is not None:
        return _tool
    for tool in _TOOL_IDS:
        try:
            monitoring.use_tool_id(tool, _TOOL_NAME)
        except ValueError:  # taken by another tool
            continue
        monitoring.register_callback(tool, monitoring.events.CALL, _on_call)
        _tool = tool
        return tool
    return None


def _release() -> None:
    # Under _lock.
    global _tool
    tool, _tool = _tool, None
    if tool is not None:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+)
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.CALL, None)
        monitoring.free_tool_id(tool)


def _on_call(code: CodeType, offset: int, callable: object, arg0: object) -> None:
    deferred = _deferred
    if deferred is None or deferred.thread_id != threading.get_ident():
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame is deferred.frame:
            if frame.f_lasti == deferred.lasti:
                return  # still inside os.fork(): another at-fork handler's call
            break
        frame = frame.f_back
    _fire(deferred)


def _fire(deferred: _Deferred) -> None:
    global _deferred
    with _lock:
        if _deferred is not deferred:
            return
        _deferred = None
        _release()
    deferred.frame = None
    for callback in deferred.callbacks:
        try:
            callback()
        except Exception as exc:
            swallowed("monitor.fork", exc)


def _after_fork_in_child() -> None:
    # The child has only the forking thread, which is past the fork: nothing waits.
    global _deferred, _lock
    _lock = threading.Lock()
    if _deferred is not None:
        _deferred = None
        _release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
