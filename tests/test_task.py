"""The Task model: lifecycle, status, nesting across threads and coroutines, pickling."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import os
import pickle
import sys
import threading
import uuid
from collections.abc import Iterator
from uuid import UUID

import pytest
from pydantic import ValidationError

from taskmeter import Task, TaskStatus, format_tree
from taskmeter import task as task_module
from taskmeter.task import TotalCpu, _running_task
from taskmeter.testing import SpanCapture


def test_context_manager_sets_finished_and_timestamps() -> None:
    with Task("work") as task:
        assert task.status is TaskStatus.RUNNING
        assert Task.current() is task
    assert task.status is TaskStatus.FINISHED
    assert task.start_time is not None and task.finish_time is not None
    assert task.finish_time >= task.start_time
    assert Task.current() is None


def test_exception_marks_failed_and_propagates() -> None:
    with pytest.raises(ValueError, match="boom"), Task("work") as task:
        raise ValueError("boom")
    assert task.status is TaskStatus.FAILED
    assert task.duration is not None


def test_keyboard_interrupt_marks_cancelled() -> None:
    with pytest.raises(KeyboardInterrupt), Task("work") as task:
        raise KeyboardInterrupt
    assert task.status is TaskStatus.CANCELLED


def test_asyncio_cancellation_marks_cancelled() -> None:
    async def main() -> Task:
        started = asyncio.Event()
        holder: list[Task] = []

        async def job() -> None:
            with Task("job") as task:
                holder.append(task)
                started.set()
                await asyncio.sleep(10)

        running = asyncio.create_task(job())
        await started.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return holder[0]

    assert asyncio.run(main()).status is TaskStatus.CANCELLED


def test_sys_exit_zero_is_finished_nonzero_is_failed() -> None:
    with pytest.raises(SystemExit), Task("ok") as ok:
        raise SystemExit(0)
    with pytest.raises(SystemExit), Task("bad") as bad:
        raise SystemExit(3)
    assert ok.status is TaskStatus.FINISHED
    assert bad.status is TaskStatus.FAILED


def test_sys_exit_without_code_is_finished() -> None:
    """``sys.exit()`` (code ``None``) is a normal end, like code 0 (LensKit: failed)."""
    with pytest.raises(SystemExit), Task("exits") as task:
        sys.exit()
    assert task.status is TaskStatus.FINISHED


def test_generator_closed_inside_its_task_marks_cancelled() -> None:
    """A generator closed while suspended in ``with Task`` ends that task as cancelled
    (``GeneratorExit``; LensKit: failed), and leaves no task active."""
    seen: list[Task] = []

    def numbers() -> Iterator[int]:
        with Task("produce") as task:
            seen.append(task)
            yield 1
            yield 2

    gen = numbers()
    assert next(gen) == 1
    gen.close()
    assert seen[0].status is TaskStatus.CANCELLED
    assert Task.current() is None


def test_nesting_sets_parent_and_subtasks() -> None:
    with Task("root") as root:
        assert Task.root() is root
        with Task("child") as child:
            assert Task.current() is child
            assert Task.root() is root
            with Task("grandchild") as grandchild:
                pass
        assert Task.current() is root
    assert child.parent_id == root.task_id
    assert grandchild.parent_id == child.task_id
    assert [t.label for t in root.subtasks] == ["child"]
    assert [t.label for t in child.subtasks] == ["grandchild"]
    assert [(d, t.label) for d, t in root.walk()] == [
        (0, "root"),
        (1, "child"),
        (2, "grandchild"),
    ]


def test_threads_nest_their_own_tasks() -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, tuple[str | None, str | None]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            assert Task.current() is None  # a new thread starts with no task
            with Task(f"{name} outer") as outer, Task(f"{name} inner"):
                barrier.wait(timeout=5)  # both threads are inside their tasks now
                current = Task.current()
                root = Task.root()
                seen[name] = (current.label if current else None, root.label if root else None)
                assert root is outer
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with Task("main"):
        threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert Task.current() is not None and Task.current().label == "main"
    assert not errors
    assert seen == {"a": ("a inner", "a outer"), "b": ("b inner", "b outer")}


def test_asyncio_tasks_nest_their_own_tasks() -> None:
    async def branch(name: str, gate: asyncio.Barrier) -> tuple[str, str, str | None]:
        with Task(name) as mine:
            await gate.wait()  # every branch is inside its task now
            current = Task.current()
            assert current is mine
            await asyncio.sleep(0)
            return name, current.label, str(mine.parent_id)

    async def main() -> tuple[Task, list[tuple[str, str, str | None]]]:
        with Task("event loop") as root:
            gate = asyncio.Barrier(3)
            results = await asyncio.gather(*(branch(n, gate) for n in ("x", "y", "z")))
        return root, list(results)

    root, results = asyncio.run(main())
    assert [(name, current) for name, current, _ in results] == [
        ("x", "x"),
        ("y", "y"),
        ("z", "z"),
    ]
    assert {parent for _, _, parent in results} == {str(root.task_id)}
    assert sorted(t.label for t in root.subtasks) == ["x", "y", "z"]


def test_explicit_parent_task_is_honoured_across_threads() -> None:
    with Task("root") as root:
        result: list[Task] = []

        def worker() -> None:
            with Task("in thread", parent=root) as task:
                result.append(task)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert result[0].parent_id == root.task_id
    assert root.subtasks == [result[0]]


def test_explicit_parent_uuid_of_running_task_links_subtask() -> None:
    with Task("root") as root, Task("by id", parent=root.task_id) as child:
        pass
    assert child.parent_id == root.task_id
    assert root.subtasks == [child]


@pytest.mark.parametrize(
    "clone", [pickle.loads, copy.copy, copy.deepcopy], ids=["pickle", "copy", "deepcopy"]
)
def test_parent_given_as_a_copy_of_a_running_task_links_to_the_running_task(
    clone: object,
) -> None:
    """``parent=`` a copy (unpickled, copied) of a task running in this process: the subtask
    goes to the running task, as with ``parent=<its id>``, not to the copy; in-process, so
    not a worker's subtask; its span is the running task's child."""
    with Task("root") as root:
        original = pickle.dumps(root) if clone is pickle.loads else root
        copied = clone(original)  # type: ignore[operator]
        assert copied is not root
        with Task("via copy", parent=copied) as child:
            pass
    assert root.subtasks == [child]
    if clone is not copy.copy:  # a shallow copy shares the list
        assert copied.subtasks == []
    assert child.parent_id == root.task_id
    assert child.subprocess is False
    assert child.trace_id == root.trace_id


@pytest.mark.parametrize("pid", ["this process", "another process", "none (LensKit)"])
def test_parent_given_as_a_finished_task_read_from_a_file_is_a_parent_by_id(pid: str) -> None:
    """A finished task read back from a file stands for its id whichever process ran it
    (this one, another one or a LensKit file naming none): the file's record does not
    take the new task as a subtask."""
    from taskmeter.taskfile import dump_task, parse_task

    with Task("root") as root:
        pass
    record = json.loads(dump_task(root))
    if pid == "another process":
        record["pid"] = os.getpid() + 1
    elif pid != "this process":
        del record["pid"]
    loaded = parse_task(json.dumps(record))
    with Task("late", parent=loaded) as late:
        pass
    assert loaded.subtasks == [] and root.subtasks == []
    assert late.parent_id == root.task_id and late.subprocess is False


@pytest.mark.parametrize(
    "clone", [pickle.loads, copy.copy, copy.deepcopy], ids=["pickle", "copy", "deepcopy"]
)
@pytest.mark.parametrize("copied_while", ["finished", "running"])
def test_parent_given_as_a_copy_of_a_finished_task_is_a_parent_by_id(
    clone: object, copied_while: str, spans: SpanCapture
) -> None:
    """``parent=`` a copy (unpickled, copied) of a task of this process that has finished
    (copied after it finished, or while it ran): as LensKit's ``parent=``, the new task
    records the parent's id and its span is a child of the parent's span, but neither the
    copy nor the finished original takes it as a subtask (as with ``parent=<its id>``)."""
    with Task("root") as root:
        with Task("stage"):
            pass
        if copied_while == "running":
            copied = clone(pickle.dumps(root) if clone is pickle.loads else root)  # type: ignore[operator]
    if copied_while == "finished":
        copied = clone(pickle.dumps(root) if clone is pickle.loads else root)  # type: ignore[operator]
    copied_subtasks = list(copied.subtasks)
    with Task("late", parent=copied) as late:
        pass
    assert [t.label for t in root.subtasks] == ["stage"]
    assert copied.subtasks == copied_subtasks
    assert late.parent_id == root.task_id
    assert late.subprocess is False
    assert late.trace_id == root.trace_id
    span = spans.one("late")
    assert span.parent is not None and span.parent.span_id == int(root.span_id or "0", 16)


def test_parent_uuid_unknown_here_is_recorded() -> None:
    remote = uuid.uuid4()
    with Task("child of remote", parent=remote) as task:
        pass
    assert task.parent_id == remote


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="parent must be a Task, a UUID or None"):
        Task("x", parent="not a task")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reset_hwm"):
        Task("x", reset_hwm="yes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="label"):
        Task(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracer"):
        Task("x", tracer=object())  # type: ignore[arg-type]


def test_start_twice_and_finish_unstarted_raise() -> None:
    task = Task("x")
    with pytest.raises(RuntimeError, match="never started"):
        task.finish()
    with task, pytest.raises(RuntimeError, match="already running"):
        task.start()
    with pytest.raises(RuntimeError, match="already finished"):
        task.start()


def test_finish_twice_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    task = Task("x")
    task.start()
    task.finish()
    first = task.finish_time
    task.finish(TaskStatus.FAILED)
    assert task.status is TaskStatus.FINISHED and task.finish_time == first
    assert "finish() ignored" in caplog.text


def test_manual_finish_with_status() -> None:
    task = Task("x")
    task.start()
    task.finish(TaskStatus.CANCELLED)
    assert task.status is TaskStatus.CANCELLED
    assert _running_task(task.task_id) is None


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, "pending", "done"])
def test_finish_takes_only_a_final_status(status: str) -> None:
    task = Task("x")
    task.start()
    with pytest.raises(ValueError, match=r"pending|running|done"):
        task.finish(status)  # type: ignore[arg-type]
    assert task.status is TaskStatus.RUNNING
    task.finish("failed")  # type: ignore[arg-type]
    assert task.status is TaskStatus.FAILED


def test_add_subtask_is_idempotent_by_id() -> None:
    parent = Task("parent")
    child = Task("child")
    parent.add_subtask(child)
    parent.add_subtask(child)
    updated = child.model_copy(update={"duration": 3.0})
    parent.add_subtask(updated)
    assert len(parent.subtasks) == 1
    assert parent.subtasks[0].duration == 3.0
    assert child.parent_id == parent.task_id
    other = Task("other", parent=parent)
    parent.add_subtask(other)
    assert [t.label for t in parent.subtasks] == ["child", "other"]


def test_add_subtask_refuses_a_cycle() -> None:
    """A task under itself, an ancestor under its descendant, or a shallow copy sharing the
    parent's subtask list: ValueError, and the tree is left as it was."""
    root = Task("root")
    with root, Task("child") as child, Task("grandchild") as grandchild:
        pass
    for parent, task in ((root, root), (child, root), (grandchild, root), (grandchild, child)):
        with pytest.raises(ValueError, match="cannot be a subtask"):
            parent.add_subtask(task)
    with pytest.raises(ValueError, match="cannot be a subtask"):
        child.add_subtask(child.model_copy())  # shares child's subtask list
    assert [t.label for t in root.subtasks] == ["child"]
    assert [t.label for t in child.subtasks] == ["grandchild"]
    assert grandchild.subtasks == []
    assert "grandchild" in format_tree(root)
    assert root.total_cpu() == root.cpu_time


