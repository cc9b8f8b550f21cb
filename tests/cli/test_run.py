"""``taskmeter run`` against ground truth: known CPU seconds, known bytes, known exits."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from .runner import MIB, clean_environment, program, run_command, taskmeter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

STARTUP_CPU_S = 0.15
"""Upper bound of the CPU one Python start-up (and the burn loop's overshoot) adds."""


def tree_cpu(document: dict[str, object]) -> float:
    user = document["tree_cpu_user_time"]
    system = document["tree_cpu_system_time"]
    assert isinstance(user, float) and isinstance(system, float)
    return user + system


def test_cpu_of_grandchildren_reaped_by_their_parent(tmp_path: Path) -> None:
    """Two grandchildren burning 0.5 s each, waited for by the child: about 1.0 s of CPU."""
    result, doc = run_command(tmp_path, program("burners.py", "wait", 2, 0.5))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert 1.0 <= tree_cpu(doc) <= 1.0 + 3 * STARTUP_CPU_S
    assert doc["tree_cpu_user_time"] >= 0.85
    assert doc["cpu_time"] == pytest.approx(tree_cpu(doc))  # no subtasks: all its own
    assert doc["status"] == "finished"
    assert doc["exit_code"] == 0


def test_cpu_of_orphaned_grandchildren_that_ended_is_counted(tmp_path: Path) -> None:
    """Grandchildren the child never waited for become taskmeter's (subreaper) and count."""
    result, doc = run_command(tmp_path, program("burners.py", "linger", 2, 0.5))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert 1.0 <= tree_cpu(doc) <= 1.0 + 3 * STARTUP_CPU_S
    assert "left_running" not in doc


def test_processes_left_running_are_reported_not_counted(tmp_path: Path) -> None:
    """A child that exits at once leaves its burners running: they are named, not counted."""
    result, doc = run_command(tmp_path, program("burners.py", "leave", 2, 0.5))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert tree_cpu(doc) < 0.5
    assert len(doc["left_running"]) == 2
    assert "still running" in result.stderr and "--wait-all" in result.stderr


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_helpers_that_end_after_the_command_are_not_left_running(
    tmp_path: Path, method: str
) -> None:
    """The resource tracker (and forkserver) a Python program starts end right after it,
    when its exit closes their pipe: they are waited for and counted, not reported."""
    result, doc = run_command(tmp_path, program("start_methods.py", method))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert doc["status"] == "finished"
    assert "left_running" not in doc
    assert "still running" not in result.stderr


def test_a_process_left_running_is_reported_without_waiting_for_it(tmp_path: Path) -> None:
    """A 120 s sleeper the command leaves is named in the note without being waited for:
    the run ends well within 20 s of the command's end (the grace is a fraction of a
    second; the rest is taskmeter's own start and exit, slow on a loaded machine)."""
    # The sleeper's output goes elsewhere: holding the captured pipes, it would hold
    # up the capture for its 120 s.
    script = "sleep 120 >/dev/null 2>&1 & echo $! $(date +%s.%N)"
    result = taskmeter("run", "--", "sh", "-c", script, timeout=60)
    ended = time.time()
    sleeper, command_end = result.stdout.split()
    try:
        assert result.returncode == 0, result.stderr
        assert f"still running (pid {sleeper})" in result.stderr
        assert ended - float(command_end) < 20.0
    finally:
        os.kill(int(sleeper), signal.SIGKILL)


def test_wait_all_waits_for_and_counts_orphans(tmp_path: Path) -> None:
    """With --wait-all the burners the child left behind are waited for and counted."""
    result, doc = run_command(tmp_path, program("burners.py", "leave", 2, 0.5), "--wait-all")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert 1.0 <= tree_cpu(doc) <= 1.0 + 3 * STARTUP_CPU_S
    assert doc["duration"] >= 0.5


def test_peak_memory_of_one_process(tmp_path: Path) -> None:
    """A child holding 200 MiB: single-process and tree peaks are 200 MiB plus the interpreter."""
    result, doc = run_command(tmp_path, program("allocate.py", 200, 1.0))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert 200 * MIB <= doc["peak_memory"] <= 240 * MIB
    assert 200 * MIB <= doc["tree_peak_memory"] <= 240 * MIB


def test_peak_memory_single_process_versus_tree(tmp_path: Path) -> None:
    """Three processes holding 100 MiB at once: one process peaks at ~100, the tree at ~300."""
    result, doc = run_command(tmp_path, program("allocate.py", 100, 1.0, 3))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert 100 * MIB <= doc["peak_memory"] <= 140 * MIB
    assert 300 * MIB <= doc["tree_peak_memory"] <= 380 * MIB
    assert "peak RSS, one process" in result.stderr
    assert "peak RSS, all processes" in result.stderr


def test_small_command_peak_is_bounded_not_invented(tmp_path: Path) -> None:
    """Below taskmeter's own size the kernel's figure is not the command's: a bound only."""
    result, doc = run_command(tmp_path, ["true"])
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert doc["peak_memory"] is None
    assert doc["peak_memory_at_most"] > 0
    assert "<=" in result.stderr


@pytest.mark.parametrize("status", [0, 3, 255])
def test_exit_status_passes_through(tmp_path: Path, status: int) -> None:
    """The command's own exit status is taskmeter's."""
    result, doc = run_command(tmp_path, ["sh", "-c", f"exit {status}"])
    assert result.returncode == status
    assert doc is not None
    assert doc["exit_code"] == status
    assert doc["status"] == ("finished" if status == 0 else "failed")
    assert f"exited with status {status}" in result.stderr


def test_signal_death_ends_taskmeter_by_the_same_signal(tmp_path: Path) -> None:
    """A command killed by SIGKILL: taskmeter dies of SIGKILL too, once the failed task
    is recorded (a shell reports 137, ``subprocess`` -9)."""
    result, doc = run_command(tmp_path, ["sh", "-c", "kill -KILL $$"])
    assert result.returncode == -signal.SIGKILL
    assert doc is not None
    assert doc["exit_signal"] == "SIGKILL"
    assert doc["status"] == "failed"
    assert "killed by SIGKILL" in result.stderr


def test_command_not_found_is_127_with_a_message(tmp_path: Path) -> None:
    """A missing command: 127 and a one-line message, no traceback, no task file."""
    result, doc = run_command(tmp_path, ["no-such-command-taskmeter"])
    assert result.returncode == 127
    assert "command not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert doc is None


def test_an_empty_command_name_is_127_and_leaves_no_subtask_directory(tmp_path: Path) -> None:
    """``taskmeter run -- ''``: 127 and "command not found", as bash says for ``''``; no
    traceback, and the private subtask directory made before the spawn is removed."""
    base = tmp_path / "tmp"
    base.mkdir()
    result = taskmeter("run", "-q", "--", "", env=clean_environment({"TMPDIR": str(base)}))
    assert result.returncode == 127
    assert "cannot run '': command not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(base.glob("taskmeter-subtasks-*")) == []


def test_an_unexpected_error_at_spawn_time_still_removes_the_subtask_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the spawn raises, the subtask directory goes, and the signal mask is
    restored; the error itself is not hidden."""
    from taskmeter.cli import _supervise, main

    def broken_spawn(*args: object, **kwargs: object) -> int:
        raise RuntimeError("spawn broke")

    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr(_supervise.os, "posix_spawnp", broken_spawn)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pytest.raises(RuntimeError, match="spawn broke"):
        main(["run", "-q", "--", "true"])
    assert list(base.glob("taskmeter-subtasks-*")) == []
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask


def test_a_path_directory_that_cannot_be_searched_does_not_make_a_missing_command_126(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """execvp says "permission denied" when a PATH directory cannot be searched (another
    user's directory), though no directory holds the command: that is still "command not
    found", 127, as a shell says, naming the directory; a file on PATH without execute
    permission is 126 and named; a script whose interpreter is missing is named as such.
    (As root every directory can be searched, so the unsearchable one is simulated.)"""
    from taskmeter.cli import _supervise

    locked, empty, holding = tmp_path / "locked", tmp_path / "empty", tmp_path / "bin"
    for directory in (locked, empty, holding):
        directory.mkdir()
    monkeypatch.setenv("PATH", os.pathsep.join(map(str, (locked, empty, holding))))
    real_stat = os.stat

    def stat_refusing_locked(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if os.path.dirname(path) == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_supervise.os, "stat", stat_refusing_locked)
    denied = PermissionError(13, "Permission denied")
    missing = _supervise.spawn_error("no-such-command-taskmeter", denied)
    assert missing.exit_code == 127
    assert "command not found" in str(missing) and str(locked) in str(missing)
    (holding / "tool").write_text("#!/bin/sh\n")
    present = _supervise.spawn_error("tool", denied)
    assert present.exit_code == 126
    assert str(holding / "tool") in str(present)
    script = holding / "script"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    starter = _supervise.spawn_error("script", denied)
    assert starter.exit_code == 127
    assert "interpreter '/no/such/interpreter' was not found" in str(starter)


def test_not_executable_is_126(tmp_path: Path) -> None:
    """A file without execute permission, and a directory: 126, as shells."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    result, _ = run_command(tmp_path, [str(script)])
    assert result.returncode == 126
    assert "permission denied" in result.stderr
    result, _ = run_command(tmp_path, [str(tmp_path)])
    assert result.returncode == 126
    assert "directory" in result.stderr


def test_no_command_is_a_usage_error() -> None:
    """Without a command: status 2 and a hint showing the -- form."""
    result = taskmeter("run")
    assert result.returncode == 2
    assert "taskmeter run -- python train.py" in result.stderr


@pytest.mark.parametrize("label", ["", "   ", "\t\n"])
def test_an_empty_label_is_a_usage_error_before_running(tmp_path: Path, label: str) -> None:
    """``-l ''`` (or white space alone) is refused (status 2), not replaced by the default."""
    marker = tmp_path / "ran"
    result = taskmeter("run", "-l", label, "--", "touch", str(marker))
    assert result.returncode == 2
    assert result.stderr == (
        f"taskmeter: error: -l/--label {label!r}: a label must not be empty or only white "
        "space (leave the option out for the default label)\n"
    )
    assert not marker.exists()


def test_unwritable_task_file_stops_before_running(tmp_path: Path) -> None:
    """A task file that cannot be written is reported before the command runs (125)."""
    marker = tmp_path / "ran"
    result = taskmeter("run", "-o", str(tmp_path), "--", "touch", str(marker))
    assert result.returncode == 125
    assert "is a directory" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("ending", ["/", "/.", "/.."])
@pytest.mark.parametrize("exists", [False, True], ids=["missing", "a file there"])
def test_a_task_file_path_written_as_a_directory_stops_before_running(
    tmp_path: Path, ending: str, exists: bool
) -> None:
    """``-o out/`` names a directory: 125 before the command runs, and no file named
    ``out`` made (or replaced), which ``Path("out/")``, that is ``out``, would give."""
    marker = tmp_path / "ran"
    target = tmp_path / "sub" / "out"
    target.parent.mkdir()
    if exists:
        target.write_text("kept")
    written = str(target) + ending
    result = taskmeter("run", "-o", written, "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert result.stderr == (
        f"taskmeter: error: cannot write the task file {written}: it names a directory "
        f"(it ends with {ending!r}); name a file in it\n"
    )
    assert not marker.exists()
    assert [path.name for path in target.parent.iterdir()] == (["out"] if exists else [])
    if exists:
        assert target.read_text() == "kept"


def test_a_task_file_path_that_is_a_loop_of_links_stops_before_running(tmp_path: Path) -> None:
    """``-o a`` where ``a -> b -> a``: 125 before the command runs, the links kept (the
    link was replaced by the task file at the end)."""
    marker = tmp_path / "ran"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.symlink_to(second)
    second.symlink_to(first)
    result = taskmeter("run", "-o", str(first), "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert result.stderr == (
        f"taskmeter: error: cannot write the task file {first}: Too many levels of symbolic links\n"
    )
    assert not marker.exists()
    assert first.is_symlink() and second.is_symlink()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999", "ftp://collector", "http://"])
def test_malformed_otlp_endpoint_is_a_usage_error_before_running(
    tmp_path: Path, endpoint: str
) -> None:
    marker = tmp_path / "ran"
    result = taskmeter("run", "--otlp-endpoint", endpoint, "--", "touch", str(marker))
    assert result.returncode == 2, result.stderr
    assert "--otlp-endpoint" in result.stderr
    assert not marker.exists()


def test_task_file_in_a_place_no_file_can_be_made_stops_before_running(tmp_path: Path) -> None:
    """Permissions say yes to root, but /proc takes no files: still 125, before the command."""
    marker = tmp_path / "ran"
    result = taskmeter("run", "-o", "/proc/taskmeter-run.json", "--", "touch", str(marker))
    assert result.returncode == 125
    assert "cannot create a file in /proc" in result.stderr
    assert not marker.exists()
    assert "Traceback" not in result.stderr


def test_task_file_that_stops_being_writable_is_reported_once_while_running(
    tmp_path: Path,
) -> None:
    """Saves that fail while the command runs are said once, and again if the last fails."""
    (tmp_path / "real").mkdir()
    (tmp_path / "plain").touch()
    folder = tmp_path / "out"
    folder.symlink_to(tmp_path / "real")
    # The command puts a file where the task file's folder was, in one step (a
    # refresh between a removal and a second step would make the folder again).
    command = [
        "sh",
        "-c",
        f"ln -s {tmp_path / 'plain'} {folder}.new && mv -T {folder}.new {folder} && sleep 1",
    ]
    result = taskmeter(
        "run",
        "-o",
        str(folder / "run.json"),
        "--",
        *command,
        env=clean_environment({"TASKMETER_MONITOR_INTERVAL": "0.1"}),
    )
    assert result.returncode == 0
    assert result.stderr.count("cannot write the task file") == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_names_that_are_not_utf8_are_recorded_escaped(tmp_path: Path) -> None:
    """A program name, label or argument that is not UTF-8: the run and its file go on."""
    script = tmp_path / os.fsdecode(b"donn\xe9es.sh")
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    result, doc = run_command(tmp_path, [str(script), os.fsdecode(b"arg\xff")])
    assert result.returncode == 3, result.stderr
    assert doc is not None
    assert doc["label"] == doc["executable"] == "donn\\xe9es.sh"
    assert "Traceback" not in result.stderr
    labelled, doc = run_command(
        tmp_path,
        [str(script), os.fsdecode(b"arg\xff")],
        "-l",
        os.fsdecode(b"lab\xff"),
        "--record-command",
    )
    assert labelled.returncode == 3, labelled.stderr
    assert doc is not None
    assert doc["label"] == "lab\\xff"
    assert doc["command"] == [str(tmp_path / "donn\\xe9es.sh"), "arg\\xff"]
    assert "exited with status 3" in labelled.stderr  # the summary, printed


def start_run_until_ready(
    tmp_path: Path, command: list[str], ready: Path, launcher: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """``taskmeter run -o run.json -- command``, once the command has made ``ready``;
    started through ``launcher`` (a program that execs its arguments), if given."""
    process = subprocess.Popen(
        [
            *launcher,
            sys.executable,
            "-m",
            "taskmeter",
            "run",
            "-o",
            str(tmp_path / "run.json"),
            "--",
            *command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(),
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the program did not start"
        time.sleep(0.02)
    return process


def start_signal_program(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    ready, out = tmp_path / "ready", tmp_path / "received"
    return start_run_until_ready(tmp_path, program("signals.py", ready, out), ready), out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1])
def test_signal_sent_to_taskmeter_reaches_the_command(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM/SIGHUP/SIGUSR1 sent to taskmeter are forwarded; the command's status passes."""
    process, out = start_signal_program(tmp_path)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert out.read_text().split() == [str(int(sig))]
    assert process.returncode == 0, stderr


def test_sigint_to_taskmeter_stops_the_command_and_taskmeter(tmp_path: Path) -> None:
    """SIGINT (as from kill -INT) reaches the command, which dies of it, and so does
    taskmeter (a shell reports 130); the task is cancelled."""
    import json

    process, out = start_signal_program(tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert out.exists(), (process.returncode, stderr)
    assert out.read_text().split() == [str(int(signal.SIGINT))]
    assert process.returncode == -signal.SIGINT, stderr
    assert "Traceback" not in stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "cancelled"
    assert doc["exit_signal"] == "SIGINT"


CATCHES_AND_EXITS = """
import os, signal, sys, time
ready, signo, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signal.signal(signo, lambda *_: sys.exit(status))
with open(ready + ".tmp", "w") as handle:
    handle.write("ready")
os.replace(ready + ".tmp", ready)
time.sleep(20)
sys.exit(99)
"""
"""Catches a signal and exits with a status of its own.  READY appears, renamed into
place, only once the file is written and closed: the handler's ``SystemExit``, raised
while the interpreter finalizes a file object (which flushing does as it checks for
signals), would be dropped, and the program would sleep on to status 99."""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("exit_status", [0, 3])
def test_command_that_catches_the_stop_signal_is_cancelled_whatever_its_status(
    tmp_path: Path, sig: signal.Signals, exit_status: int
) -> None:
    """A command that catches the SIGTERM (or SIGINT) taskmeter passed on and exits with a
    status of its own was stopped on request: cancelled, with its status kept."""
    import json

    ready = tmp_path / "ready"
    command = [sys.executable, "-c", CATCHES_AND_EXITS, str(ready), str(int(sig)), str(exit_status)]
    process = start_run_until_ready(tmp_path, command, ready)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == exit_status, stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "cancelled"
    assert doc["exit_code"] == exit_status
    assert doc.get("exit_signal") is None
    assert f"exited with status {exit_status} after {sig.name}" in stderr


def test_command_that_fails_on_its_own_is_failed_not_cancelled(tmp_path: Path) -> None:
    """No signal reached taskmeter: a non-zero status of the command's own is a failure."""
    result, doc = run_command(tmp_path, ["sh", "-c", "sleep 0.2; exit 3"])
    assert result.returncode == 3
    assert doc is not None and doc["status"] == "failed"
    assert "after SIG" not in result.stderr


def test_command_inherits_ignored_signals_as_from_a_shell(tmp_path: Path) -> None:
    """A background job starts with SIGINT ignored; so does its command under taskmeter."""
    script = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    taskmeter_run = [sys.executable, "-m", "taskmeter", "run", "-q", "--"]
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher, *taskmeter_run, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"


def test_sigint_to_a_background_job_that_ignores_it_changes_nothing(tmp_path: Path) -> None:
    """``taskmeter run ... &`` in a script ignores SIGINT, as its command does: a
    ``kill -INT`` of taskmeter is not passed on, and the command that ran to its end
    is ``finished``, not ``cancelled``."""
    import json

    ready = tmp_path / "ready"
    script = (
        "import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('ready'); time.sleep(0.5)"
    )
    ignoring_sigint = [
        sys.executable,
        "-c",
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, sys.argv[1:])",
    ]
    command = [sys.executable, "-c", script, str(ready)]
    process = start_run_until_ready(tmp_path, command, ready, launcher=ignoring_sigint)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "finished"
    assert "SIGINT" not in stderr


def test_running_task_file_is_written_while_the_command_runs(tmp_path: Path) -> None:
    """With -o, the file shows a running task before the command ends."""
    import json

    env = clean_environment({"TASKMETER_MONITOR_INTERVAL": "0.2"})
    out = tmp_path / "run.json"
    go = tmp_path / "go"
    # The command runs until the test has read the file (at most 30 s), however
    # slowly a loaded machine schedules the test.
    command = f"for i in $(seq 600); do [ -e {go} ] && exit 0; sleep 0.05; done; exit 9"
    process = subprocess.Popen(
        [sys.executable, "-m", "taskmeter", "run", "-o", str(out), "--", "sh", "-c", command],
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    running = json.loads(out.read_text())
    go.touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert running["status"] == "running"
    assert running["finish_time"] is None
    assert json.loads(out.read_text())["status"] == "finished"


def test_summary_names_the_figures_and_quiet_silences_it(tmp_path: Path) -> None:
    """The summary goes to stderr (stdout stays the command's); -q prints nothing."""
    result = taskmeter("run", "--", "echo", "hello")
    assert result.stdout == "hello\n"
    for name in ("wall time", "CPU time, user", "CPU time, system", "peak RSS"):
        assert name in result.stderr
    quiet = taskmeter("run", "-q", "--", "echo", "hello")
    assert quiet.stdout == "hello\n"
    assert quiet.stderr == ""


def test_help_explains_exit_statuses() -> None:
    """``taskmeter run --help`` shows an example and the exit statuses."""
    result = taskmeter("run", "--help")
    assert result.returncode == 0
    assert "taskmeter run -- python train.py" in result.stdout
    for code in ("125", "126", "127", "128+N"):
        assert code in result.stdout


def test_environment_of_the_command_names_the_run(tmp_path: Path) -> None:
    """The command sees the run's task id, trace context and subtask directory."""
    script = (
        "import os; e = os.environ; "
        "print(e['TASKMETER_PARENT_TASK'], e['TRACEPARENT'], e['TASKMETER_SUBTASK_DIR'])"
    )
    result, doc = run_command(tmp_path, [sys.executable, "-c", script])
    assert doc is not None
    task_id, traceparent, subtask_dir = result.stdout.split()
    assert task_id == doc["task_id"]
    assert traceparent == f"00-{doc['trace_id']}-{doc['span_id']}-01"
    assert os.path.isabs(subtask_dir)
    assert not os.path.exists(subtask_dir), "the run's subtask directory is removed at its end"
