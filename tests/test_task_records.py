"""A finished task's record: compact (a root may keep 100k of them) and fully usable."""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import pickle
import threading
from pathlib import Path

import pytest
from opentelemetry.trace import NoOpTracer

from taskmeter import Task, TaskStatus
from taskmeter import task as task_module
from taskmeter._fieldsets import FieldSets, SharedFieldSet
from taskmeter.taskfile import load_task

FINISHED_FIELDS = {
    "label",
    "parent_id",
    "status",
    "start_time",
    "finish_time",
    "trace_id",
    "span_id",
    "duration",
    "cpu_time",
    "cpu_user_time",
    "cpu_system_time",
    "peak_memory",
    "peak_gpu_memory",
}


def test_finished_tasks_drop_their_state_and_share_their_fields_set() -> None:
    with Task("root") as root:
        with Task("a") as a:
            pass
        with Task("b") as b:
            pass
    assert a._tm is None and b._tm is None and root._tm is None
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.model_fields_set == b.model_fields_set == FINISHED_FIELDS
    assert root.model_fields_set == FINISHED_FIELDS - {"parent_id"}


def test_a_retained_subtask_costs_the_garbage_collector_four_objects() -> None:
    """The task, its field values, its id and its subtask list; nothing else."""
    tracer = NoOpTracer()
    with Task("warm-up", tracer=tracer):
        for _ in range(10):
            with Task("s", tracer=tracer):
                pass
    gc.collect()
    before = len(gc.get_objects())
    with Task("root", tracer=tracer) as root:
        for _ in range(1000):
            with Task("s", tracer=tracer):
                pass
    gc.collect()
    per_subtask = (len(gc.get_objects()) - before) / len(root.subtasks)
    assert per_subtask < 4.1, per_subtask


def test_changing_one_task_never_changes_another_through_the_shared_set() -> None:
    with Task("root"):
        tasks = []
        for name in "abcd":
            with Task(name) as task:
                pass
            tasks.append(task)
    a, b, c, d = tasks
    a.note = "extra field"  # pydantic records it in a's fields set
    b.model_fields_set.add("machine")
    changed = c.model_copy(update={"cpu_power": 1.5})
    assert "note" in a.model_fields_set
    assert "machine" in b.model_fields_set
    assert "cpu_power" in changed.model_fields_set
    assert d.model_fields_set == FINISHED_FIELDS
    assert c.model_fields_set == FINISHED_FIELDS
    assert set(d.model_dump(exclude_unset=True)) == FINISHED_FIELDS
    for clone in (copy.copy(d), copy.deepcopy(d)):
        clone.label = "clone"
        clone.note = "extra field"
        assert clone.model_fields_set == FINISHED_FIELDS | {"note"}
    unpickled = pickle.loads(pickle.dumps(d))  # rebuilt by validation: every field set
    unpickled.label = "clone"
    assert d.label == "d"
    assert d.model_fields_set == FINISHED_FIELDS


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.add("x"),
        lambda s: s.update({"x"}),
        lambda s: s.discard("a"),
        lambda s: s.remove("a"),
        lambda s: s.pop(),
        lambda s: s.clear(),
        lambda s: s.difference_update({"a"}),
        lambda s: s.intersection_update(set()),
        lambda s: s.symmetric_difference_update({"x"}),
        lambda s: s.__ior__({"x"}),
        lambda s: s.__isub__({"a"}),
    ],
)
def test_a_shared_fields_set_refuses_changes(change: object) -> None:
    sets = FieldSets(initial=[frozenset({"a"})], steps=[frozenset({"b"})])
    shared = sets.shared(frozenset({"a"}))
    assert isinstance(shared, SharedFieldSet)
    with pytest.raises(TypeError, match="shared"):
        change(shared)  # type: ignore[operator]
    assert shared == {"a"}
    assert sets.shared(frozenset({"a", "b"})) == {"a", "b"}


