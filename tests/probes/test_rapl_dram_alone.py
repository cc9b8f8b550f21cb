"""The CPU energy figure of DRAM zones alone is named ``rapl-dram``, as the README says."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskmeter
from taskmeter import Task
from taskmeter.probes import CpuTimeProbe, RaplProbe
from tests.fakes import FakePowercap


def test_dram_without_packages_is_the_cpu_figure_named_rapl_dram(tmp_path: Path) -> None:
    """DRAM zones read without their package zones give the CPU figure, sourced
    ``rapl-dram`` (not ``rapl``, which names the packages)."""
    powercap = FakePowercap(tmp_path / "sys")
    package = powercap.zone("intel-rapl:0", "package-0")
    dram = powercap.zone("intel-rapl:0:2", "dram")
    taskmeter.set_probes([CpuTimeProbe(), RaplProbe(powercap.root, ("dram",))])
    with Task("dram only") as task:
        package.advance(40.0)  # not asked for
        dram.advance(8.0)
    assert task.cpu_power == pytest.approx(8.0, abs=1e-6)
    assert task.energy_sources == {"cpu": "rapl-dram"}
