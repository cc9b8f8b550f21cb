"""Task files: JSON that LensKit's ``Task.model_validate_json`` loads, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .task import Task


def write_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` so that no reader ever sees part of it.

    The text goes to a temporary file in the same directory (created readable
    by the owner only), is flushed and, when ``durable``, synced to disk, and
    then renamed over ``path``.  A crash at any moment leaves either the old
    file or the new one.
    """
    target = Path(path)
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def save_task(task: Task, path: str | os.PathLike[str]) -> None:
    """Write ``task`` (with its subtasks) to ``path`` atomically."""
    write_atomic(path, task.model_dump_json() + "\n")


class TaskFileError(ValueError):
    """A task file could not be read or is not a task."""


def load_task(path: str | os.PathLike[str]) -> Task:
    """Read a task file written by taskmeter or by LensKit.

    Raises :class:`TaskFileError` naming the file and the problem when it
    cannot be read or does not hold a task.
    """
    from pydantic import ValidationError

    from .task import Task

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"cannot read task file {source}: {exc}") from exc
    try:
        return Task.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "(top level)"
        raise TaskFileError(
            f"{source} is not a valid task file: {where}: {first.get('msg')}"
            f" ({exc.error_count()} problem(s))"
        ) from exc
