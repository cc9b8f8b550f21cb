"""Reading the files users hand taskmeter (task files, metadata, metric specs).

Bounded in size, with clear errors.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any


def read_bytes_bounded(path: Path, max_bytes: int) -> bytes | None:
    """The content of ``path``, or ``None`` if it holds more than ``max_bytes``.

    Reads at most one byte more than ``max_bytes``, whatever the file's size.
    Raises ``OSError`` if the file cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def read_text_bounded(path: Path, max_bytes: int, error: type[ValueError]) -> str:
    """The UTF-8 text of ``path``.

    Raises ``error`` naming the file if it is unreadable, larger than
    ``max_bytes`` or not text.
    """
    try:
        data = read_bytes_bounded(path, max_bytes)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc}") from exc
    if data is None:
        raise error(f"{path}: larger than {max_bytes} bytes, more than such a file may hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read: not UTF-8 text ({exc})") from exc


def parse_yaml(text: str, path: str | os.PathLike[str], error: type[ValueError]) -> Any:
    """The YAML document ``text`` (read from ``path``, or a source so named), with the
    safe loader.

    Raises ``error`` naming the file when PyYAML is missing or the text is not YAML.
    """
    try:
        import yaml
    except ImportError as exc:  # the yaml extra is not installed
        raise error(f"{path}: reading YAML needs PyYAML (pip install 'taskmeter[yaml]')") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc


def task_file_path(file: str | os.PathLike[str], argument: str = "file") -> Path:
    """``file`` as the path of a task file, checked where the caller hands it over.

    A task file is replaced atomically (a new file renamed over it), which an empty
    path (the current directory), a directory, or a node that is not a regular file
    (a FIFO, a device) cannot be.  A path that does not exist yet, or a symbolic link
    to a regular file, is fine.

    Raises:
        TypeError: ``file`` is not a string or path.
        ValueError: ``file`` is empty, names an existing directory, FIFO, socket or
            device, or names a directory as written (``runs/``, see
            :func:`names_a_directory`); the message names the path (as given,
            argument ``argument``).
    """
    if not isinstance(file, str | os.PathLike):
        kind = type(file).__name__
        raise TypeError(f"{argument} must be a path (str or os.PathLike), not {kind}")
    name = os.fspath(file)
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a text path, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{argument} is an empty path: name the task file to write")
    if descriptor_link(name) is not None:
        raise ValueError(
            f"{argument} {name!r} names a file descriptor (as /dev/stdout does), not a regular "
            "file: a task file is replaced by a new file, which would put it in place of "
            "whatever the descriptor writes to"
        )
    kind = not_a_regular_file(name)
    if kind == "a directory":
        raise ValueError(
            f"{argument} {name!r} is a directory: name a file in it (a task file is "
            "replaced by a new file, which a directory cannot be)"
        )
    if kind is not None:
        raise ValueError(
            f"{argument} {name!r} exists and is {kind}, not a regular file: a task file "
            "is replaced by a new file, which it cannot be"
        )
    if names_a_directory(name):  # not there yet (or not a directory): "runs/"
        raise ValueError(
            f"{argument} {name!r} names a directory (it ends with {directory_ending(name)!r}): "
            "name a file in it (a task file is replaced by a new file, which a directory "
            "cannot be)"
        )
    return _absolute(name, argument)


