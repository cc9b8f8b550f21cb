"""The JSON of a running task for its file: a snapshot whose figures never contradict.

Subtasks start and finish in other threads while a running tree is written.
Were the tasks' figures read first and the tree serialized after, a subtask
finishing in between would be written with figures taken after its running
parent's, and larger.  Here each running task of this process is read after
its subtasks have been serialized (from a copy of its subtask list, so a
subtask added meanwhile is left for the next save rather than written with
its parent's older reading): every figure in the file is then no larger than
the figures of the running tasks above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SerializeAsAny, TypeAdapter
from pydantic_core import PydanticSerializationError

from ._jsonform import ExtrasWriter
from ._log import swallowed
from .task import Task, TaskStatus, _running_task, state_of

if TYPE_CHECKING:
    from collections.abc import Callable

_RUNNING = TaskStatus.RUNNING
_EXCLUDE_SUBTASKS: set[str] = {"subtasks"}
_records: TypeAdapter[list[Any]] = TypeAdapter(list[SerializeAsAny[Task]])
"""Serializes runs of sibling records as the ``subtasks`` field of a task would."""


def running_tree_json(root: Task, writer: ExtrasWriter | None = None) -> str:
    """The JSON of ``root`` (running here) and its subtasks, each running task of this
    process read (:meth:`Task.update_resources`) just after its subtasks were serialized.

    ``writer`` writes the extra fields JSON cannot hold (see :mod:`taskmeter._jsonform`).
    Raises what serializing a task raises (a tree nested too deeply, or with a cycle).
    """
    # Pieces of bytes, joined and decoded once: a tree of 100k tasks is 50 MB of JSON.
    pieces: list[bytes | memoryview] = []
    _dump(root, _holding_running(root), set(), pieces, writer or ExtrasWriter())
    return b"".join(pieces).decode()


def _refreshed(task: Task) -> bool:
    """Whether ``task`` is running in this process (so its figures are read here)."""
    return task.__dict__["status"] is _RUNNING and _running_task(task.task_id) is task


def _holding_running(root: Task) -> set[int]:
    """The ``id`` of every task of ``root``'s tree that is, or has below it, a task
    running in this process (a running task may be below finished ones)."""
    parent_of: dict[int, Task | None] = {id(root): None}
    holding: set[int] = set()
    pending = [root]
    while pending:
        task = pending.pop()
        for subtask in task.subtasks:
            if id(subtask) not in parent_of:  # a task added twice, or a cycle: once
                parent_of[id(subtask)] = task
                pending.append(subtask)
        if _refreshed(task):
            node: Task | None = task
            while node is not None and id(node) not in holding:
                holding.add(id(node))
                node = parent_of[id(node)]
    return holding


def _dump(
    task: Task,
    holding: set[int],
    path: set[int],
    pieces: list[bytes | memoryview],
    writer: ExtrasWriter,
) -> None:
    """Append the JSON of ``task`` to ``pieces``."""
    if id(task) not in holding or id(task) in path:  # on the path: a cycle, which fails
        pieces.append(writer.tree_json(task))
        return
    path.add(id(task))
    own_at = len(pieces)
    pieces.append(b"")  # the task's own fields, read once its subtasks are written
    pieces.append(b',"subtasks":[')
    records: list[Task] = []
    first = True
    for subtask in list(task.subtasks):  # a copy: subtasks are added meanwhile
        if id(subtask) not in holding:
            records.append(subtask)
            continue
        first = _flush(records, pieces, first, writer)
        if not first:
            pieces.append(b",")
        _dump(subtask, holding, path, pieces, writer)
        first = False
    _flush(records, pieces, first, writer)
    pieces.append(b"]}")
    path.discard(id(task))
    if _refreshed(task):
        _read(task.update_resources)
        state = state_of(task)
        with state.lock:  # not halfway through a reading applied or the task finishing
            own = writer.task_json(task, _EXCLUDE_SUBTASKS)
    else:
        own = writer.task_json(task, _EXCLUDE_SUBTASKS)
    pieces[own_at] = memoryview(own)[:-1]  # without its closing brace


def _flush(
    records: list[Task], pieces: list[bytes | memoryview], first: bool, writer: ExtrasWriter
) -> bool:
    """Append ``records`` (siblings) as the next items of a JSON array; whether none has
    been appended yet (``first`` if ``records`` was empty)."""
    if not records:
        return first
    if not first:
        pieces.append(b",")
    try:
        pieces.append(memoryview(_records.dump_json(records, fallback=writer))[1:-1])
    except PydanticSerializationError:  # a value JSON cannot hold, or a tree too deep
        pieces.append(b",".join(writer.tree_json(record) for record in records))
    records.clear()
    return False


def _read(update: Callable[[], object]) -> None:
    try:
        update()
    except Exception as exc:
        swallowed("task.refresh", exc)
