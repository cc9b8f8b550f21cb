"""``taskmeter run`` with commands as people run them: under a shell that is
interrupted, scripts without ``#!``, daemons with ``--wait-all``, the environment."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.abc
import importlib.machinery
import itertools
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import require_executable

from .runner import clean_environment, program, run_command

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

TASKMETER = f"{sys.executable} -m taskmeter"


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 20) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_shell_reports_128_plus_n_for_a_command_killed_by_signal_n() -> None:
    """The status a shell shows for taskmeter is the one it shows for the command alone."""
    script = (
        f'{TASKMETER} run -q -- sh -c "kill -TERM \\$\\$"; echo "with taskmeter $?"; '
        'sh -c "kill -TERM \\$\\$"; echo "alone $?"'
    )
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=clean_environment(), timeout=30
    )
    assert result.stdout.split("\n")[:2] == ["with taskmeter 143", "alone 143"], result.stderr


def bash_on_pty(
    arguments: Sequence[str],
    env: dict[str, str],
    start: Callable[[int], object],
    timeout_s: float,
) -> tuple[int, bytes]:
    """Run bash with ``arguments`` in a session of its own, a new 24 x 80 pty as its
    controlling terminal (so its foreground group gets the SIGINT of a Ctrl-C typed
    there); call ``start`` with the pty's master (to type into it), then read what bash
    writes until it ends.  Returns its exit status and that output."""
    setsid = require_executable("setsid", "util-linux")
    bash = require_executable("bash", "bash")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shell = subprocess.Popen(
        [setsid, "--ctty", bash, *arguments], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output = b""
    try:
        start(master)
        deadline = time.monotonic() + timeout_s
        while shell.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):
                    output += os.read(master, 65536)
        assert shell.poll() is not None, f"bash did not end: {output!r}"
    finally:
        if shell.poll() is None:
            shell.kill()
        shell.wait(10)
        os.close(master)
    return shell.returncode, output


def test_ctrl_c_stops_the_shell_script_that_runs_taskmeter(tmp_path: Path) -> None:
    """Ctrl-C at a terminal while bash waits for taskmeter stops bash's script, as it does
    without taskmeter: bash goes on only when the program it waited for did not die of
    SIGINT (a program that exits, even with 130, is taken to have handled Ctrl-C)."""
    ready, out = tmp_path / "ready", tmp_path / "received"
    command = " ".join(program("signals.py", ready, out))
    script = f"{TASKMETER} run -q -- {command}; echo went on after $?"

    def ctrl_c(master: int) -> None:
        wait_for(lambda: ready.exists() and ready.read_text(), "the command to start")
        os.write(master, b"\x03")

    status, output = bash_on_pty(["-c", script], clean_environment(), ctrl_c, timeout_s=20)
    assert out.read_text().split() == [str(int(signal.SIGINT))]
    assert b"went on" not in output, output
    assert status == -signal.SIGINT, output


def interactive_bash(script: str, timeout_s: float = 30) -> bytes:
    """What an interactive bash (job control on) writes on a 24 x 80 pty running ``script``."""
    env = clean_environment({"TERM": "xterm", "PS1": "$ "})
    _, output = bash_on_pty(
        ["--norc", "--noprofile", "-i"],
        env,
        lambda master: os.write(master, f"{script}; exit\n".encode()),
        timeout_s,
    )
    return output


def test_status_line_only_in_the_foreground() -> None:
    """A run in the foreground of a terminal reserves its bottom row for the status line;
    the same run as a background job (``&``) leaves the screen of the foreground program
    alone, and still prints its summary."""
    reserve = b"\033[1;23r"
    command = f"{TASKMETER} run -- sleep 1.6"
    output = interactive_bash(f"{command}; {command} & wait")
    first, _, second = output.partition(b"exited with status 0")
    assert reserve in first and b"taskmeter  0:01" in first, first
    assert reserve not in second and b"taskmeter  0:01" not in second, second
    assert b"exited with status 0" in second


def test_executable_script_without_a_shebang_runs_with_sh(tmp_path: Path) -> None:
    """An executable text file with no ``#!`` line runs with /bin/sh, by path and from
    PATH, as ``env``, ``nohup`` and ``xargs`` run it (execvp), arguments and status kept."""
    script = tmp_path / "noshebang"
    script.write_text('echo "ran $0 with $*"\nexit 4\n')
    script.chmod(0o755)
    result, doc = run_command(tmp_path, [str(script), "a", "b c"])
    assert result.returncode == 4, result.stderr
    assert result.stdout == f"ran {script} with a b c\n"
    assert doc is not None and doc["exit_code"] == 4
    env = clean_environment({"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    result, _ = run_command(tmp_path, ["noshebang", "x"], env=env)
    assert (result.returncode, result.stdout) == (4, f"ran {script} with x\n"), result.stderr


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGTERM], [signal.SIGINT], [signal.SIGHUP], [signal.SIGINT, signal.SIGTERM]],
    ids=["TERM", "INT", "HUP", "INT-then-TERM"],
)
def test_wait_all_passes_a_stop_on_to_the_daemon_it_waits_for_and_is_cancelled(
    tmp_path: Path, signals: list[signal.Signals]
) -> None:
    """With --wait-all, once the command has exited, a SIGTERM, SIGINT or SIGHUP to
    taskmeter (a ``kill``, ``timeout``) goes to the processes it still waits for, a daemon
    in its own session included, so the run ends instead of ignoring it: cancelled, as a
    stop of the command is, with the command's own exit status (a second signal changes
    nothing)."""
    ready = tmp_path / "ready"
    options = ["--no-status", "--wait-all", "-o", str(tmp_path / "run.json")]
    process = subprocess.Popen(
        [sys.executable, "-m", "taskmeter", "run", *options, "--", *program("daemonize.py", ready)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(),
        # Signals ignored where the tests run (a background job's SIGINT) would stay so.
        preexec_fn=_default_stop_signals,
    )
    daemon = 0
    try:
        wait_for(lambda: ready.exists(), "the daemon to start")
        command, daemon = (int(pid) for pid in ready.read_text().split())
        wait_for(lambda: not os.path.exists(f"/proc/{command}"), "the command to be reaped")
        for sig in signals:
            process.send_signal(sig)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("taskmeter --wait-all went on waiting after the signal")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if daemon and os.path.exists(f"/proc/{daemon}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon, signal.SIGKILL)
    assert process.returncode == 0, stderr  # the command's own status
    assert not os.path.exists(f"/proc/{daemon}")
    doc = json.loads((tmp_path / "run.json").read_text())
    assert "left_running" not in doc
    assert doc["status"] == "cancelled"
    assert doc["exit_code"] == 0
    first = signals[0].name
    # A signal already pending as taskmeter reaps the command cannot be told from one
    # sent just before the command ended: it is then the command's stop ("after").
    said = (f"; the processes it left running were sent {first}", f"status 0 after {first}")
    assert any(text in stderr for text in said), stderr


def _default_stop_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def test_cores_busy_covers_a_process_that_ends_after_the_command(tmp_path: Path) -> None:
    """A process the command leaves, which ends within the grace taskmeter gives it, is
    counted, and the cores busy are averaged up to its end, which the summary names,
    not over the command's shorter wall time."""
    result, _ = run_command(tmp_path, ["sh", "-c", "sleep 0.15 & exit 0"], "--no-status")
    assert result.returncode == 0, result.stderr
    wall = float(re.search(r"wall time +([\d.]+) s", result.stderr)[1])  # type: ignore[index]
    found = re.search(
        r"CPU time, total +([\d.]+) s +([\d.]+) cores busy on average over ([\d.]+) s, "
        r"until the last process counted ended",
        result.stderr,
    )
    assert found is not None, result.stderr
    cpu, busy, span = (float(value) for value in found.groups())
    assert span >= wall + 0.05  # the sleep's end, past the shell's
    assert busy == pytest.approx(cpu / span, abs=0.01)


