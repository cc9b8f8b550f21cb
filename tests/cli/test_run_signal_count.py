"""How many times a signal reaches the command of ``taskmeter run``."""

from __future__ import annotations

import os
import signal
import sys
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
