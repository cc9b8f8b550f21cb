"""Task files: atomic, owner-only, and readable by LensKit in both directions."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest
from pydantic import AliasChoices, BaseModel, Field

from taskmeter import Task, TaskFileError, TaskStatus, load_task, save_task
from taskmeter.taskfile import write_atomic


class LensKitTaskSchema(BaseModel, extra="allow"):
    """LensKit's Task fields and types, as documented (used when LensKit is absent)."""

    task_id: UUID
    parent_id: UUID | None = None
    subprocess: bool = False
    label: str
    hostname: str
    machine: str | None
    status: str
    start_time: float | None = None
    finish_time: float | None = None
    duration: float | None = None
    cpu_time: float | None = None
    peak_memory: int | None = None
    peak_gpu_memory: int | None = None
    system_power: float | None = Field(
        default=None, validation_alias=AliasChoices("system_power", "chassis_power")
    )
    cpu_power: float | None = None
    gpu_power: float | None = None
    subtasks: list[LensKitTaskSchema] = Field(default_factory=list)


def run_tree(path: Path) -> Task:
    with Task("pipeline", file=path) as root:
        with Task("load"):
            sum(range(10_000))
        with Task("train"), Task("epoch 1"):
            pass
    return root


def test_file_is_written_at_start_and_at_finish(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "task.json"
    with Task("job", file=path) as task:
        running = json.loads(path.read_text())
        assert running["status"] == "running"
    finished = json.loads(path.read_text())
    assert finished["status"] == "finished"
    assert finished["duration"] == task.duration


def test_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    run_tree(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_rewriting_a_file_keeps_the_permissions_its_owner_gave_it(tmp_path: Path) -> None:
    """A file made readable to share it (``chmod a+r``) stays so when written again, also
    through a symbolic link; the monitor's refreshes of a running task's file too."""
    path = tmp_path / "task.json"
    run_tree(path)
    path.chmod(0o644)
    run_tree(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    link = tmp_path / "latest.json"
    link.symlink_to(path)
    path.chmod(0o640)
    write_atomic(link, "{}")
    assert link.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == "{}"
    with Task("job", file=path) as task:
        task.update()  # a refresh, as the monitor makes
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "task.json"]


def test_nested_json_matches_lenskit_schema(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    root = run_tree(path)
    loaded = LensKitTaskSchema.model_validate_json(path.read_text())
    assert loaded.task_id == root.task_id
    assert loaded.status == "finished"
    assert [t.label for t in loaded.subtasks] == ["load", "train"]
    assert [t.label for t in loaded.subtasks[1].subtasks] == ["epoch 1"]
    assert loaded.peak_memory == root.peak_memory
    assert loaded.subtasks[0].parent_id == root.task_id


def test_roundtrip_through_load_task(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    root = run_tree(path)
    loaded = load_task(path)
    assert loaded.model_dump() == root.model_dump()
    assert loaded.status is TaskStatus.FINISHED


def test_reads_lenskit_variants_chassis_power_and_subtask_mapping(tmp_path: Path) -> None:
    child = {"task_id": "1d1e3a8a-0d8a-4c0e-9d1a-6a5c1b7b9e01", "label": "child", "hostname": "h"}
    document = {
        "task_id": "1d1e3a8a-0d8a-4c0e-9d1a-6a5c1b7b9e00",
        "label": "root",
        "hostname": "h",
        "machine": None,
        "status": "finished",
        "chassis_power": 1234.5,
        "subtasks": {child["task_id"]: child},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))
    task = load_task(path)
    assert task.system_power == 1234.5
    assert [t.label for t in task.subtasks] == ["child"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a valid task file"),
        ('{"label": "x", "task_id": "not-a-uuid"}', "task_id"),
        ('{"task_id": "1d1e3a8a-0d8a-4c0e-9d1a-6a5c1b7b9e00"}', "label"),
        ('{"label": "x", "status": "exploded"}', "status"),
        ('{"label": "x", "subtasks": [{"label": 5}]}', "subtasks.0.label"),
        ("[1, 2", "not a valid task file"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TaskFileError, match=message) as raised:
        load_task(path)
    assert str(path) in str(raised.value)


def test_negative_energy_and_early_start_times_still_load(tmp_path: Path) -> None:
    """LensKit's energy comes from a user's Prometheus query, which may be negative."""
    path = tmp_path / "odd.json"
    path.write_text('{"label": "x", "cpu_power": -3.5, "start_time": -1.0, "duration": 0.0}')
    task = load_task(path)
    assert task.cpu_power == -3.5
    assert task.start_time == -1.0


def test_missing_file_is_a_task_file_error(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot read task file"):
        load_task(tmp_path / "absent.json")


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    root = Task("big")
    for i in range(3000):
        root.add_subtask(Task(f"subtask {i}", duration=float(i)))
    save_task(root, path)
    stop = threading.Event()
    errors: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                json.loads(path.read_text())
                reads += 1
            except (json.JSONDecodeError, FileNotFoundError) as exc:
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(40):
        root.duration = float(i)
        save_task(root, path)
    stop.set()
    thread.join()
    assert errors == []
    assert reads > 0


def test_failed_write_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "task.json"
    write_atomic(path, "old\n")

    def refuse(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_symlink_keeps_pointing_at_its_target_which_gets_the_text(tmp_path: Path) -> None:
    """A task file or report path that is a symlink writes its target; the link stays."""
    target = tmp_path / "kept" / "task.json"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "task.json"
    link.symlink_to(target)
    write_atomic(link, "new\n")
    assert link.is_symlink()
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["task.json"]


def test_a_link_to_a_file_not_made_yet_leads_to_where_it_is_made(tmp_path: Path) -> None:
    """A dangling link is written through: its target is made, the link stays."""
    target = tmp_path / "later" / "task.json"
    target.parent.mkdir()
    link = tmp_path / "task.json"
    link.symlink_to(target)
    write_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_a_loop_of_links_is_an_error_and_the_links_stay(tmp_path: Path) -> None:
    """``a -> b -> a``: ``ELOOP`` naming the path, as ``open(a, "w")`` raises; the link
    itself was replaced by a regular file."""
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.symlink_to(second)
    second.symlink_to(first)
    with pytest.raises(OSError) as raised:
        write_atomic(first, "{}")
    assert raised.value.errno == errno.ELOOP and raised.value.filename == str(first)
    assert first.is_symlink() and second.is_symlink()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    """A path that is not a regular file (a FIFO, /dev/stdout, a device) is written
    through: renaming a file over it would replace the node (as root, even /dev/null)."""
    fifo = tmp_path / "report.html"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, as `cat` would be
    try:
        write_atomic(fifo, "through the pipe\n")
        received = [os.read(reader, 4096)]
    finally:
        os.close(reader)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_another_processs_descriptor_is_appended_to_not_replaced(tmp_path: Path) -> None:
    """``/proc/PID/fd/1`` of a process whose standard output goes to a file: the file
    gets the text after what it holds, and stays the same file (no rename over it)."""
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    with open(log, "a") as out:
        sleeper = subprocess.Popen(["sleep", "30"], stdout=out)
    try:
        inode = os.stat(log).st_ino
        write_atomic(f"/proc/{sleeper.pid}/fd/1", "through its descriptor\n")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert log.read_text() == "earlier\nthrough its descriptor\n"
    assert os.stat(log).st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]


def test_fifo_without_a_reader_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """Nobody reads the FIFO: the write fails at once (ENXIO) instead of blocking the task."""
    fifo = tmp_path / "task.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        write_atomic(fifo, "nobody listens\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_save_failure_does_not_break_the_task(tmp_path: Path) -> None:
    blocker = tmp_path / "not a directory"
    blocker.write_text("")
    with Task("unsaveable", file=blocker / "task.json") as task:
        pass
    assert task.status is TaskStatus.FINISHED


def test_save_to_file_while_running_and_after(tmp_path: Path) -> None:
    path = tmp_path / "late.json"
    with Task("late") as task:
        task.save_to_file(path)
        assert json.loads(path.read_text())["status"] == "running"
    assert json.loads(path.read_text())["status"] == "finished"
    other = tmp_path / "after.json"
    task.save_to_file(other)
    assert json.loads(other.read_text())["status"] == "finished"


# --------------------------------------------------------------- LensKit itself


def _lenskit_task_class() -> type:
    # The test extra installs LensKit (and its torch) on Python 3.11 only.
    if os.environ.get("CI") and sys.version_info < (3, 12):
        from lenskit.logging.tasks import Task as LensKitTask
    else:
        lenskit = pytest.importorskip("lenskit.logging.tasks")
        LensKitTask = lenskit.Task
    return LensKitTask  # type: ignore[no-any-return]


def test_lenskit_loads_our_file(tmp_path: Path) -> None:
    LensKitTask = _lenskit_task_class()
    path = tmp_path / "ours.json"
    root = run_tree(path)
    theirs = LensKitTask.model_validate_json(path.read_text())
    assert theirs.task_id == root.task_id
    assert theirs.status.value == "finished"
    assert theirs.duration == root.duration
    assert theirs.cpu_time == root.cpu_time
    assert theirs.peak_memory == root.peak_memory
    assert [t.label for t in theirs.subtasks] == ["load", "train"]
    assert [t.label for t in theirs.subtasks[1].subtasks] == ["epoch 1"]
    assert theirs.total_cpu() == pytest.approx(root.total_cpu())


def test_we_load_a_lenskit_file(tmp_path: Path) -> None:
    LensKitTask = _lenskit_task_class()
    path = tmp_path / "lenskit.json"
    with LensKitTask("lenskit root", file=path) as root, LensKitTask("lenskit child"):
        sum(range(10_000))
    task = load_task(path)
    assert task.task_id == root.task_id
    assert task.label == "lenskit root"
    assert task.status is TaskStatus.FINISHED
    assert task.duration == root.duration
    assert [t.label for t in task.subtasks] == ["lenskit child"]
    assert task.subtasks[0].parent_id == root.task_id


def test_we_load_a_lenskit_file_whose_figure_was_not_a_number(tmp_path: Path) -> None:
    """LensKit writes a NaN figure (a Prometheus answer "NaN") as null, which loads."""
    LensKitTask = _lenskit_task_class()
    root = LensKitTask.model_validate({"label": "lenskit root", "status": "finished"})
    root.cpu_power = float("nan")
    root.duration = 1.5
    path = tmp_path / "lenskit.json"
    path.write_text(root.model_dump_json())
    task = load_task(path)
    assert task.cpu_power is None
    assert task.duration == 1.5


def test_friendly_duration_agrees_with_lenskit() -> None:
    _lenskit_task_class()
    from lenskit.logging.formats import friendly_duration as lenskit_friendly

    from taskmeter import friendly_duration

    for seconds in (
        0.0,
        0.0004,
        0.5,
        0.9996,
        1.0,
        59.9,
        60.0,
        61.5,
        3599.99,
        3600.0,
        3601,
        86400.5,
    ):
        assert friendly_duration(seconds) == lenskit_friendly(seconds), seconds


# ---------------------------------------------------------------- trees of any depth


def chain(depth: int) -> Task:
    """A root with ``depth`` levels of subtasks below it, one a level, each with its figures."""
    root = Task("root", duration=0.25)
    current = root
    for level in range(depth):
        child = Task(
            f"level {level}",
            parent_id=current.task_id,
            duration=level / 4,
            cpu_time=level / 8,
            peak_memory=level * 1024,
            energy_sources={"cpu": "rapl"} if level % 2 else {},
        )
        current.subtasks.append(child)
        current = child
    return root


def tree_fields(root: Task) -> list[tuple[object, ...]]:
    """What a task file must keep of each task of ``root``'s tree, depth first."""
    return [
        (
            depth,
            task.label,
            task.task_id,
            task.parent_id,
            task.status,
            task.duration,
            task.cpu_time,
            task.peak_memory,
            task.energy_sources,
            len(task.subtasks),
        )
        for depth, task in root.walk()
    ]


def test_a_recursion_600_tasks_deep_loads_back(tmp_path: Path) -> None:
    """A task per call of a recursion 600 deep (past the ~490 levels the standard JSON
    parser reads): the file it saves loads back with every task, id and figure."""
    path = tmp_path / "deep.json"
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(Task("recursion"))
        for level in range(600):
            stack.enter_context(Task(f"level {level}"))
    root.save_to_file(path, monitor=False)
    loaded = load_task(path)
    assert tree_fields(loaded) == tree_fields(root)
    assert loaded.walk().__next__()[1].cpu_time == root.cpu_time
    assert [task.finish_time for _, task in loaded.walk()] == [
        task.finish_time for _, task in root.walk()
    ]


@pytest.mark.parametrize("depth", [600, 20_000])
def test_a_tree_of_any_depth_taskmeter_writes_loads_back(tmp_path: Path, depth: int) -> None:
    """A tree nested deeper than the standard JSON parser reads loads back equal, read as
    ``show`` and ``report`` read it (``mistyped``) or as LensKit does."""
    path = tmp_path / "deep.json"
    root = chain(depth)
    root.save_to_file(path, monitor=False)
    assert tree_fields(load_task(path)) == tree_fields(root)
    warned: list[str] = []
    assert tree_fields(load_task(path, mistyped=warned.append)) == tree_fields(root)
    assert warned == []


def deep_text(depth: int) -> str:
    """The JSON of a chain of tasks ``depth`` levels deep, as a string (``json.dumps``
    itself recurses)."""
    task = '{"label":"l","task_id":"%s","hostname":"h","status":"finished","subtasks":['
    return (
        "".join(task % UUID(int=level) for level in range(depth))
        + '{"label":"leaf","hostname":"h","status":"finished"}'
        + "]}" * depth
    )


def at_level(text: str, level: int, old: str, new: str) -> str:
    """``text`` with the ``level``-th ``old`` (counting from 0) replaced by ``new``."""
    pieces = text.split(old)
    return old.join(pieces[: level + 1]) + new + old.join(pieces[level + 1 :])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[:-1000], "Expecting ',' delimiter"),
        (lambda text: text[: len(text) // 2], "Expecting|Unterminated string"),
        (lambda text: text[:-1], "Expecting ',' delimiter"),
        (lambda text: text + "]", "Extra data"),
        (lambda text: at_level(text, 1500, '"label":', '"label" '), "Expecting ':' delimiter"),
        (lambda text: at_level(text, 1500, '"l"', '"l\\x"'), re.escape("Invalid \\escape")),
        (lambda text: at_level(text, 1500, "[{", "[{,"), "Expecting property name"),
        (lambda text: at_level(text, 1500, '"h"', "tru"), "Expecting value"),
    ],
    ids=[
        "truncated near the end",
        "truncated halfway",
        "last brace missing",
        "extra data",
        "no colon",
        "bad escape",
        "comma",
        "bad literal",
    ],
)
def test_a_malformed_deep_file_is_a_task_file_error(
    tmp_path: Path, damage: Callable[[str], str], message: str
) -> None:
    """A file nested deeper than the standard parser reads, and not valid JSON: a
    TaskFileError saying where, as for a shallow file (not a crash, not "too deep")."""
    path = tmp_path / "bad.json"
    path.write_text(damage(deep_text(2_000)))
    for mistyped in (None, lambda _: None):
        with pytest.raises(TaskFileError, match=rf"bad.json is not a valid task file: ({message})"):
            load_task(path, mistyped=mistyped)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_an_interrupt_before_the_temporary_file_is_open_leaves_no_file_nor_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C as the temporary file's descriptor is made a file object: the temporary
    file is removed and its descriptor closed (it stayed open for the process's life)."""
    target = tmp_path / "task.json"
    target.write_text("{}")

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, '{"label": "x"}')
    monkeypatch.undo()
    assert len(os.listdir("/proc/self/fd")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.json"]
    assert target.read_text() == "{}"


@pytest.mark.parametrize("letter", ["t", "é", "😀"])
def test_a_file_name_as_long_as_the_file_system_allows_is_written(
    tmp_path: Path, letter: str
) -> None:
    """The temporary file's name (the file's own, with a dot, the process id and random
    letters) is shortened to fit: a name near the limit is still written, and written
    again (its dead writer's temporary files recognized)."""
    longest = os.pathconf(tmp_path, "PC_NAME_MAX")
    room = longest - len(".json")
    path = tmp_path / (letter * (room // len(letter.encode())) + ".json")
    assert len(os.fsencode(path.name)) <= longest
    save_task(Task("long name"), path)
    assert load_task(path).label == "long name"
    with Task("running", file=path):
        assert load_task(path).status is TaskStatus.RUNNING
    assert load_task(path).status is TaskStatus.FINISHED
    assert list(tmp_path.iterdir()) == [path]


def _hours_old_temporary(path: Path) -> Path:
    """A temporary file left an hour ago (older than any writer's)."""
    path.write_text("{")
    old = os.stat(path).st_mtime - 3600
    os.utime(path, (old, old))
    return path


def test_a_stale_temporary_file_naming_no_possible_process_does_not_stop_a_write(
    tmp_path: Path,
) -> None:
    """A leftover ``.<name>.<pid>.<random>.tmp`` whose pid is too large to be a process id
    is removed as a dead writer's; looking it up raised ``OverflowError``, and the first
    write to the directory (the task file as its task started) failed."""
    stale = _hours_old_temporary(tmp_path / ".task.json.99999999999999999999.abcdefgh.tmp")
    path = tmp_path / "task.json"
    write_atomic(path, "{}")
    assert path.read_text() == "{}"
    assert not stale.exists()


@pytest.mark.parametrize("pid", ["\u00b2", "\u0663\u0664", "1\u00b2"])
def test_a_stale_temporary_file_whose_pid_is_not_ascii_digits_is_left_alone(
    tmp_path: Path, pid: str
) -> None:
    """``"²".isdigit()`` is true but ``int("²")`` raises ``ValueError``: such a file is
    no writer's temporary file, and is left alone; the write goes through."""
    stale = _hours_old_temporary(tmp_path / f".task.json.{pid}.abcdefgh.tmp")
    path = tmp_path / "task.json"
    write_atomic(path, "{}")
    assert path.read_text() == "{}"
    assert stale.exists()


def test_a_name_of_ordinary_length_costs_no_look_up_of_the_name_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system's limit on a name is asked only when a temporary file's name
    is too long for it (a ``statfs`` on every save, otherwise)."""
    asked: list[object] = []
    real = os.pathconf
    monkeypatch.setattr(os, "pathconf", lambda *args: asked.append(args) or real(*args))
    write_atomic(tmp_path / "task.json", "{}")
    assert asked == []
    long_name = tmp_path / ("t" * 250 + ".json")
    write_atomic(long_name, "{}")
    assert long_name.read_text() == "{}" and len(asked) == 1


@pytest.mark.parametrize("ending", ["/", "/."])
def test_saving_to_a_path_written_as_a_directory_is_an_error(tmp_path: Path, ending: str) -> None:
    """``save_task(task, "runs/")`` raises, as ``open("runs/", "w")`` does, rather than
    writing a file named ``runs``; a file already named so is left as it is."""
    runs = tmp_path / "runs"
    with pytest.raises(IsADirectoryError):
        save_task(Task("dir"), f"{runs}{ending}")
    assert list(tmp_path.iterdir()) == []
    runs.write_text("kept")
    with pytest.raises(IsADirectoryError):
        write_atomic(f"{runs}{ending}", "new")
    assert runs.read_text() == "kept"
    assert list(tmp_path.iterdir()) == [runs]


@pytest.mark.parametrize("depth", [150, 600])
@pytest.mark.parametrize("mistyped", [None, print])
def test_a_deep_file_with_a_number_of_too_many_digits_is_a_task_file_error(
    tmp_path: Path, depth: int, mistyped: Callable[[str], None] | None
) -> None:
    """pydantic's parser stops at such a number in a shallow file; one read by the
    standard parser (a tree deeper than pydantic reads) raised a plain ``ValueError``,
    and ``taskmeter show`` ended with a traceback."""
    digits = "1" + "0" * (sys.get_int_max_str_digits() + 10)
    leaf = f'{{"label": "leaf", "x": {digits}}}'
    text = '{"label": "a", "subtasks": [' * depth + leaf + "]}" * depth
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(TaskFileError, match=r"deep\.json is not a valid task file: a number"):
        load_task(path, mistyped=mistyped)
