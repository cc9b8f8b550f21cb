"""How many times a signal reaches the command of ``taskmeter run``."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from .runner import program
from .test_run import start_run_until_ready

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")


def test_sigterm_sent_to_taskmeter_alone_reaches_the_command_once(tmp_path: Path) -> None:
    """``kill -TERM <taskmeter's pid>`` (systemd's ``KillMode=mixed``): taskmeter passes it
    on, and the command, counting for half a second after the first, gets it once."""
    ready, out = tmp_path / "ready", tmp_path / "count"
    process = start_run_until_ready(tmp_path, program("count_signals.py", ready, out, 0.5), ready)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert out.read_text().split() == ["1"], stderr
    assert process.returncode == 0, stderr


EXITS_ON_INTERRUPT = """
import os, sys, time
ready = sys.argv[1]
try:
    with open(ready + ".tmp", "w") as handle:
        handle.write("ready")
    os.replace(ready + ".tmp", ready)
    time.sleep(20)
except KeyboardInterrupt:
    sys.exit(1)
sys.exit(99)
"""
"""Exits with status 1 on SIGINT, as a Python program that catches KeyboardInterrupt."""


@pytest.mark.parametrize("attempt", range(4))
def test_sigint_to_the_whole_group_always_cancels(tmp_path: Path, attempt: int) -> None:
    """``kill -INT -PGID`` (``timeout -s INT``): the command ends from its own copy, often
    before taskmeter takes its copy, yet the run is cancelled each time, not failed."""
    import json
    import subprocess

    from .runner import clean_environment

    ready = tmp_path / "ready"
    run = [
        sys.executable,
        "-m",
        "taskmeter",
        "run",
        "--no-status",
        "-o",
        str(tmp_path / "run.json"),
    ]
    process = subprocess.Popen(
        [*run, "--", sys.executable, "-c", EXITS_ON_INTERRUPT, str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the program did not start"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 1, stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "cancelled", stderr
    assert doc["exit_code"] == 1
    assert "exited with status 1 after SIGINT" in stderr
