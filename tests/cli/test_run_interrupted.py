"""Ctrl-C while ``taskmeter run`` starts: no command left running, taskmeter ends as interrupted.

``programs/interrupted_start.py`` runs the command line with a pause at one
moment of the start-up; the test sends SIGINT there (as ``kill -INT`` or a
terminal's Ctrl-C does to taskmeter) and then looks for the command among the
running processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .runner import clean_environment, program

SLEEP_S = 30
"""The command sleeps this long unless the SIGINT ends it: far beyond the test's bound."""


def processes_running(marker: str) -> list[int]:
    """The pids of the processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
@pytest.mark.parametrize("moment", ["before-spawn", "at-spawn", "after-spawn"])
def test_sigint_during_start_up_leaves_no_command_running_and_ends_taskmeter_by_sigint(
    tmp_path: Path, moment: str
) -> None:
    """A SIGINT before the command exists stops taskmeter there (no command started,
    its private directory removed); one pending as the command is spawned, or just
    after, is passed on to it: either way taskmeter dies of SIGINT within seconds, no
    command is left running, and a started command's record says cancelled."""
    marker = f"interrupted-{uuid.uuid4().hex}"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    ready, record = tmp_path / "ready", tmp_path / "run.json"
    command = ["sh", "-c", f"exec sleep {SLEEP_S}", marker]
    started = time.monotonic()
    taskmeter_run = [*program("interrupted_start.py", moment, ready), "run", "-o", str(record)]
    process = subprocess.Popen(
        [*taskmeter_run, "--", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment({"TMPDIR": str(temporary)}),
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "taskmeter did not reach the moment"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() - started < SLEEP_S / 2
    assert process.returncode == -signal.SIGINT, stderr
    assert "Traceback" not in stderr
    left = processes_running(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"the command is still running: {left}"
    assert list(temporary.iterdir()) == []  # the run's private directory is gone
    if moment == "before-spawn":
        assert not record.exists()
    else:
        document = json.loads(record.read_text())
        assert document["status"] == "cancelled"
        assert document["exit_signal"] == "SIGINT"