def test_environment_reaches_the_command_unchanged(tmp_path: Path) -> None:
    """The command gets taskmeter's environment as it is (odd names, values with newlines
    or '=' or bytes that are not UTF-8 included), plus only the run's four variables."""
    env = clean_environment(
        {"TM_MULTI": "a\nb=c", "TM_EMPTY": "", "TM_LATIN1": os.fsdecode(b"caf\xe9"), "a-b.c": "1"}
    )
    result = subprocess.run(
        [sys.executable, "-m", "taskmeter", "run", "-q", "--", "env", "-0"],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    got = dict(entry.split(b"=", 1) for entry in result.stdout.split(b"\0") if entry)
    added = {b"TASKMETER_PARENT_TASK", b"TASKMETER_SUBTASK_DIR", b"TRACEPARENT"}
    assert set(got) - {os.fsencode(k) for k in env} == added
    expected = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
    assert {k: v for k, v in got.items() if k not in added} == expected


def test_a_tmpdir_that_does_not_exist_does_not_stop_the_command(tmp_path: Path) -> None:
    """TMPDIR naming a missing directory: the subtask directory goes where Python's
    ``tempfile`` would put it, and the command runs, its subtasks collected."""
    env = clean_environment({"TMPDIR": str(tmp_path / "missing")})
    result, doc = run_command(tmp_path, program("uses_task.py"), env=env)
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert [task["label"] for task in doc["subtasks"]] == ["child work"]


def test_closed_standard_error_runs_the_command_and_keeps_stdout_clean(tmp_path: Path) -> None:
    """``2>&-`` (a closed standard error, as some service managers leave it): the command
    runs, its status is taskmeter's, and the summary does not land on standard output."""
    out = tmp_path / "run.json"
    script = f'exec {TASKMETER} run -o {out} -- sh -c "echo out; exit 3" 2>&-'
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, env=clean_environment(), timeout=30
    )
    assert (result.returncode, result.stdout) == (3, b"out\n"), result.stderr
    assert json.loads(out.read_text())["exit_code"] == 3