def test_a_finished_task_stays_usable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Task("root") as root, Task("stage") as stage:
        pass
    assert stage._tm is None

    figures = stage.update_resources()
    assert figures.duration_s == stage.duration
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        stage.finish()
    assert "already finished" in caplog.text
    assert stage.status is TaskStatus.FINISHED

    late = Task("late record")
    stage.add_subtask(late)
    stage.add_subtask(late)
    assert stage.subtasks == [late]

    with Task("under a finished parent", parent=stage) as child:
        pass
    assert child.parent_id == stage.task_id
    assert stage.subtasks[-1] is child
    assert child.trace_id == stage.trace_id == root.trace_id

    with Task("under its id", parent=stage.task_id) as by_id:
        pass
    assert by_id.parent_id == stage.task_id

    path = tmp_path / "stage.json"
    stage.save_to_file(path)
    loaded = load_task(path)
    assert [t.label for t in loaded.subtasks] == ["late record", "under a finished parent"]
    assert loaded.status is TaskStatus.FINISHED


def test_refresh_finds_a_running_task_below_a_finished_one(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    with Task("root", file=path) as root:
        with Task("stage") as stage:
            pass
        with Task("late step", parent=stage):
            root.monitor_refresh()
            document = json.loads(path.read_text())
    late = document["subtasks"][0]["subtasks"][0]
    assert late["label"] == "late step"
    assert late["status"] == "running"
    assert late["duration"] is not None and late["peak_memory"] is not None
    assert document["subtasks"][0]["status"] == "finished"


def test_save_to_file_from_another_thread_as_the_task_finishes(tmp_path: Path) -> None:
    """The file is written even when the task finishes (and drops its state) meanwhile."""
    target = tmp_path / "task.json"
    asked, finished = threading.Event(), threading.Event()

    class SlowPath(os.PathLike[str]):
        def __fspath__(self) -> str:
            asked.set()
            finished.wait(5)
            return str(target)

    task = Task("t", tracer=NoOpTracer())
    task.start()
    saver = threading.Thread(target=task.save_to_file, args=(SlowPath(),))
    saver.start()
    assert asked.wait(5)
    task.finish()
    finished.set()
    saver.join(5)
    assert load_task(target).status is TaskStatus.FINISHED


@pytest.mark.parametrize("running", [True, False])
def test_fields_set_changes_are_serialised(running: bool) -> None:
    """A field assigned in one thread waits for the lock under which the task
    replaces its shared fields set (running: the task's; finished: the module's),
    so two threads never each install a set that lacks the other's fields."""
    task = Task("a", tracer=NoOpTracer())
    task.start()
    if not running:
        task.finish()
    state = task._tm
    lock = state.lock if state is not None else task_module._thaw_lock
    done = threading.Event()

    def assign() -> None:
        task.note = "from another thread"
        done.set()

    with lock:
        thread = threading.Thread(target=assign)
        thread.start()
        assert not done.wait(0.2)  # waits for the lock
    thread.join(5)
    assert done.is_set()
    assert "note" in task.model_fields_set
    if running:
        task.finish()
    assert task.model_fields_set == (FINISHED_FIELDS - {"parent_id"}) | {"note"}


def test_refresh_survives_a_task_tree_with_a_cycle(tmp_path: Path) -> None:
    root = Task("root", file=tmp_path / "task.json")
    root.start()
    with Task("child") as child:
        pass
    child.subtasks.append(root)  # by hand (add_subtask refuses it): the tree has a cycle
    refresher = threading.Thread(target=root.monitor_refresh, daemon=True)
    refresher.start()
    refresher.join(10)
    assert not refresher.is_alive()
    child.subtasks.clear()
    root.finish()


def test_pydantic_deprecated_fields_set_name_still_works() -> None:
    with Task("root"):
        with Task("a") as a:
            pass
        with Task("b") as b:
            pass
    with pytest.warns(DeprecationWarning):
        a.__fields_set__.add("machine")
    assert "machine" in a.model_fields_set
    assert b.model_fields_set == FINISHED_FIELDS
