"""A real collector goes away in the middle of thousands of tasks: every span still arrives,
and the program's memory stays bounded while it is away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.collector import CollectorUnderTest, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

PROGRAM = Path(__file__).resolve().parent / "programs" / "load_tasks.py"
ROOT = Path(__file__).resolve().parents[2]
BEFORE, OUTAGE, AFTER = 2_000, 12_000, 2_000
RSS_GROWTH_LIMIT = 16 * 1024 * 1024
"""The bound on peak RSS growth while the collector is down: the processor's queue holds at
most 2048 spans (about 7 MiB of task spans); the 12,000 spans of the outage, held in
memory, take about 40 MiB (3.4 KiB each, measured with this program's tasks)."""


def read_report(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the program ended early: {process.stderr.read() if process.stderr else ''}"
    return dict(json.loads(line))


def test_collector_restart_loses_no_span_and_memory_stays_bounded(
    rotel_collector: CollectorUnderTest, tmp_path: Path
) -> None:
    """16,000 tasks, 12,000 of them while rotel is stopped: every task span arrives at the sink
    once the collector is back (unique span ids); the program's peak RSS grows by less than
    16 MiB during the outage, where the 12,000 spans, were they held in memory, would take
    about 40 MiB (the queue holds at most 2048; the rest goes to the spool on disk)."""
    sink = rotel_collector.sink
    collector = rotel_collector.collector
    ids_file = tmp_path / "ids.txt"
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    env["TASKMETER_ENERGY"] = "none"
    env["PYTHONPATH"] = str(ROOT / "src")
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROGRAM),
            collector.http_endpoint,
            str(spool),
            str(ids_file),
            str(BEFORE),
            str(OUTAGE),
            str(AFTER),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        before = read_report(process)
        ids = lambda: {line for line in ids_file.read_text().split() if line}  # noqa: E731
        first = ids()
        assert len(first) == BEFORE
        # Stop the collector once it has forwarded what it accepted (data a collector
        # loses on shutdown is the collector's to keep, not the exporter's).
        received = lambda: {s.span_id.hex() for s in sink.spans()}  # noqa: E731
        assert wait_until(lambda: received() >= first, 30)
        collector.stop()

        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        outage = read_report(process)
        time.sleep(0.5)  # the collector stays down a little longer
        collector.start(same_ports=True)
        process.stdin.write("go\n")
        process.stdin.flush()
        after = read_report(process)
        assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    every = ids()
    assert len(every) == BEFORE + OUTAGE + AFTER
    assert wait_until(lambda: received() >= every, 60), (
        f"{len(every - received())} span(s) missing at the sink"
    )
    lost = len(every - received())
    print(
        f"\ntasks {len(every)}, spans lost {lost}, during the outage: peak RSS growth "
        f"{outage['growth'] / 2**20:.1f} MiB (start {outage['start_rss'] / 2**20:.1f} MiB), "
        f"spooled {outage['spooled']} spans ({outage['spool_bytes'] / 2**20:.1f} MiB on disk), "
        f"spilled by the task thread {outage['spilled']}; replayed {after['replayed']}"
    )
    assert lost == 0
    assert before["lost"] == outage["lost"] == after["lost"] == 0
    assert after["dropped"] == 0
    assert outage["spooled"] >= OUTAGE
    assert after["delivered"] is True
    assert outage["growth"] < RSS_GROWTH_LIMIT
    assert not any(spool.glob("*.otlp")), "the spool is empty once everything is delivered"