def test_add_subtask_of_a_tree_with_a_cycle_ends() -> None:
    """A tree someone made cyclic by hand is still checked in bounded time."""
    looped = Task("looped")
    looped.subtasks.append(looped)
    holder = Task("holder")
    holder.add_subtask(looped)
    assert holder.subtasks == [looped]


def test_add_subtask_survives_reassigned_subtask_list() -> None:
    parent = Task("parent")
    a, b = Task("a"), Task("b")
    parent.add_subtask(a)
    parent.subtasks = [b]
    parent.add_subtask(a)
    parent.add_subtask(b)
    assert [t.label for t in parent.subtasks] == ["b", "a"]


def test_add_subtask_replaces_by_id_after_the_list_is_reordered_or_replaced() -> None:
    """A record delivered again after the subtasks were sorted in place, or replaced by
    another list of as many tasks, replaces its earlier record instead of adding a second."""
    parent = Task("parent")
    a, b, c = Task("a"), Task("b"), Task("c")
    for task in (a, b, c):
        parent.add_subtask(task)
    parent.subtasks.sort(key=lambda task: task.label, reverse=True)
    parent.add_subtask(a.model_copy(update={"duration": 1.0}))
    records = [(t.label, t.duration) for t in parent.subtasks]
    assert records == [("c", None), ("b", None), ("a", 1.0)]
    x, y, z = Task("x"), Task("y"), Task("z")
    parent.subtasks = [x, y, z]
    parent.add_subtask(x.model_copy(update={"duration": 2.0}))
    records = [(t.label, t.duration) for t in parent.subtasks]
    assert records == [("x", 2.0), ("y", None), ("z", None)]


