"""Measurements of timed methods against what the methods are known to cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import MIB

PROGRAM = Path(__file__).resolve().parent.parent / "programs" / "measured_isr.py"


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_measurements_of_known_costs() -> None:
    """In a fresh process: the Timing of a 0.3 s sleep, the CpuTiming of 0.4 s of CPU
    burnt, and the Memory of a method that writes 256 MiB (its peak RSS: the RSS before
    it plus 256 MiB, within 5 %) are right, in ``s`` and ``By``, and the span processor
    records exactly the values the metadata gives."""
    # Through a shell that forks it: a child forked by this (large) process would start
    # with this process's peak as its ru_maxrss, the shell's is a few MiB.
    result = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit "$?"', "sh", sys.executable, str(PROGRAM)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    measured = report["measured"]
    sleep = measured["ip_isr.SleepTime"]
    burn = measured["ip_isr.BurnCpuTime"]
    memory = measured["ip_isr.AllocateMemory"]

    assert 0.3 <= sleep["value"] < 1.0  # a wall-clock sleep: a loaded machine adds to it
    assert 0.4 <= burn["value"] < 0.44
    expected_peak = report["rss_before"] + 256 * MIB
    assert report["peak_before"] < expected_peak - 128 * MIB, "the allocation sets the peak"
    assert memory["value"] == pytest.approx(expected_peak, rel=0.05)
    assert memory["value"] >= expected_peak - MIB  # the RSS cannot have shrunk
    assert (sleep["unit"], burn["unit"], memory["unit"]) == ("s", "s", "By")

    recorded = report["recorded"]
    for name, measurement in measured.items():
        assert recorded[name.lower()] == {
            "unit": measurement["unit"],
            "sum": measurement["value"],
            "count": 1,
        }
