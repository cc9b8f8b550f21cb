"""A second interrupt (a Ctrl-C during the first one's unwinding) at any point of
taskmeter's own code where Python runs signal handlers: no lock stays held, and no
task stays running or current but at the windows Python leaves open.
``tests/programs/interrupt_everywhere.py`` does the interrupting, one point per run,
in a process of its own (a lock left held would hang it, which the timeout turns
into a failure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = Path(__file__).parent / "programs" / "interrupt_everywhere.py"

TRACKER_WINDOWS = {
    "open",
    "begin",
    "begin_probes",
    "start",
    "finish_probes ENTRY",
    "__exit__ ENTRY",
}
"""Where an interrupt may still leave a peak tracker open: between a probe's opening
of its tracker and the task's keeping of the probe's state, at the entry of
``finish_probes`` and of ``__exit__``.  Such a tracker belongs to no task; later
resets fold into it (an int each), nothing else (the README says so)."""

RUNNING_WINDOWS = {"__exit__ ENTRY"}
"""Where an interrupt leaves the task running and current: at the entry of the ``with``
statement's exit, before any line of taskmeter's runs (the README says so)."""


def test_an_interrupt_at_any_point_leaves_no_lock_held_and_no_task_running() -> None:
    result = subprocess.run(
        [sys.executable, str(PROGRAM)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    if "unsupported" in outcome:
        pytest.skip(outcome["unsupported"])
    assert "lock held after" not in outcome, outcome
    # Two nested tasks' start and finish pass through nearly three hundred points.
    assert outcome["runs"] >= 200, outcome
    leftovers = outcome["leftovers"]
    assert set(leftovers) <= {"tracker left open", "is still running"}, leftovers
    assert _steps(leftovers.get("tracker left open", [])) <= TRACKER_WINDOWS, leftovers
    assert _steps(leftovers.get("is still running", [])) <= RUNNING_WINDOWS, leftovers


def _steps(points: list[str]) -> set[str]:
    """The function of each point (``base.py:88 begin_probes``), with ``ENTRY`` where
    the interrupt came at the function's entry (``task.py __exit__ ENTRY``)."""
    return {
        " ".join(point.split(" ")[1:]) if point.endswith("ENTRY") else point.rsplit(" ", 1)[1]
        for point in points
    }
