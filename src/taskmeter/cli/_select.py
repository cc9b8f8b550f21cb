"""Loading a task file for a verb, and choosing tasks of a tree by depth, label and status."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._common import error

if TYPE_CHECKING:
    from ..task import Task


def load_or_explain(path: str) -> Task | None:
    """The task in ``path`` (``-`` for standard input), or ``None`` after printing why not."""
    from ..taskfile import MAX_TASK_FILE_BYTES, TaskFileError, load_task, parse_task

    if path == "-":
        try:
            data = sys.stdin.buffer.read(MAX_TASK_FILE_BYTES + 1)
        except (OSError, ValueError) as exc:
            error(f"cannot read standard input: {exc}")
            return None
        if len(data) > MAX_TASK_FILE_BYTES:
            error(
                f"standard input holds more than {MAX_TASK_FILE_BYTES} bytes, too much for a task"
            )
            return None
        try:
            return parse_task(data, "standard input")
        except TaskFileError as exc:
            error(str(exc))
            return None
    try:
        return load_task(path)
    except TaskFileError as exc:
        message = str(exc)
        if isinstance(exc.__cause__, FileNotFoundError):
            message = f"no such task file: {path}"
        error(message)
        return None


def label_matcher(pattern: str | None) -> LabelMatcher | None:
    """A matcher for ``pattern``: a glob if it has ``*?[``, else a substring; case-insensitive."""
    return None if pattern is None else LabelMatcher(pattern)


class LabelMatcher:
    """Matches task labels against a substring or a glob, ignoring case."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._folded = pattern.casefold()
        self._glob = any(ch in pattern for ch in "*?[")

    def __call__(self, label: str) -> bool:
        folded = label.casefold()
        if self._glob:
            return fnmatch.fnmatchcase(folded, self._folded)
        return self._folded in folded


class Selected:
    """A task chosen for display, with its depth, path of labels and whether it matched."""

    __slots__ = ("depth", "matched", "path", "task")

    def __init__(self, task: Task, depth: int, path: tuple[str, ...], matched: bool) -> None:
        self.task = task
        self.depth = depth
        self.path = path
        self.matched = matched


def select(
    root: Task,
    *,
    max_depth: int | None = None,
    label: LabelMatcher | None = None,
    status: str | None = None,
    status_of: Callable[[Task], str] | None = None,
) -> list[Selected]:
    """The tasks to show, depth first.

    With a label or status filter, the matching tasks are kept together with
    their ancestors (``matched=False``), so the tree stays readable.
    ``status_of`` gives the status a task is shown with (default: its own).
    """
    rows: list[Selected] = []
    filtering = label is not None or status is not None
    ancestors: list[Selected] = []  # the path from the root to the current task
    shown: set[int] = set()  # ids of the ancestor rows already emitted
    for task, depth, path in _walk(root, max_depth):
        del ancestors[depth:]
        shown_status = task.status.value if status_of is None else status_of(task)
        matched = (label is None or label(task.label)) and (
            status is None or shown_status == status
        )
        row = Selected(task, depth, path, matched)
        if not filtering:
            rows.append(row)
            continue
        if matched:
            for ancestor in ancestors:
                if id(ancestor) not in shown:
                    shown.add(id(ancestor))
                    rows.append(ancestor)
            shown.add(id(row))
            rows.append(row)
        ancestors.append(row)
    return rows


def _walk(root: Task, max_depth: int | None) -> Iterator[tuple[Task, int, tuple[str, ...]]]:
    stack: list[tuple[Task, int, tuple[str, ...]]] = [(root, 0, (root.label,))]
    while stack:
        task, depth, path = stack.pop()
        yield task, depth, path
        if max_depth is None or depth < max_depth:
            stack.extend((sub, depth + 1, (*path, sub.label)) for sub in reversed(task.subtasks))
