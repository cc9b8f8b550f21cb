"""taskmeter._past_fork: a callback deferred to the forking frame's first call past the fork.

An ``after_in_parent`` handler runs inside ``os.fork()``: here a function
plays it, called from the test's frame (which is "at its call of os.fork()"
while the function runs).  Needs ``sys.monitoring`` (Python 3.12+); where it
is missing, nothing is deferred.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType

import pytest

from taskmeter import _past_fork

needs_monitoring = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="sys.monitoring exists from Python 3.12"
)


def handler(calls: list[str], also: list[str]) -> None:
    """What an after_in_parent handler does: defer, then make calls of its own (as the
    handlers after it do), which must not run the callback."""
    caller: FrameType = sys._getframe(1)
    assert _past_fork.call_past_fork(lambda: calls.append("past"), caller)
    also.append(str(len(calls)))
    also.append(repr(calls))


@needs_monitoring
def test_the_callback_runs_at_the_forking_frames_first_call_after_the_fork() -> None:
    """Calls made inside the fork (by this handler) do not run it; the first call the
    forking frame makes after it does, once, and the events are off after."""
    calls: list[str] = []
    inside: list[str] = []
    handler(calls, inside)
    assert inside == ["0", "[]"]
    assert len(calls) == 1  # len() is the first call past the "fork"
    str(calls)
    assert calls == ["past"]
    assert _past_fork._deferred is None


def returns_from_the_fork(calls: list[str]) -> None:
    handler(calls, [])  # returns at once: the forking frame is gone when a call comes


@needs_monitoring
def test_a_forking_frame_that_returns_runs_the_callback_at_its_callers_next_call() -> None:
    calls: list[str] = []
    returns_from_the_fork(calls)
    assert len(calls) == 1


def handler_with_a_thread(calls: list[str], seen: list[int]) -> None:
    """A handler that defers, then waits for another thread that makes calls."""
    assert _past_fork.call_past_fork(lambda: calls.append("past"), sys._getframe(1))
    thread = threading.Thread(target=lambda: seen.append(len(calls)))
    thread.start()
    thread.join()
    seen.append(len(calls))


@needs_monitoring
def test_other_threads_calls_do_not_run_the_callback() -> None:
    """Only the forking thread's calls past the fork count, not another thread's."""
    calls: list[str] = []
    seen: list[int] = []
    handler_with_a_thread(calls, seen)
    assert seen == [0, 0]
    assert len(calls) == 1


def test_without_sys_monitoring_nothing_is_deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where sys.monitoring is missing (Python 3.11) the caller is told to run it now."""
    monkeypatch.delattr(sys, "monitoring", raising=False)
    assert not _past_fork.call_past_fork(lambda: None, sys._getframe(0))


@needs_monitoring
def test_the_tool_id_is_held_only_while_a_callback_waits() -> None:
    """The sys.monitoring tool id is taken when a callback is deferred and given back
    once it ran, free for debuggers and profilers."""
    monitoring = sys.monitoring
    assert all(monitoring.get_tool(tool) is None for tool in _past_fork._TOOL_IDS)
    calls: list[str] = []
    handler(calls, [])
    assert len(calls) == 1
    assert all(monitoring.get_tool(tool) is None for tool in _past_fork._TOOL_IDS)


@needs_monitoring
def test_with_every_free_tool_id_taken_nothing_is_deferred() -> None:
    monitoring = sys.monitoring
    for tool in _past_fork._TOOL_IDS:
        monitoring.use_tool_id(tool, "another tool")
    try:
        assert not _past_fork.call_past_fork(lambda: None, sys._getframe(0))
    finally:
        for tool in _past_fork._TOOL_IDS:
            monitoring.free_tool_id(tool)
