"""The CPU probe: differences of a clock, never negative."""

from __future__ import annotations

from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe


def test_differences_of_user_and_system_time() -> None:
    readings = iter([(10.0, 2.0), (12.5, 2.25)])
    probe = CpuTimeProbe(clock=lambda: next(readings))
    state = probe.begin()
    figures = Figures()
    probe.read(state, figures)
    assert (figures.cpu_user_s, figures.cpu_system_s) == (2.5, 0.25)
    assert figures.cpu_time_s == 2.75


def test_clock_going_backwards_gives_zero_not_negative() -> None:
    readings = iter([(10.0, 2.0), (9.0, 1.0)])
    probe = CpuTimeProbe(clock=lambda: next(readings))
    figures = Figures()
    probe.read(probe.begin(), figures)
    assert (figures.cpu_user_s, figures.cpu_system_s) == (0.0, 0.0)
