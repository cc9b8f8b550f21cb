"""Reading the files users hand taskmeter (task files, metadata, metric specs).

Bounded in size, with clear errors.
"""

from __future__ import annotations

import os
import stat
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


def parse_yaml(text: str, path: Path, error: type[ValueError]) -> Any:
    """The YAML document ``text`` (read from ``path``), with the safe loader.

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
        ValueError: ``file`` is empty or names an existing directory, FIFO, socket or
            device; the message names the path (as given, argument ``argument``).
    """
    if not isinstance(file, str | os.PathLike):
        kind = type(file).__name__
        raise TypeError(f"{argument} must be a path (str or os.PathLike), not {kind}")
    name = os.fspath(file)
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a text path, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{argument} is an empty path: name the task file to write")
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
    return Path(name)


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