def test_total_cpu_adds_worker_subtasks_at_any_depth() -> None:
    root = Task("root", cpu_time=1.0)
    stage = Task("stage", cpu_time=0.5, parent=root)  # in-process: already in root's cpu
    worker = Task("worker", cpu_time=2.0, subprocess=True, parent=stage)
    nested_worker = Task("nested", cpu_time=0.25, subprocess=True, parent=worker)
    worker.add_subtask(nested_worker)
    stage.add_subtask(worker)
    root.add_subtask(stage)
    root.add_subtask(Task("direct worker", cpu_time=4.0, subprocess=True, parent=root))
    assert worker.total_cpu() == pytest.approx(2.25)
    assert stage.total_cpu() == pytest.approx(2.75)
    assert root.total_cpu() == pytest.approx(1.0 + 2.25 + 4.0)
    assert Task("unmeasured").total_cpu() is None


class _CountedList(list[Task]):
    """A subtask list that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Iterator[Task]:
        _CountedList.walks += 1
        return super().__iter__()


def test_total_cpu_of_every_task_of_a_tree_walks_each_subtask_list_a_few_times() -> None:
    """TotalCpu asked for every task of a chain 400 deep, top down (as a table's rows
    ask): each subtask list is walked a bounded number of times in all, not once per
    task above it (which took time in the square of the depth)."""
    depth = 400
    tasks = [Task("root", cpu_time=0.5)]
    for level in range(depth):
        worker = Task(f"w{level}", cpu_time=1.0, subprocess=level % 2 == 0)
        tasks[-1].__dict__["subtasks"] = _CountedList([worker])
        tasks.append(worker)
    _CountedList.walks = 0
    total_cpu = TotalCpu()
    totals = [total_cpu(task) for task in tasks]
    assert _CountedList.walks <= 3 * depth
    assert totals == [task.total_cpu() for task in tasks]
    # Workers (even levels) count, in-process tasks below the first task do not.
    assert totals[0] == 0.5 + depth // 2
    assert totals[1] == 1.0 + (depth - 1) // 2


def test_total_cpu_of_a_cycle_made_by_hand_ends() -> None:
    """Subtask lists that loop (made by assignment, which add_subtask refuses) give a
    finite total instead of walking forever."""
    a = Task("a", cpu_time=1.0)
    b = Task("b", cpu_time=2.0, subprocess=True)
    a.subtasks.append(b)
    b.subtasks.append(a)
    assert a.total_cpu() == 3.0  # b counts once, a's second visit adds nothing
    assert TotalCpu()(b) == 4.0  # b, then b again through a (below which b is open)


def test_a_worker_with_unknown_cpu_counts_for_nothing_with_its_workers() -> None:
    root = Task("root", cpu_time=1.0)
    unmeasured = Task("unmeasured", subprocess=True)
    unmeasured.subtasks.append(Task("below", cpu_time=5.0, subprocess=True))
    root.subtasks.append(unmeasured)
    root.subtasks.append(Task("measured", cpu_time=2.0, subprocess=True))
    assert root.total_cpu() == 3.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5123, " 512ms"),
        (0.0, " 0ms"),
        (1.0, "1.00s"),
        (59.999, "60.00s"),
        (63.25, "1m3.25s"),
        (3600.0, "60m0.00s"),
        (3723.5, "1h2m3.50s"),
    ],
)
def test_friendly_duration_is_lenskit_format(seconds: float, text: str) -> None:
    assert Task("x", duration=seconds).friendly_duration == text
    assert Task("x").friendly_duration is None


def test_pickle_keeps_fields_and_does_not_reparent() -> None:
    with Task("root") as root:
        with Task("child", note="user data") as child:
            with Task("grandchild"):
                pass
            data = pickle.dumps(child)
        with Task("elsewhere"):  # the active task must not become the parent
            restored = pickle.loads(data)
    assert restored.task_id == child.task_id
    assert restored.parent_id == root.task_id
    assert restored.label == "child"
    assert restored.model_extra == {"note": "user data"}
    assert [t.label for t in restored.subtasks] == ["grandchild"]
    assert restored.status is TaskStatus.RUNNING  # pickled while running


def test_unpickled_and_copied_tasks_are_usable() -> None:
    task = Task("x")
    for clone in (pickle.loads(pickle.dumps(task)), copy.copy(task), copy.deepcopy(task)):
        clone.add_subtask(Task("sub"))
        with clone:
            pass
        assert clone.status is TaskStatus.FINISHED


def test_extra_fields_are_kept() -> None:
    task = Task("x", dataset="ml-25m", seed=3)
    assert task.model_extra == {"dataset": "ml-25m", "seed": 3}
    assert Task.model_validate_json(task.model_dump_json()).model_extra == {
        "dataset": "ml-25m",
        "seed": 3,
    }


def test_fast_construction_matches_validation() -> None:
    """The validation-free path of Task() builds what validation would."""
    with Task("parent") as parent:
        fast = Task("child")
    # The validation that Task(...) runs when given fields (a new task is this process's).
    slow = Task.model_validate(
        {"label": "child", "parent_id": parent.task_id}, context=task_module._CONSTRUCTING
    )
    exclude = {"task_id"}
    assert fast.model_dump(exclude=exclude) == slow.model_dump(exclude=exclude)
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_extra == slow.model_extra == {}
    assert fast.task_id.version == 4
    assert str(Task("root").model_dump(exclude_unset=True)["label"]) == "root"


def test_pid_is_this_process_for_a_new_task_and_none_for_a_record_without_one() -> None:
    """Task(...) belongs to this process; a record read without a pid (LensKit's) names none."""
    import os

    assert Task("new").pid == Task("new", cpu_time=1.0).pid == os.getpid()
    assert Task("new", subtasks=[{"label": "given"}]).subtasks[0].pid == os.getpid()
    loaded = Task.model_validate_json('{"label": "lk", "subtasks": [{"label": "sub"}]}')
    assert loaded.pid is None and loaded.subtasks[0].pid is None
    assert Task.model_validate({"label": "mine", "pid": 42}).pid == 42
    again = pickle.loads(pickle.dumps(loaded))
    assert again.pid is None


def test_task_ids_are_unique_and_differ_after_fork() -> None:
    import os

    ids = {Task("x").task_id for _ in range(10_000)}
    assert len(ids) == 10_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write, Task("child").task_id.bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = uuid.UUID(bytes=os.read(read, 16))
    assert child_id != Task("parent").task_id
    assert child_id not in ids


def test_a_task_made_before_a_fork_and_started_in_the_child_has_the_childs_pid() -> None:
    import os

    from taskmeter.testing import capture_spans

    task = Task("made in the parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = False
        try:
            with capture_spans() as spans, task:
                pass
            span = spans.one("made in the parent")
            ok = task.pid == os.getpid() == (span.attributes or {})["process.pid"]
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert task.pid == os.getpid()  # the parent's copy is untouched


def test_str_and_repr_are_short() -> None:
    task = Task("label")
    for _ in range(1000):
        task.add_subtask(Task("sub"))
    assert str(task) == f"<Task {task.task_id}: label>"
    assert len(repr(task)) < 200


def test_update_resources_after_finish_returns_final_figures() -> None:
    with Task("done") as task:
        sum(range(1000))
    figures = task.update_resources()
    assert figures.duration_s == task.duration
    assert figures.cpu_time_s == pytest.approx(task.cpu_time)
    assert figures.peak_memory_bytes == task.peak_memory
    assert task.update_resources().duration_s == task.duration


def test_active_task_in_executor_to_thread_and_copied_context() -> None:
    """As the README says: ``loop.run_in_executor`` runs with no active task,
    ``asyncio.to_thread`` and ``contextvars.copy_context().run`` see the caller's,
    and a task started in a copied context nests under it without becoming
    active in the caller."""

    def nested() -> tuple[Task | None, Task | None, UUID | None]:
        with Task("in copy") as inner:
            return Task.current(), Task.root(), inner.parent_id

    async def main() -> None:
        with Task("root") as root:
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, Task.current) is None
            assert await loop.run_in_executor(None, Task.root) is None
            assert await asyncio.to_thread(Task.current) is root
            assert contextvars.copy_context().run(Task.root) is root
            current, outermost, parent_id = contextvars.copy_context().run(nested)
            assert current is not None and current.label == "in copy"
            assert outermost is root and parent_id == root.task_id
            assert Task.current() is root and [t.label for t in root.subtasks] == ["in copy"]

    asyncio.run(main())


def _finish_from_two_threads(label: str) -> Task:
    task = Task(label)
    task.start()
    barrier = threading.Barrier(2)

    def finish(status: str) -> None:
        barrier.wait()
        task.finish(status)

    threads = [threading.Thread(target=finish, args=(s,)) for s in ("failed", "cancelled")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return task


def test_two_threads_finishing_a_task_at_once_finish_it_once(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """finish() from two threads at the same moment: one goes through, the other is
    ignored with a warning; the task and its one span agree (both used to go through,
    the second overwriting the first's status and figures after its span had ended)."""
    rounds = 60
    tasks = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns within a finish
    try:
        for round_ in range(rounds):
            # Started in a context of its own: a task finished by other threads
            # stays current where it started (until a task starts there).
            context = contextvars.copy_context()
            tasks.append(context.run(_finish_from_two_threads, f"raced {round_}"))
    finally:
        sys.setswitchinterval(previous)
    ignored = [r for r in caplog.records if "finish() ignored" in r.getMessage()]
    assert len(ignored) == rounds
    exported = {span.name: span for span in spans.spans}
    assert len(spans.spans) == rounds
    for task in tasks:
        span = exported[task.label]
        assert span.attributes["taskmeter.task.status"] == task.status.value
        assert span.attributes["taskmeter.duration"] == task.duration


def test_an_interrupt_while_the_span_attributes_are_set_still_ends_the_span(
    spans: SpanCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C landing as a finishing task builds its span's attributes: the task is
    finished, the interrupt goes on, and the span ends and is exported (it was left open
    for good)."""
    real = task_module._task_span_attributes

    def interrupted_once(task: Task, state: object) -> dict[str, object]:
        monkeypatch.setattr(task_module, "_task_span_attributes", real)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), Task("victim") as task:
        monkeypatch.setattr(task_module, "_task_span_attributes", interrupted_once)
    assert task.status is TaskStatus.FINISHED
    assert Task.current() is None
    assert [span.name for span in spans.spans] == ["victim"]
