"""Task files: JSON that LensKit's ``Task.model_validate_json`` loads, written atomically."""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ._files import (
    link_target,
    names_a_directory,
    read_bytes_bounded,
    write_to_descriptor_link,
)
from ._filetypes import describe, drop_bad_values, in_range

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ._jsonform import ExtrasWriter
    from .task import Task

MAX_TASK_FILE_BYTES = 512 * 1024 * 1024
"""Largest task file :func:`load_task` reads by default (512 MiB: about a million tasks)."""

_CREATED_MODE = 0o600
"""The permission bits of a file :func:`write_atomic` creates (``mkstemp``'s)."""

_STALE_TEMP_S = 60.0
"""A temporary file of a dead writer older than this is removed by the next writer."""
_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


def write_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` so that no reader ever sees part of it.

    The text goes to a temporary file in the same directory (created readable
    by the owner only, named ``.<name>.<pid>.<random>.tmp``, ``<name>`` shortened
    where the file system's limit on a name needs it; a file that
    replaces an existing regular file takes that file's permission bits, so a
    report made readable with ``chmod a+r`` stays readable when written again),
    is flushed and,
    when ``durable``, synced to disk, and then renamed over ``path``.  A crash
    at any moment leaves either the old file or the new one; the temporary
    file a killed writer leaves behind is removed by a later writer of the
    same directory.

    A symbolic link is followed: its target is replaced, the link stays.  A
    path that exists and is not a regular file (a FIFO, a device) is written
    through, not replaced: renaming over it would put a plain file in place of
    the node.  So is a path of a file descriptor (``/dev/stdout``,
    ``/dev/fd/N``, ``/proc/self/fd/N``), whatever it refers to: standard
    output sent to a file is written after what it holds, not replaced (see
    :func:`taskmeter._files.write_to_descriptor_link`).  A FIFO that no
    process reads is an ``OSError`` at once rather than a wait.  A path ending
    with a separator, ``.`` or ``..`` (``runs/``) names a directory:
    ``IsADirectoryError``, whether or not one is there.
    """
    if write_to_descriptor_link(path, text):
        return
    if names_a_directory(path):  # "runs/": Path would drop the separator and write "runs"
        problem = errno.EISDIR
        raise IsADirectoryError(problem, os.strerror(problem), os.fspath(path))
    target = Path(path)
    try:
        existing: os.stat_result | None = os.stat(target)
    except OSError:  # missing (or a dangling link): created below
        existing = None
    if existing is not None and _write_through(target, existing, text):
        return
    if target.is_symlink():
        target = Path(link_target(target))
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file where a directory of the path belongs
        problem = errno.ENOTDIR
        raise NotADirectoryError(problem, os.strerror(problem), exc.filename) from exc
    _remove_dead_temporaries(directory)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        # A name near the file system's limit: its temporary file's name is shortened.
        fd, tmp_name = tempfile.mkstemp(
            prefix=_temporary_prefix(directory, target.name), suffix=".tmp", dir=directory
        )
    try:
        try:
            # The permission bits only: a setuid, setgid or sticky bit is not carried over.
            if existing is not None and existing.st_mode & 0o777 != _CREATED_MODE:
                os.fchmod(fd, existing.st_mode & 0o777)
            handle = os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:  # the descriptor is no file object's to close yet
            os.close(fd)
            raise
        with handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


_TEMP_RANDOM = 8
"""How many random characters ``mkstemp`` puts between a temporary file's prefix and suffix."""


def _temporary_prefix(directory: Path, name: str) -> str:
    """``.<name>.<pid>.``, the prefix of the temporary file for ``name`` in ``directory``,
    with ``name`` shortened (by whole characters) so that the temporary file's name is
    no longer than the file system allows: a name near that length is still written."""
    pid = f".{os.getpid()}."
    pathconf = getattr(os, "pathconf", None)  # not on Windows
    try:
        longest = -1 if pathconf is None else pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = -1
    if longest <= 0:  # not known there, or no limit: Linux's and macOS's
        longest = 255
    room = max(longest - len(f".{pid}") - _TEMP_RANDOM - len(".tmp"), 1)
    name = name[:room]
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}{pid}"


def _write_through(target: Path, existing: os.stat_result, text: str) -> bool:
    """Write ``text`` into ``target`` (whose ``os.stat`` is ``existing``) if it is not a
    regular file; ``False`` (nothing done) for a regular file."""
    mode = existing.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a directory fails in the atomic path
        return False
    # O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of blocking.
    fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        os.set_blocking(fd, True)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
    return True


def _remove_dead_temporaries(directory: Path) -> None:
    """Remove temporary files of writers that died mid-write (once per directory and process)."""
    key = os.fspath(directory)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        parts = name.rsplit(".", 3)  # [".<file name>", pid, random, "tmp"]
        if len(parts) != 4 or not (parts[1].isascii() and parts[1].isdigit()):
            continue  # "²" is a digit to isdigit(), not to int()
        with contextlib.suppress(OSError, ValueError):
            if now - entry.stat(follow_symlinks=False).st_mtime < _STALE_TEMP_S:
                continue
            if _pid_alive(int(parts[1])):
                continue
            os.unlink(entry.path)


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or os.name != "posix":
        return True  # (os.kill ends the process on Windows, whatever the signal)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no process id at all
        return False
    except OSError:
        return True
    return True


def _after_fork_in_child() -> None:
    global _cleaned_lock
    _cleaned_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def dump_task(task: Task, *, snapshot: bool = False) -> str:
    """The JSON of ``task`` with its subtasks.

    With ``snapshot`` (for a task running here), each running task of the tree
    is read as it is written, after its subtasks (see :mod:`taskmeter._snapshot`).
    A tree nested deeper than pydantic serializes (about 127 levels of
    subtasks) is written all the same, by :func:`taskmeter._deeptree.deep_tree_json`
    (its running tasks with the figures of their last refresh).  An extra field
    that JSON cannot hold (a NumPy scalar or array, bytes, any object) is written
    in a JSON form (see :func:`taskmeter._jsonform.json_form`), and named once in
    a warning; the task keeps its value.

    Raises:
        TaskFileError: the tree cannot be serialized (a task is among its own
            subtasks, say).
    """
    from ._jsonform import ExtrasWriter

    writer = ExtrasWriter()
    text = _tree_json(task, snapshot, writer)
    writer.warn(task)
    return text


def _tree_json(task: Task, snapshot: bool, writer: ExtrasWriter) -> str:
    from pydantic_core import PydanticSerializationError

    from ._deeptree import CycleError, deep_tree_json

    try:
        if snapshot:
            from ._snapshot import running_tree_json

            return running_tree_json(task, writer)
        return task.model_dump_json(fallback=writer)
    except (PydanticSerializationError, RecursionError, CycleError) as exc:
        # Nested too deeply, a task below itself, or a value pydantic cannot write:
        # task by task, each task's own fields written with what can be written.
        failure: Exception = exc
    try:
        return deep_tree_json(task, writer.task_json)
    except (CycleError, PydanticSerializationError) as exc:
        raise TaskFileError(f"task {task.label!r} cannot be written: {exc}") from failure


def save_task(task: Task, path: str | os.PathLike[str]) -> None:
    """Write ``task`` (with its subtasks) to ``path`` atomically.

    Raises :class:`TaskFileError` if the task cannot be serialized and
    ``OSError`` if the file cannot be written.
    """
    write_atomic(path, dump_task(task) + "\n")


class TaskFileError(ValueError):
    """A task file could not be read or is not a task."""


def load_task(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_TASK_FILE_BYTES,
    mistyped: Callable[[str], None] | None = None,
) -> Task:
    """Read a task file written by taskmeter or by LensKit.

    Without ``mistyped``, the values are what LensKit's ``Task.model_validate_json``
    reads: ``"peak_memory": true`` is 1 byte, ``"cpu_time": -5`` is -5.0 and
    ``"duration": Infinity`` is infinity.  With ``mistyped`` (what ``taskmeter show``
    and ``report`` do), such a value (of the wrong JSON type, or a figure that is not
    a finite number or is a negative duration, CPU time or memory) is read as absent,
    everything else in the file is kept, and ``mistyped`` is called once for the file
    (see :func:`parse_task`).

    Raises :class:`TaskFileError` naming the file and the problem when it
    cannot be read, is larger than ``max_bytes``, or does not hold a task.
    """
    source = Path(path)
    try:
        data = read_bytes_bounded(source, max_bytes)
    except OSError as exc:
        raise TaskFileError(f"cannot read task file {source}: {exc}") from exc
    if data is None:
        raise TaskFileError(
            f"{source} is larger than {max_bytes} bytes, the most a task file may hold"
        )
    return parse_task(data, str(source), mistyped=mistyped)


def parse_task(
    data: bytes | str,
    source: str = "task file",
    *,
    mistyped: Callable[[str], None] | None = None,
) -> Task:
    """The task in the JSON ``data`` (the content of a task file).

    Values are read as :meth:`Task.model_validate_json` reads them (as LensKit
    does: ``"peak_memory": true`` is 1 byte, ``"cpu_time": -5`` is -5.0), unless
    ``mistyped`` is given: then a value a viewer must not show is read as absent,
    the rest of the file is kept, and ``mistyped`` is called once with a line naming
    ``source``, the first such value's task (label and id) and field, and how many
    more there are.  Such values are those of the wrong JSON type (``true`` or
    ``"12"`` for a number, ``"yes"`` for ``subprocess``, a number for ``hostname``)
    and the figures out of range: not a finite number (``NaN``, ``Infinity``,
    ``1e400``, a whole number beyond a float), or a negative duration, CPU time or
    memory (a negative energy or time stamp is kept: LensKit's energy comes from a
    query its users write).

    Raises :class:`TaskFileError` naming ``source`` and the problem.
    """
    from pydantic import ValidationError

    from .task import Task

    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TaskFileError(
                f"{source} is not a valid task file: not UTF-8 text ({exc})"
            ) from exc
    # Strict: a file whose every value has its JSON type and every figure in range
    # (any file taskmeter or LensKit writes) is read in one pass; another is checked
    # value by value.
    strict = mistyped is not None
    fast = _parse_fast(data, source, strict)
    if isinstance(fast, Task):
        return fast
    if fast is _CHECK_VALUES and mistyped is not None:
        # What Task's own strict validation would refuse, or a figure out of range.
        return _parse_deep(data, source, mistyped)
    try:
        task = Task.model_validate_json(data, strict=strict)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid" and "recursion limit" in str(first.get("msg")):
            # pydantic's JSON parser stops at about 100 levels of subtasks,
            # fewer than it writes (about 127): take the standard parser's.
            task = _parse_deep(data, source, mistyped)
        elif mistyped is not None and first.get("type") != "json_invalid":
            task = _parse_deep(data, source, mistyped)
        else:
            raise _invalid(source, exc) from exc
    except RecursionError as exc:
        raise _too_deep(source) from exc
    else:
        # Read in one pass (the value-by-value readings above drop what is out of
        # range themselves): a figure out of range is read value by value.
        if mistyped is not None and not _figures_in_range(task):
            task = _parse_deep(data, source, mistyped)
    return task


_CHECK_VALUES = object()
"""What :func:`_parse_fast` returns, in strict mode, for a file refused for the type of
its values only (not its JSON, nor a mapping of subtasks), or holding a figure out of
range: read value by value."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The garbage collector paused while a task file's tree is built.

    Its collections would walk the objects made so far again and again (doubling
    the time of a large file), and none could free anything the read makes: the
    tree is reachable until it is returned, and reference counting still frees
    every other object at once.  The pause is the whole process's, so other
    threads' reference cycles wait to be collected until the read ends (as long
    as one file's read: about a second for 100,000 tasks).  The collector's
    state is restored whatever happens: enabled again only if it was enabled
    (a caller that disabled it finds it disabled).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _parse_fast(data: bytes | str, source: str, strict: bool) -> Task | object | None:
    """The task of ``data`` read by :func:`taskmeter._fastload.file_validator`, checked.

    Else ``None`` where that validator refuses ``data`` (LensKit's mapping of
    subtasks, an invalid file) or, not ``strict``, where a figure is out of range:
    :meth:`Task.model_validate_json` then reads it, with its errors; or
    :data:`_CHECK_VALUES` where, ``strict``, only values of the wrong JSON type are
    refused (as Task's own strict validation refuses them), or a figure is out of range.
    """
    from pydantic import ValidationError

    from ._fastload import file_validator

    validator = file_validator()
    if validator is None:
        return None
    with _collector_paused():
        try:
            task: Task = validator.validate_json(data, strict=strict)
        except ValidationError as exc:
            return _CHECK_VALUES if strict and _only_types(exc) else None
        except (ValueError, RecursionError):
            return None
        if not _mark_pids_check_figures(task):
            # Read again by Task's own validation (a whole number beyond a float, say,
            # is infinity here and an invalid number there), or value by value.
            return _CHECK_VALUES if strict else None
    return task


def _only_types(exc: ValidationError) -> bool:
    """Whether ``exc`` is about values alone: the JSON parsed, and no subtasks given as a
    mapping (which Task's own validation accepts)."""
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        kind = error["type"]
        if kind == "json_invalid" or kind.startswith("recursion"):
            return False
        location = error["loc"]
        if kind == "list_type" and location and location[-1] == "subtasks":
            return False
    return True


def _validate_document(document: object) -> Task:
    """``Task.model_validate(document)``, in one pass of pydantic-core where it can."""
    from pydantic import ValidationError

    from ._fastload import file_validator
    from .task import Task

    validator = file_validator()
    if validator is not None:
        with _collector_paused():
            try:
                task: Task = validator.validate_python(document)
            except (ValidationError, RecursionError):
                pass
            else:
                if _mark_pids_check_figures(task):
                    return task
    return Task.model_validate(document)


def _mark_pids_check_figures(root: Task) -> bool:
    """Mark ``pid`` as set in each task of ``root`` read without one (as Task's own
    validation does, whose ``None`` for a record without ``pid`` is a value it sets);
    ``False`` if a figure of the tree is out of range (see
    :func:`taskmeter._filetypes.in_range`), for the file to be read another way.

    One loop for both (a tree of 100,000 tasks is walked in about 0.1 s).
    """
    figures_in_range = in_range
    pending = [root]
    pop = pending.pop
    extend = pending.extend
    while pending:
        task = pop()
        fields_set = task.__pydantic_fields_set__
        if "pid" not in fields_set:
            fields_set.add("pid")
        values = task.__dict__
        if not figures_in_range(values):
            return False
        subtasks = values["subtasks"]
        if subtasks:
            extend(subtasks)
    return True


def _figures_in_range(root: Task) -> bool:
    """Whether every figure of ``root``'s tree is in range (see
    :func:`taskmeter._filetypes.in_range`)."""
    return all(in_range(task.__dict__) for _, task in root.walk())


def _parse_deep(
    data: bytes | str, source: str, mistyped: Callable[[str], None] | None = None
) -> Task:
    """The task of ``data`` through the standard JSON parser (see :func:`_load_json` for a
    tree deeper than it reads), with the values of the wrong JSON type and the figures out
    of range dropped first where ``mistyped`` is given (and reported once it is a task)."""
    from pydantic import ValidationError

    try:
        with _collector_paused():
            try:
                document = _load_json(data)
            except json.JSONDecodeError:
                raise
            except ValueError as exc:  # a whole number of more digits than Python converts
                problem = str(exc)
                if "integer string conversion" in problem:
                    limit = sys.get_int_max_str_digits()
                    problem = f"a number out of range (a whole number of more than {limit} digits)"
                raise TaskFileError(f"{source} is not a valid task file: {problem}") from exc
            found = drop_bad_values(document) if mistyped is not None else []
        try:
            task = _validate_document(document)
        except ValidationError as exc:
            if not (isinstance(document, dict) and _is_too_deep(exc)):
                raise
            # pydantic validates about 250 levels of subtasks: a deeper tree task by task.
            from ._deeptree import build_deep_tree

            task = build_deep_tree(document)
        if found and mistyped is not None:
            mistyped(describe(source, found))
        return task
    except RecursionError as exc:
        raise _too_deep(source) from exc
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{source} is not a valid task file: {exc}") from exc
    except ValidationError as exc:
        raise _invalid(source, exc) from exc


def _load_json(data: bytes | str) -> object:
    """``json.loads(data)``, for a tree of any depth: the standard parser stops at about
    490 levels of subtasks, and a deeper text is read by
    :func:`taskmeter._deepjson.loads_deep` (the same values, and the same errors)."""
    try:
        return json.loads(data)
    except RecursionError:
        from ._deepjson import loads_deep

        return loads_deep(data)


def _too_deep(source: str) -> TaskFileError:
    return TaskFileError(f"{source} is not a valid task file: its subtasks are nested too deeply")


def _is_too_deep(exc: ValidationError) -> bool:
    """Whether ``exc`` says the input is nested too deeply."""
    errors = exc.errors()
    return bool(errors) and errors[0].get("type") in ("recursion_loop", "recursion_depth_exceeded")


def _invalid(source: str, exc: object) -> TaskFileError:
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    first = exc.errors()[0]
    if _is_too_deep(exc):
        return _too_deep(source)
    from .render import terminal_text

    # The location holds the file's own keys (of energy_sources, say): escaped like
    # labels, so that an escape sequence in a key does not reach the terminal.
    where = terminal_text(".".join(str(part) for part in first.get("loc", ()))) or "(top level)"
    message = terminal_text(str(first.get("msg")))
    if len(message) > 300:
        message = message[:297] + "..."
    if len(where) > 200:
        where = "..." + where[-197:]
    return TaskFileError(
        f"{source} is not a valid task file: {where}: {message} ({exc.error_count()} problem(s))"
    )
