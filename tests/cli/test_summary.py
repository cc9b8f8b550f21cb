"""The summary ``taskmeter run`` prints: what its CPU figures are averaged over."""

from __future__ import annotations

import re

from taskmeter.cli._runfigures import RunFigures
from taskmeter.cli._summary import summary_lines


def _cpu_line(duration_s: float, cpu_s: float, span_s: float) -> str:
    figures = RunFigures(["sh", "-c", "python3 b.py & exit 0"], 1)
    figures.duration_s = duration_s
    figures.cpu_user_s = cpu_s
    figures.cpu_span_s = span_s
    (line,) = [
        line for line in summary_lines(figures, sample_interval_s=0.1) if "CPU time, total" in line
    ]
    return line


def test_cores_busy_is_over_the_wall_time_when_nothing_ended_after_the_command() -> None:
    line = _cpu_line(2.0, 3.0, 2.0)
    assert line.endswith("1.50 cores busy on average over the wall time")


def test_cores_busy_covers_processes_that_ended_after_the_command() -> None:
    """CPU time of a process the command left, which ended in the grace after it, is
    averaged over the time up to that end, not over the command's shorter wall time."""
    line = _cpu_line(0.08, 0.216, 0.3)
    assert line.endswith(
        "0.72 cores busy on average over 0.300 s, until the last process counted ended"
    )
    busy = float(re.findall(r"([\d.]+) cores busy", line)[0])
    assert busy <= 1.0  # the work of one single-threaded process
