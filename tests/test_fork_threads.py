"""A program that uses tasks and then forks gets no fork-with-threads warning from taskmeter.

On Python 3.12+ ``os.fork()`` in a process with several threads warns
(``DeprecationWarning``: "This process ... is multi-threaded, use of fork()
may lead to deadlocks in the child").  taskmeter's only thread in such a
program, the monitor, is not alive at a fork (see taskmeter.monitor).  The
warning cannot be turned into an error (CPython clears it: the fork has
happened), so the program runs with ``-W always::DeprecationWarning`` and
its standard error is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "tests" / "programs" / "fork_in_tasks.py"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the warning exists from Python 3.12")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_forks_in_and_after_tasks_with_files_do_not_warn_of_taskmeters_threads(
    tmp_path: Path,
) -> None:
    """A fork Pool, a Process and os.fork() inside a task whose file the monitor
    refreshes, and a fork after the tasks: no multi-threaded warning, every worker task
    comes back, and the monitor goes on refreshing after the forks."""
    env = dict(os.environ, TASKMETER_MONITOR_INTERVAL="0.02", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", str(PROGRAM), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "multi-threaded" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["subtasks"] == ["forked", *(f"work {i}" for i in (0, 1, 2, 3, 9))]
    assert report["wakeups_after_forks"] >= 3
