"""The live status line in a real terminal (tmux): shown at the bottom while the command
runs, its output intact above, and gone once the summary is printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import require_executable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_status_line_in_a_terminal(tmp_path: Path) -> None:
    """A 90x12 terminal: status on the last row during the run; output and summary after."""
    tmux = require_executable("tmux", "tmux")
    session = f"taskmeter-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "done"
    run = f"{shlex.quote(sys.executable)} -m taskmeter run"
    touch = f"touch {shlex.quote(str(done))}"
    command = f"{run} -- sh -c 'echo first; sleep 2; echo second'; {touch}; sleep 60"
    subprocess.run(
        [tmux, "-L", session, "new-session", "-d", "-s", session, "-x", "90", "-y", "12", command],
        check=True,
        timeout=10,
    )
    try:
        deadline = time.monotonic() + 20
        during: list[str] = []
        while time.monotonic() < deadline:
            during = capture_with(tmux, session)
            if during and during[-1].strip().startswith("taskmeter  0:0"):
                break
            time.sleep(0.1)
        assert during[-1].strip().startswith("taskmeter  0:0"), during
        assert "cpu" in during[-1] and "mem" in during[-1]
        assert "first" in during
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        after = capture_with(tmux, session)
        assert "second" in after
        assert any(line.startswith("taskmeter: sh -c") for line in after)
        assert not any(line.strip().startswith("taskmeter  0:0") for line in after)
    finally:
        subprocess.run([tmux, "-L", session, "kill-server"], timeout=10, check=False)


def capture_with(tmux: str, session: str) -> list[str]:
    screen = subprocess.run(
        [tmux, "-L", session, "capture-pane", "-p", "-t", session],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return screen.stdout.splitlines()
