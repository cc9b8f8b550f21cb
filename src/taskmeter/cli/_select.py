"""Loading a task file for a verb, and choosing tasks of a tree by depth, label and status."""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeAlias

from ._common import error, is_empty, say

if TYPE_CHECKING:
    from ..liveness import Liveness
    from ..task import Task

STALE_AFTER_HELP = (
    "a running task of another host whose file is older than this is shown as "
    "interrupted (default: 3 x TASKMETER_MONITOR_INTERVAL, at least 30)"
)


def add_stale_after(parser: argparse.ArgumentParser) -> None:
    """Add ``--stale-after SECONDS`` (how :func:`liveness_of` judges other hosts' tasks)."""
    parser.add_argument("--stale-after", type=float, metavar="SECONDS", help=STALE_AFTER_HELP)


def stale_after_problem(stale_after_s: float | None) -> str | None:
    """Why ``--stale-after`` is wrong, or ``None``."""
    if stale_after_s is not None and not stale_after_s > 0:
        return f"--stale-after must be a positive number of seconds, not {stale_after_s:g}"
    return None


def liveness_of(path: str, stale_after_s: float | None) -> Liveness:
    """How the running tasks of the file ``path`` (``-``: standard input) are judged."""
    from ..liveness import Liveness

    mtime: float | None = None
    if path != "-":
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            mtime = None
    return Liveness.here(file_mtime=mtime, stale_after_s=stale_after_s)


class Interruptions:
    """Why each task recorded as running is not running any more (judged once each)."""

    def __init__(self, liveness: Liveness) -> None:
        self.liveness = liveness
        self._reasons: dict[int, str | None] = {}
        self._stopped: dict[int, str | None] = {}

    def __call__(self, task: Task) -> str | None:
        """Why ``task`` was interrupted, or ``None`` when it was not (or may still run)."""
        key = id(task)
        if key not in self._reasons:
            self._reasons[key] = self.liveness.interruption(task)
        return self._reasons[key]

    def stopped(self, task: Task) -> str | None:
        """Why ``task``, recorded as running, is not running now (its process is stopped),
        or ``None``."""
        key = id(task)
        if key not in self._stopped:
            self._stopped[key] = None if self(task) else self.liveness.stoppage(task)
        return self._stopped[key]

    def status_of(self, task: Task) -> str:
        """The status to show: ``interrupted``, ``stopped``, or the recorded one."""
        if self(task):
            return "interrupted"
        return "stopped" if self.stopped(task) else task.status.value

    def report(self, tasks: Iterable[Task]) -> None:
        """Say on standard error how many of ``tasks`` were interrupted or are stopped, and why."""
        tasks = list(tasks)
        reasons = [reason for task in tasks if (reason := self(task))]
        if reasons:
            from ..render import terminal_text

            text = terminal_text("; ".join(sorted(set(reasons))))
            count = len(reasons)
            say(f"taskmeter: {count} task{'s' if count != 1 else ''} interrupted: {text}")
        stopped = [reason for task in tasks if (reason := self.stopped(task))]
        if stopped:
            from ..render import terminal_text

            text = terminal_text("; ".join(sorted(set(stopped))))
            count = len(stopped)
            say(f"taskmeter: {count} task{'s' if count != 1 else ''} stopped: {text}")


def load_or_explain(path: str) -> Task | None:
    """The task in ``path`` (``-`` for standard input), or ``None`` after printing why not.

    A value of the wrong JSON type (``"peak_memory": true``) is read as absent, with
    one warning for the file (see :func:`~taskmeter.taskfile.parse_task`).
    """
    from ..taskfile import MAX_TASK_FILE_BYTES, TaskFileError, load_task, parse_task

    if path == "-":
        if sys.stdin is None:  # closed when Python started (``<&-``)
            error("cannot read standard input: it is closed")
            return None
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
            return parse_task(data, "standard input", mistyped=_warn)
        except TaskFileError as exc:
            error("standard input is empty: no task file" if not data.strip() else str(exc))
            return None
    try:
        return load_task(path, mistyped=_warn)
    except TaskFileError as exc:
        message = str(exc)
        cause = exc.__cause__
        if isinstance(cause, FileNotFoundError):
            message = f"no such task file: {path}"
        elif isinstance(cause, OSError) and cause.strerror:  # not "[Errno 21] ...: 'path'"
            message = f"cannot read task file {path}: {cause.strerror}"
        elif not isinstance(cause, OSError) and is_empty(path):
            message = f"the task file {path} is empty"
        error(message)
        return None


