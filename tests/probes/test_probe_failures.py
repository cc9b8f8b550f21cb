"""A failing probe never reaches the application; the other figures survive."""

from __future__ import annotations

from typing import Any

import pytest

import taskmeter
from taskmeter import Task, _log
from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe, Probe


class BrokenProbe(Probe):
    name = "broken"

    def __init__(self, fail_in: str) -> None:
        self.fail_in = fail_in

    def begin(self, *, reset_peak: bool = True) -> Any:
        if self.fail_in == "begin":
            raise OSError("device unplugged")
        return None

    def read(self, state: Any, figures: Figures) -> None:
        if self.fail_in == "read":
            raise RuntimeError("driver error")

    def end(self, state: Any) -> None:
        if self.fail_in == "end":
            raise ValueError("bad handle")


@pytest.mark.parametrize("fail_in", ["begin", "read", "end"])
def test_failing_probe_is_counted_and_task_keeps_other_figures(
    fail_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    taskmeter.set_probes([BrokenProbe(fail_in), CpuTimeProbe()])
    with Task("survives") as task:
        pass
    assert task.status.value == "finished"
    assert task.cpu_time is not None
    assert _log.error_counts[f"probe.broken.{fail_in}"] == 1
    assert "probe.broken" in caplog.text


def test_repeated_failures_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    taskmeter.set_probes([BrokenProbe("read")])
    for _ in range(50):
        with Task("again"):
            pass
    assert _log.error_counts["probe.broken.read"] == 50
    assert caplog.text.count("probe.broken.read") == 1


def test_set_probes_rejects_non_probes() -> None:
    with pytest.raises(TypeError, match="not a taskmeter probe"):
        taskmeter.set_probes([object()])  # type: ignore[list-item]


class FlakyEnergyProbe(Probe):
    """Gives an energy figure on the first read only."""

    name = "flaky-energy"

    def __init__(self) -> None:
        self.reads = 0

    def begin(self, *, reset_peak: bool = True) -> Any:
        return None

    def read(self, state: Any, figures: Figures) -> None:
        self.reads += 1
        if self.reads == 1:
            figures.set_energy("cpu", 5.0, "fake")
        else:
            raise OSError("counter vanished")


def test_energy_lost_at_the_end_is_absent_not_stale() -> None:
    taskmeter.set_probes([FlakyEnergyProbe()])
    with Task("refreshed then failed") as task:
        task.update()
        assert task.cpu_power == 5.0
    assert task.cpu_power is None
    assert task.energy_sources == {}
