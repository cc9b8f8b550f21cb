"""Tasks used the way real programs use them out of the ordinary: finished out of order,
inside generators, across threads, interrupted while they take their readings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import taskmeter
from taskmeter import Task
from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe, Probe
from taskmeter.task import _active_stack, _running
from taskmeter.testing import SpanCapture


def _no_span_current() -> bool:
    return not trace.get_current_span().get_span_context().is_valid


def test_a_task_finished_before_its_subtask_leaves_no_ended_span_current(
    spans: SpanCapture,
) -> None:
    """A parent finished while its subtask is still active stops being the span parent
    once the subtask finishes: the next task is top-level in its record and its span."""
    parent = Task("parent")
    parent.start()
    child = Task("child")
    child.start()
    parent.finish()
    assert Task.current() is child
    child.finish()
    assert _no_span_current()
    assert _active_stack.get() == ()
    with Task("after") as after:
        pass
    assert after.parent_id is None
    assert spans.one("after").parent is None
    assert child.parent_id == parent.task_id
    child_parent = spans.one("child").parent
    assert child_parent is not None
    assert child_parent.span_id == spans.one("parent").context.span_id


def test_a_generators_task_finished_under_the_callers_task_leaves_no_span_current(
    spans: SpanCapture,
) -> None:
    """A task opened in a generator, resumed and finished while the caller has a task
    of its own open, leaves the caller's span context as it was once both are done."""

    def numbers() -> Iterator[int]:
        with Task("generator"):
            yield 1
            yield 2

    produced = numbers()
    assert next(produced) == 1
    with Task("caller") as caller:
        assert caller.parent_id is not None  # the generator's task is the active one
        assert list(produced) == [2]
        assert Task.current() is caller
    assert _no_span_current()
    assert Task.current() is None
    with Task("after") as after:
        pass
    assert after.parent_id is None and spans.one("after").parent is None


def test_a_subtask_finishing_after_its_parent_was_finished_by_another_thread_leaves_its_span(
    spans: SpanCapture,
) -> None:
    """When a thread finishes a task that another thread started, a subtask of it that the
    starting thread finishes afterwards leaves the parent's span context at once: a user
    span opened next is not a child of the ended span."""
    parent = Task("parent")
    parent.start()
    child = Task("child")
    child.start()
    finisher = threading.Thread(target=parent.finish)
    finisher.start()
    finisher.join(5)
    assert parent.status.value == "finished"
    child.finish()
    assert _no_span_current()
    with spans.tracer.start_as_current_span("user span"):
        pass
    assert spans.one("user span").parent is None
    assert _active_stack.get() == ()


class _Interrupting(Probe):
    """A probe that raises ``KeyboardInterrupt`` (as a Ctrl-C arriving then would) in
    ``begin`` or ``read`` when armed, and records which of its states were ended."""

    name = "interrupting"

    def __init__(self, where: str) -> None:
        self.where = where
        self.armed = False
        self.begun: list[int] = []
        self.ended: list[int] = []

    def _maybe_interrupt(self, where: str) -> None:
        if self.armed and where == self.where:
            self.armed = False
            raise KeyboardInterrupt

    def begin(self, *, reset_peak: bool = True) -> Any:
        self._maybe_interrupt("begin")
        self.begun.append(len(self.begun))
        return self.begun[-1]

    def read(self, state: Any, figures: Figures) -> None:
        self._maybe_interrupt("read")

    def end(self, state: Any) -> None:
        self.ended.append(state)


def test_an_interrupt_while_a_task_takes_its_last_readings_still_finishes_it(
    spans: SpanCapture,
) -> None:
    """A ``KeyboardInterrupt`` raised while a task reads its probes at the end reaches the
    application, and the task is finished anyway: not current, not running, its span
    ended, every probe's state ended (the interrupted one's and the ones after it)."""
    first, last = _Interrupting("read"), _Interrupting("never")
    taskmeter.set_probes([first, CpuTimeProbe(), last])
    with pytest.raises(KeyboardInterrupt), Task("interrupted") as task:
        first.armed = True
    assert task.status.value == "finished"
    assert task.duration is not None and task.cpu_time is not None
    assert Task.current() is None and _no_span_current()
    assert task.task_id not in _running
    assert first.ended == [0] and last.ended == [0]
    assert spans.one("interrupted").end_time is not None
    with Task("next") as after:
        pass
    assert after.parent_id is None


def test_an_interrupt_while_a_task_starts_finishes_it_as_cancelled(spans: SpanCapture) -> None:
    """A ``KeyboardInterrupt`` raised while a task begins its probes reaches the
    application; the task, whose ``with`` block never runs, is finished as cancelled
    (not left current for good), and the probes begun before it are ended."""
    before, interrupting = _Interrupting("never"), _Interrupting("begin")
    taskmeter.set_probes([before, interrupting])
    interrupting.armed = True
    task = Task("interrupted")
    with pytest.raises(KeyboardInterrupt), task:
        pytest.fail("the block of a task whose start raised ran")
    assert task.status.value == "cancelled"
    assert before.begun == [0] and before.ended == [0]
    assert Task.current() is None and _no_span_current()
    assert task.task_id not in _running
    span = spans.one("interrupted")
    assert span.status.status_code is StatusCode.ERROR
    with Task("next") as after:
        pass
    assert after.parent_id is None