def _warn(message: str) -> None:
    say(f"taskmeter: warning: {message}")


def label_matcher(pattern: str | None) -> LabelMatcher | None:
    """A matcher for ``pattern`` (see :class:`LabelMatcher`), or ``None`` for no pattern."""
    return None if pattern is None else LabelMatcher(pattern)


class LabelMatcher:
    """Matches task labels that contain the pattern as written, or, when it has any of
    ``*?[``, match it as a glob; case-insensitive.

    The literal test comes first so that a label holding glob characters of its own
    (``[gpu] train``) is found by its own text, which as a glob would mean something else
    (``[gpu]`` is one letter of ``g``, ``p``, ``u``).
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._folded = pattern.casefold()
        self._glob = any(ch in pattern for ch in "*?[")

    def __call__(self, label: str) -> bool:
        folded = label.casefold()
        if self._folded in folded:
            return True
        return self._glob and fnmatch.fnmatchcase(folded, self._folded)


class Selected:
    """A task chosen for display, with its depth, path of labels and whether it matched."""

    __slots__ = ("_labels", "depth", "matched", "task")

    def __init__(self, task: Task, depth: int, labels: LabelChain, matched: bool) -> None:
        self.task = task
        self.depth = depth
        self._labels = labels
        self.matched = matched

    @property
    def path(self) -> tuple[str, ...]:
        """The labels from the root to this task (built when asked: a row keeps only a
        link to its parent's, so a tree thousands of levels deep is walked in linear time)."""
        labels: list[str] = []
        link: LabelChain | None = self._labels
        while link is not None:
            labels.append(link[0])
            link = link[1]
        return tuple(reversed(labels))


LabelChain: TypeAlias = "tuple[str, LabelChain | None]"
"""A task's label and its parent's chain (``None`` for the root's parent)."""


def select(
    root: Task,
    *,
    max_depth: int | None = None,
    label: LabelMatcher | None = None,
    status: str | None = None,
    status_of: Callable[[Task], str] | None = None,
    by_start: bool = False,
) -> list[Selected]:
    """The tasks to show, depth first: siblings in the file's order, or with ``by_start``
    by start time (:func:`taskmeter.render.display_order`).

    With a label or status filter, the matching tasks are kept together with
    their ancestors (``matched=False``), so the tree stays readable.
    ``status_of`` gives the status a task is shown with (default: its own).
    """
    rows: list[Selected] = []
    filtering = label is not None or status is not None
    ancestors: list[Selected] = []  # the path from the root to the current task
    shown: set[int] = set()  # ids of the ancestor rows already emitted
    for task, depth, labels in _walk(root, max_depth, by_start):
        del ancestors[depth:]
        shown_status = task.status.value if status_of is None else status_of(task)
        matched = (label is None or label(task.label)) and (
            status is None or shown_status == status
        )
        row = Selected(task, depth, labels, matched)
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


def _walk(
    root: Task, max_depth: int | None, ordered: bool
) -> Iterator[tuple[Task, int, LabelChain]]:
    from ..render import display_order

    stack: list[tuple[Task, int, LabelChain]] = [(root, 0, (root.label, None))]
    while stack:
        task, depth, labels = stack.pop()
        yield task, depth, labels
        if max_depth is None or depth < max_depth:
            subtasks = display_order(task.subtasks) if ordered else task.subtasks
            stack.extend((sub, depth + 1, (sub.label, labels)) for sub in reversed(subtasks))