def test_script_whose_interpreter_is_missing_is_named_as_such(tmp_path: Path) -> None:
    """A script whose ``#!`` program is missing (a moved virtualenv): 127 as shells give,
    and a message that names the interpreter, not "no such file" for a file that is there."""
    script = tmp_path / "tool"
    script.write_text(f"#!{tmp_path}/gone/python3 -u\nprint(1)\n")
    script.chmod(0o755)
    env = clean_environment({"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    for command in (str(script), "tool"):
        result, doc = run_command(tmp_path, [command], env=env)
        assert result.returncode == 127, result.stderr
        assert result.stderr.strip() == (
            f"taskmeter: error: cannot run {str(script)!r}: its interpreter "
            f"'{tmp_path}/gone/python3' was not found (the #! line)"
        )
        assert doc is None


class _SlowRecordImport(importlib.abc.MetaPathFinder):
    """Makes loading the task-file record module take 0.6 s more, as on a busy machine
    (in the module's execution, as a real import spends its time: a finder runs
    holding Python's global import lock)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "taskmeter.cli._record":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        assert spec is not None and spec.loader is not None
        spec.loader = _SlowLoader(spec.loader)
        return spec


class _SlowLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        time.sleep(0.6)
        self.loader.exec_module(module)


def test_first_task_file_save_does_not_hold_up_sampling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-o FILE``: the task model the first save needs loads beside the sampling (here made
    to take 0.6 s), so the command's memory is still sampled every ``--interval``."""
    from taskmeter.cli import main
    from taskmeter.cli._proctree import ProcessTreeSampler

    monkeypatch.delitem(sys.modules, "taskmeter.cli._record", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_SlowRecordImport(), *sys.meta_path])
    times: list[float] = []
    sample = ProcessTreeSampler.sample

    def timed_sample(self: ProcessTreeSampler) -> object:
        times.append(time.perf_counter())
        return sample(self)

    monkeypatch.setattr(ProcessTreeSampler, "sample", timed_sample)
    out = tmp_path / "run.json"
    assert main(["run", "-q", "-o", str(out), "--", "sleep", "1.2"]) == 0
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 5 and max(gaps) < 0.4, gaps
    assert json.loads(out.read_text())["status"] == "finished"
