"""A second interrupt (a Ctrl-C during the first one's unwinding) at any point of
taskmeter's own code where Python runs signal handlers: no lock stays held, no
task stays running or current.  ``tests/programs/interrupt_everywhere.py`` does
the interrupting, one point per run, in a process of its own (a lock left held
would hang it, which the timeout turns into a failure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = Path(__file__).parent / "programs" / "interrupt_everywhere.py"

BEGIN_STEPS = {"open", "begin", "begin_probes", "start"}
"""Where an interrupt may still leave a peak tracker open: between a probe's
opening of its tracker and the task's keeping of the probe's state.  Such a
tracker belongs to no task; later resets fold into it (an int each), nothing
else."""


def test_an_interrupt_at_any_point_leaves_no_lock_held_and_no_task_running() -> None:
    result = subprocess.run(
        [sys.executable, str(PROGRAM)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    if "unsupported" in outcome:
        pytest.skip(outcome["unsupported"])
    assert "lock held after" not in outcome, outcome
    # Two nested tasks' start and finish pass through a couple of hundred points.
    assert outcome["runs"] >= 150, outcome
    leftovers = outcome["leftovers"]
    assert set(leftovers) <= {"tracker left open"}, leftovers
    steps = {where.rsplit(" ", 1)[1] for where in leftovers.get("tracker left open", [])}
    assert steps <= BEGIN_STEPS, steps
