"""``Task(file=...)`` and ``save_to_file``: a path a task file cannot be atomically replaced
at is a ``ValueError`` naming the path, at once, not a save failure logged later."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter import Task


def test_an_empty_path_is_refused() -> None:
    """``file=""`` would be the current directory."""
    with pytest.raises(ValueError, match="file is an empty path"):
        Task("empty", file="")


def test_an_existing_directory_is_refused(tmp_path: Path) -> None:
    """A directory (given as str or Path) cannot be replaced by a file."""
    for given in (tmp_path, str(tmp_path), "."):
        with pytest.raises(ValueError, match="is a directory") as raised:
            Task("dir", file=given)
        assert repr(str(given)) in str(raised.value)


def test_a_link_to_a_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path)
    with pytest.raises(ValueError, match=r"link\.json' is a directory"):
        Task("dir", file=link)


@pytest.mark.parametrize("ending", ["/", "/.", "/.."])
@pytest.mark.parametrize("there", ["nothing", "a file"])
def test_a_path_written_as_a_directory_is_refused(tmp_path: Path, ending: str, there: str) -> None:
    """``runs/`` names a directory: refused whatever is there, rather than a file named
    ``runs`` written (or one there replaced), for ``file=`` and ``save_to_file``."""
    runs = tmp_path / "runs"
    if there == "a file":
        runs.write_text("kept")
    given = f"{runs}{ending}"
    with pytest.raises(ValueError, match="names a directory") as raised:
        Task("dir", file=given)
    assert repr(given) in str(raised.value)
    with Task("late") as task, pytest.raises(ValueError, match=r"^path "):
        task.save_to_file(given)
    if there == "a file":
        assert runs.read_text() == "kept"
    else:
        assert not runs.exists()


def test_a_fifo_is_refused_and_left_in_place(tmp_path: Path) -> None:
    """A FIFO would be written through, not replaced: refused, the node untouched."""
    fifo = tmp_path / "task.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"task\.json' exists and is a FIFO, not a regular file"):
        Task("to a pipe", file=fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_device_and_a_socket_are_refused(tmp_path: Path) -> None:
    refused = "'/dev/null' exists and is a character device, not a regular file"
    with pytest.raises(ValueError, match=refused):
        Task("to null", file="/dev/null")
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ValueError, match="is a socket, not a regular file"):
            Task("to a socket", file=path)


def test_a_path_that_is_not_a_path_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="file must be a path"):
        Task("number", file=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"file must be a path \(str or os.PathLike\), not bytes"):
        Task("bytes", file=b"x.json")  # type: ignore[arg-type]


def test_a_refused_file_leaves_no_task_behind(tmp_path: Path) -> None:
    """The check comes before the task exists: no task is left current or running."""
    with pytest.raises(ValueError):
        Task("dir", file=tmp_path)
    assert Task.current() is None


def test_new_files_regular_files_and_links_to_them_are_accepted(tmp_path: Path) -> None:
    """A path not there yet (its directory too), an existing file, a link to a file and a
    dangling link are saved to as before."""
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(existing)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "target.json")
    paths = [tmp_path / "new" / "task.json", existing, link, dangling]
    for path in paths:
        with Task("saved", file=path):
            pass
    assert all('"saved"' in path.read_text() for path in paths)
    assert link.is_symlink() and (tmp_path / "target.json").exists()


@pytest.mark.parametrize("given", ["", "dir", "fifo"])
def test_save_to_file_refuses_the_same_paths(tmp_path: Path, given: str) -> None:
    """``save_to_file`` raises before anything is set: the task keeps saving nowhere."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = {"": "", "dir": str(tmp_path), "fifo": str(fifo)}[given]
    with Task("late") as task, pytest.raises(ValueError, match=r"^path "):
        task.save_to_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


DESCRIPTOR_PATHS = ["/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/1", "link"]

_REDIRECTED = """
import os, sys
from taskmeter import Task
path = sys.argv[1]
if path == "link":
    os.symlink("/dev/stdout", "link")
print("before", flush=True)
for attempt in ("file", "save_to_file"):
    try:
        if attempt == "file":
            Task("to stdout", file=path)
        else:
            Task("to stdout").save_to_file(path)
    except ValueError as exc:
        print(f"{attempt} refused:", exc, flush=True)
print("after", flush=True)
"""


@pytest.mark.parametrize("path", DESCRIPTOR_PATHS)
@pytest.mark.parametrize("mode", ["w", "a"])
def test_a_descriptor_path_is_refused_and_redirected_output_kept(
    tmp_path: Path, path: str, mode: str
) -> None:
    """``/dev/stdout`` (and its kin) with standard output sent to a file (``>`` or
    ``>>``): ``os.stat`` sees a regular file, but replacing "it" would replace the log."""
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    with open(log, mode) as out:
        subprocess.run(
            [sys.executable, "-c", _REDIRECTED, path], stdout=out, cwd=tmp_path, check=True
        )
    lines = log.read_text().splitlines()
    assert lines[0] == ("earlier" if mode == "a" else "before")
    assert lines[-1] == "after"
    refusals = [line for line in lines if "refused" in line]
    assert len(refusals) == 2
    assert all("names a file descriptor" in line and repr(path) in line for line in refusals)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["log.txt"] + (["link"] if path == "link" else [])
    )


def test_a_relative_path_is_kept_when_the_directory_changes(tmp_path: Path) -> None:
    """The file is the one named when the task was given it: a ``chdir`` while the
    task runs does not split its record over two files."""
    first, second = tmp_path / "d1", tmp_path / "d2"
    first.mkdir()
    second.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(first)
        with Task("moves", file="out.json") as task:
            late = Task("late")
            late.save_to_file("late.json")
            os.chdir(second)
            task.update()  # a refresh, as the monitor makes
            with late:
                pass
    finally:
        os.chdir(cwd)
    assert list(second.iterdir()) == []
    assert json.loads((first / "out.json").read_text())["status"] == "finished"
    assert json.loads((first / "late.json").read_text())["status"] == "finished"


def test_a_relative_path_in_a_removed_directory_is_a_value_error(tmp_path: Path) -> None:
    """With no current directory to take it from, a relative path is refused, clearly."""
    gone = tmp_path / "gone"
    gone.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(gone)
        gone.rmdir()
        with pytest.raises(ValueError, match=r"'out\.json' is relative to a current directory"):
            Task("nowhere", file="out.json")
    finally:
        os.chdir(cwd)