def names_a_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` as written names a directory whatever is there: it ends with a
    separator (``runs/``), ``.`` or ``..``.  ``Path`` drops a final separator and ``.``
    (``Path("runs/")`` is ``runs``), which would write a file named ``runs``."""
    return directory_ending(path) != ""


def directory_ending(path: str | os.PathLike[str]) -> str:
    """How ``path`` ends where, as written, it names a directory (``/``, ``/.``, ``/..``,
    or ``.`` and ``..`` alone, for a message); ``""`` where it does not."""
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    last = os.path.basename(name)
    if not name or last not in ("", ".", ".."):
        return ""
    return name[-(len(last) + 1) :]


def link_target(link: str | os.PathLike[str]) -> str:
    """The file a write through the symbolic link ``link`` replaces.  A loop of links
    is an ``OSError`` (``ELOOP``) naming ``link``, as ``open()`` gives, rather than the
    link itself replaced by a file; a link to a file not made yet leads to where it
    will be."""
    try:
        return os.path.realpath(link, strict=True)
    except FileNotFoundError:
        return os.path.realpath(link)
    except OSError as exc:
        if exc.filename is None:  # realpath names no file: the link given is the one
            raise OSError(exc.errno, exc.strerror, os.fspath(link)) from exc
        raise


def absolute(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute against the current directory, links and ``..`` kept as
    they are (``os.path.abspath`` would drop ``link/..`` by its text, which names
    another directory than the kernel finds); as it is when the current directory
    was removed."""
    name = os.fspath(path)
    if os.path.isabs(name):
        return name
    try:
        return os.path.join(os.getcwd(), name)
    except OSError:
        return name


def _absolute(name: str, argument: str) -> Path:
    """``name`` made absolute against the current directory, now: a task saves to the
    same file however the directory changes while it runs.  Links and ``..`` are kept
    as they are (the kernel resolves them at each save, as it would have)."""
    path = Path(name)
    if path.is_absolute():
        return path
    try:
        return Path(os.getcwd()) / path
    except OSError as exc:  # the current directory was removed
        raise ValueError(
            f"{argument} {name!r} is relative to a current directory that cannot be "
            f"found ({exc.strerror or exc}): give an absolute path"
        ) from exc


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_a_regular_file(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is (``"a FIFO"``) when it exists and is not a regular file (a
    link is followed); ``None`` for a regular file, or nothing there (missing, a
    dangling link: a save creates it; unreadable: the save says why)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_KINDS if test(mode)), "an unknown kind of file")


_DESCRIPTOR_PATH = re.compile(r"/(?:proc/(?P<pid>\d+)(?:/task/\d+)?|dev)/fd/(?P<fd>\d+)")
"""A path of a file descriptor (``/proc/12/fd/1``, ``/proc/12/task/13/fd/1``,
``/dev/fd/1`` where ``/dev/fd`` is a directory of its own), its directory resolved."""

_MAX_LINKS = 40
"""Links followed before a path is taken as no descriptor (Linux's own limit, ELOOP)."""


def descriptor_link(path: str | os.PathLike[str]) -> tuple[int | None, int] | None:
    """The file descriptor that ``path`` names, as ``(pid, fd)``, or ``None``.

    ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` (or a link
    to one of them) name a descriptor: opening them opens what the descriptor refers
    to, which ``os.stat`` reports (a regular file, when standard output goes to one),
    and which must never be replaced by a rename.  ``pid`` is the process whose
    descriptor it is (``None`` where the path does not say: ``/dev/fd`` of its own).
    Links are followed one at a time, so that the descriptor's own link (to the file
    it refers to) is not followed.
    """
    try:
        name = os.path.abspath(os.fspath(path))
    except (OSError, ValueError):  # relative to a current directory that was removed
        return None
    for _ in range(_MAX_LINKS):
        parent, base = os.path.split(name)
        try:
            full = os.path.join(os.path.realpath(parent), base)
        except (OSError, ValueError):
            return None
        found = _DESCRIPTOR_PATH.fullmatch(full)
        if found is not None:
            pid = found.group("pid")
            return (None if pid is None else int(pid)), int(found.group("fd"))
        try:
            target = os.readlink(full)
        except (OSError, ValueError):  # not a link, or nothing there
            return None
        name = os.path.join(parent, target)
    return None


def write_to_descriptor_link(path: str | os.PathLike[str], text: str) -> bool:
    """Write ``text`` (as UTF-8) through the file descriptor ``path`` names (see
    :func:`descriptor_link`); ``False`` (nothing done) if it names none.  The text is
    encoded only then: a task file of a large tree is tens of megabytes.

    A descriptor of this process is written to itself, after what Python's
    ``sys.stdout`` and ``sys.stderr`` hold for it: the data goes after whatever it
    wrote before, at its offset (appended, for ``>>``), and what it writes next goes
    after the data.  Another process's descriptor is opened and appended to.  Raises
    ``OSError`` if the descriptor cannot be written (or opened).
    """
    found = descriptor_link(path)
    if found is None:
        return False
    data = text.encode("utf-8")
    pid, fd = found
    if pid is None or pid == os.getpid():
        _flush_streams_of(fd)
        _write_all(fd, data)
        return True
    # O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of blocking.
    opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        os.set_blocking(opened, True)
        _write_all(opened, data)
    finally:
        os.close(opened)
    return True


def _flush_streams_of(fd: int) -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` where they write to ``fd``."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.fileno() == fd:
                stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, replaced, no descriptor
            continue


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
