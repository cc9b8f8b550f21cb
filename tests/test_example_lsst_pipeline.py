"""examples/lsst_pipeline.py runs as documented and its Measurements reach a collector."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from .collector import CollectorUnderTest, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_lsst_pipeline_example_exports_measurements(
    rotel_collector: CollectorUnderTest, tmp_path: Path
) -> None:
    """The collector receives each spec's histogram (3 calls, last-call values match the
    metadata file), the task metrics and the spans; ``taskmeter measure`` agrees."""
    metadata_file = tmp_path / "ccdProcessor_metadata.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "lsst_pipeline.py"),
            "--otlp-endpoint",
            rotel_collector.grpc_endpoint,
            "--metadata-out",
            str(metadata_file),
            "--pixels",
            "50000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "ip_isr.IsrCpuTime = " in result.stdout
    sink = rotel_collector.sink
    names = ("pipe_tasks.processccdtime", "ip_isr.isrcputime", "ip_isr.isrmemory")
    assert wait_until(lambda: all(sink.metric_points(n) for n in names), timeout=15), (
        rotel_collector.collector.log_tail()
    )
    assert wait_until(lambda: len(sink.spans("IsrTask.run")) == 3, timeout=15)

    measured = subprocess.run(
        [sys.executable, "-m", "taskmeter", "measure", str(metadata_file),
         "--cpu-timing", "isr.run", "ip_isr.IsrCpuTime"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (last_call,) = json.loads(measured.stdout)
    metadata = json.loads(metadata_file.read_text())
    isr = metadata["ccdProcessor:isr"]
    assert len(isr["runStartCpuTime"]) == 3
    assert last_call["value"] == isr["runEndCpuTime"][-1] - isr["runStartCpuTime"][-1]

    (cpu,) = sink.metric_points("ip_isr.isrcputime")
    assert cpu.point.count == 3
    per_call = [e - s for s, e in zip(isr["runStartCpuTime"], isr["runEndCpuTime"], strict=True)]
    assert cpu.point.sum == pytest.approx(sum(per_call), rel=1e-12)
    assert cpu.point.max == max(per_call)
    assert cpu.resource["service.name"] == "lsst-pipeline-example"
    assert sink.metric_points("taskmeter.task.duration")

    # Every spec's histogram: the README's name (lowercased by the SDK), unit and values.
    ccd = metadata["ccdProcessor"]
    walls = [
        (datetime.fromisoformat(e) - datetime.fromisoformat(s)).total_seconds()
        for s, e in zip(ccd["runDataRefStartUtc"], ccd["runDataRefEndUtc"], strict=True)
    ]
    expected = {
        "pipe_tasks.processccdtime": ("s", walls, "ccdProcessor.runDataRef"),
        "ip_isr.isrcputime": ("s", per_call, "isr.run"),
        "ip_isr.isrmemory": ("By", isr["runEndMaxResidentSetSize"], "isr.run"),
    }
    for name, (unit, values, target) in expected.items():
        (point,) = sink.metric_points(name)
        assert (point.kind, point.unit, point.point.count) == ("histogram", unit, 3), name
        assert point.point.sum == pytest.approx(sum(values), rel=1e-9), name
        assert point.point.max == pytest.approx(max(values), rel=1e-9), name
        assert point.attributes["taskmeter.metric.target"] == target
        assert point.attributes["taskmeter.task.label"] == "process visit"
    printed = dict(line.split(" = ") for line in result.stdout.splitlines() if " = " in line)
    assert printed == {
        "pipe_tasks.ProcessCcdTime": f"{walls[-1]:.6g} s",
        "ip_isr.IsrCpuTime": f"{per_call[-1]:.6g} s",
        "ip_isr.IsrMemory": f"{isr['runEndMaxResidentSetSize'][-1]:.6g} By",
    }


def test_readme_timer_example_runs() -> None:
    """The README's timer snippet runs and prints a Measurement."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in readme.split("```python\n")[1:] if "MeasurementSpanProcessor(specs)" in b]
    assert len(blocks) == 1
    code = blocks[0].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Measurement(metric='ip_isr.IsrCpuTime'" in result.stdout
