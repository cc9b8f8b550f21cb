"""Which tasks a worker process started and has not delivered: tasks lost with their worker.

A worker keeps one journal in its parent's inbox, ``<pid>.journal`` (mode
0600, opened once, appended to).  A task that adopts the parent adds a line
as it starts; once its record is delivered, a line says so; the journal is
emptied when it has grown past :data:`MAX_BYTES` and no such task of the
worker is open (a worker running a million tasks keeps a few pages).  Each line is written with one
``write`` (atomic with ``O_APPEND``): a worker killed at any moment leaves
whole lines.

The parent (:meth:`taskmeter._workers.Inbox.collect`) reads the journal of a
worker that has ended: a task started there whose record never came was lost
with its worker (killed, ``os._exit``, ``Pool.terminate()``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID

    from .task import Task

SUFFIX = ".journal"

MAX_BYTES = 65536
"""A journal this long is emptied when no task of its worker is open."""


class _Journal:
    __slots__ = ("directory", "fd", "open_tasks", "pid", "size")

    open_tasks: set[UUID]

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.fd = os.open(
            directory / f"{self.pid}{SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self.open_tasks = set()
        self.size = 0
        """Bytes written since the journal was last emptied."""


_journal: _Journal | None = None
_lock = threading.Lock()


def started(directory: Path, task: Task) -> None:
    """Note in the journal kept in ``directory`` that ``task`` started in this worker."""
    global _journal, _lock
    journal = _journal
    if journal is not None and journal.pid != os.getpid():  # a copy left by fork
        _journal = journal = None
        _lock = threading.Lock()
    line = json.dumps(
        {"start": str(task.task_id), "parent": str(task.parent_id), "label": task.label}
    )
    with _lock:
        if journal is None or journal.directory != directory:
            if journal is not None:
                os.close(journal.fd)
            _journal = journal = _Journal(directory)
        journal.size += os.write(journal.fd, (line + "\n").encode())
        journal.open_tasks.add(task.task_id)


def delivered(directory: Path, task: Task) -> None:
    """Note that the record of ``task`` was delivered (or could not be: that was said)."""
    journal = _journal
    if journal is None or journal.pid != os.getpid() or journal.directory != directory:
        return
    with _lock:
        if task.task_id not in journal.open_tasks:
            return  # not noted as started (a parent given explicitly)
        journal.open_tasks.discard(task.task_id)
        if not journal.open_tasks and journal.size >= MAX_BYTES:
            os.ftruncate(journal.fd, 0)
            journal.size = 0
        else:
            end = json.dumps({"end": str(task.task_id)}) + "\n"
            journal.size += os.write(journal.fd, end.encode())


def undelivered(path: Path) -> list[dict[str, str]]:
    """The tasks a journal says started and were not delivered (``start``, ``parent``,
    ``label``); a line cut short is ignored."""
    started: dict[str, dict[str, str]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            if "start" in entry:
                started[str(entry["start"])] = {k: str(v) for k, v in entry.items()}
            elif "end" in entry:
                started.pop(str(entry["end"]), None)
    return list(started.values())
