"""Random sequences of task starts and finishes (in order or not, here or in another
thread, with or without an explicit parent) and running-tree snapshots, checked
against a model of what the task tree, the active task and the span context must be."""

from __future__ import annotations

import contextvars
import json
import threading
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from opentelemetry import trace

from taskmeter import Task
from taskmeter.task import _active_stack
from taskmeter.taskfile import dump_task, parse_task
from taskmeter.testing import capture_spans
from taskmeter.tracing import get_tracer


class TaskLifecycle(RuleBasedStateMachine):
    """The model: the tasks started here in order, which are running, and each one's
    expected parent (the innermost running task when it started, or the one given)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = _active_stack.set(())
        self.capture_cm = capture_spans()
        self.spans = self.capture_cm.__enter__()
        self.started: list[Task] = []
        self.running: list[Task] = []
        self.parent_of: dict[int, Task | None] = {}

    def _model_current(self) -> Task | None:
        for task in reversed(self.started):
            if task in self.running:
                return task
        return None

    @rule(explicit=st.booleans(), choice=st.integers(0, 50))
    def start(self, explicit: bool, choice: int) -> None:
        if explicit and self.running:
            parent: Task | None = self.running[choice % len(self.running)]
            task = Task(f"t{len(self.started)}", parent=parent)
        else:
            parent = self._model_current()
            task = Task(f"t{len(self.started)}")
        task.start()
        self.started.append(task)
        self.running.append(task)
        self.parent_of[id(task)] = parent
        assert trace.get_current_span().get_span_context().span_id == int(task.span_id or "0", 16)

    @precondition(lambda self: bool(self.running))
    @rule(choice=st.integers(0, 50), where=st.sampled_from(["here", "thread", "copied context"]))
    def finish(self, choice: int, where: str) -> None:
        task = self.running.pop(choice % len(self.running))
        if where == "thread":
            thread = threading.Thread(target=task.finish)
            thread.start()
            thread.join(5)
        elif where == "copied context":
            contextvars.copy_context().run(task.finish)
        else:
            task.finish()
        assert task.status.value == "finished"

    @precondition(lambda self: bool(self.running))
    @rule(choice=st.integers(0, 50), by_id=st.booleans())
    def subtask_in_a_thread(self, choice: int, by_id: bool) -> None:
        parent = self.running[choice % len(self.running)]
        made: list[Task] = []

        def work() -> None:
            with Task("in a thread", parent=parent.task_id if by_id else parent) as task:
                assert Task.current() is task
            made.append(task)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(5)
        assert made and made[0].parent_id == parent.task_id
        assert sum(sub is made[0] for sub in parent.subtasks) == 1

    @precondition(lambda self: bool(self.running))
    @rule(choice=st.integers(0, 50))
    def snapshot(self, choice: int) -> None:
        task = self.running[choice % len(self.running)]
        document = json.loads(dump_task(task, snapshot=True))
        pending: list[dict[str, Any]] = [document]
        while pending:
            node = pending.pop()
            ids = [sub["task_id"] for sub in node["subtasks"]]
            assert len(ids) == len(set(ids)), "a subtask written twice"
            pending.extend(node["subtasks"])
        assert parse_task(json.dumps(document)).task_id == task.task_id

    @invariant()
    def the_active_task_is_the_models(self) -> None:
        assert Task.current() is self._model_current()

    @invariant()
    def each_task_is_once_in_its_parents_subtasks(self) -> None:
        for task in self.started:
            parent = self.parent_of[id(task)]
            if parent is None:
                assert task.parent_id is None
            else:
                assert task.parent_id == parent.task_id
                assert sum(sub is task for sub in parent.subtasks) == 1

    @invariant()
    def the_current_span_is_a_started_tasks_or_none(self) -> None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            assert any(int(task.span_id or "0", 16) == context.span_id for task in self.started)

    def teardown(self) -> None:
        try:
            for task in reversed(self.running):
                task.finish()
            self.running.clear()
            # Nothing runs: no task's span may stay current once a task has come and gone.
            with Task("after") as after:
                pass
            assert after.parent_id is None
            assert not trace.get_current_span().get_span_context().is_valid
            with get_tracer().start_as_current_span("user span"):
                pass
            assert self.spans.one("user span").parent is None
            assert self.spans.one("after").parent is None
        finally:
            self.capture_cm.__exit__(None, None, None)
            _active_stack.reset(self.token)


TaskLifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=25)
test_task_lifecycle = TaskLifecycle.TestCase
