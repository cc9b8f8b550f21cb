"""Task trees nested deeper than pydantic writes and reads them, without recursion.

pydantic's serializer stops at about 127 levels of subtasks and its validator at
about 250; a recursive program that opens a task per call goes deeper.  These two
functions are the fallbacks :mod:`taskmeter.taskfile` takes when pydantic stops: each
task's own fields still go through pydantic, one task at a time, and the tree is
assembled with an explicit stack.  Trees pydantic handles never come here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .task import Task

_SUBTASKS: set[str] = {"subtasks"}


class CycleError(ValueError):
    """A task is among its own subtasks."""


def deep_tree_json(root: Task, own_json: Callable[[Task, set[str]], bytes] | None = None) -> str:
    """The JSON of ``root`` and its subtasks for a tree of any depth: the same values as
    :meth:`Task.model_dump_json` writes (equal once parsed), with ``subtasks`` last in
    each task rather than in its field position.

    ``own_json(task, exclude)`` writes a task's JSON without the fields in ``exclude``
    (default: pydantic's serializer, as :meth:`Task.model_dump_json` would).

    Raises :class:`CycleError` if a task is below itself.
    """
    pieces: list[bytes] = []
    on_path: set[int] = set()
    # Items: a task to write, or (text, id of the task it closes) to append.
    pending: list[Task | tuple[bytes, int]] = [root]
    while pending:
        item = pending.pop()
        if isinstance(item, tuple):
            pieces.append(item[0])
            on_path.discard(item[1])
            continue
        if id(item) in on_path:
            raise CycleError(f"task {item.label!r} is among its own subtasks")
        on_path.add(id(item))
        if own_json is None:
            own = item.__pydantic_serializer__.to_json(item, exclude=_SUBTASKS)
        else:
            own = own_json(item, _SUBTASKS)
        pieces.append(own[:-1] + (b',"subtasks":[' if own != b"{}" else b'"subtasks":['))
        pending.append((b"]}", id(item)))
        following: list[Task | tuple[bytes, int]] = []
        for index, subtask in enumerate(item.subtasks):
            if index:
                following.append((b",", -1))
            following.append(subtask)
        pending.extend(reversed(following))
    return b"".join(pieces).decode()


def build_deep_tree(document: dict[str, Any]) -> Task:
    """The task of ``document`` (a parsed task file) with its subtasks, for a tree of any
    depth: each task validated alone, then given its subtasks.

    Raises pydantic's ``ValidationError`` for a task that is not valid (its location
    then starts at that task).
    """
    from .task import Task

    # Each task object with its subtasks (its own list, or LensKit's id -> task mapping).
    order: list[tuple[dict[str, Any], list[Any] | None]] = []
    pending: list[dict[str, Any]] = [document]
    while pending:
        node = pending.pop()
        subtasks = node.get("subtasks")
        if isinstance(subtasks, dict):
            subtasks = list(subtasks.values())
        if not isinstance(subtasks, list) or not all(isinstance(s, dict) for s in subtasks):
            order.append((node, None))  # validated whole: pydantic says what is wrong
            continue
        order.append((node, subtasks))
        pending.extend(subtasks)
    built: dict[int, Task] = {}
    for node, subtasks in reversed(order):  # every subtask before its parent
        if subtasks is None:
            built[id(node)] = Task.model_validate(node)
            continue
        task = Task.model_validate({key: value for key, value in node.items() if key != "subtasks"})
        task.__dict__["subtasks"] = [built.pop(id(sub)) for sub in subtasks]
        built[id(node)] = task
    return built[id(document)]
