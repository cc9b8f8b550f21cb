"""examples/durable_export.py: spans kept through an outage, delivered by `taskmeter flush`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.runner import clean_environment, taskmeter
from tests.collector import OtlpSink
from tests.export.servers import closed_port

ROOT = Path(__file__).resolve().parent.parent


def test_example_spools_while_down_and_flush_delivers(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """No collector: every span waits in the spool (none lost); `taskmeter flush` then
    delivers all 31 of them (a root and 30 steps) to a collector that answers."""
    spool = tmp_path / "spool"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "durable_export.py"),
            "--spool",
            str(spool),
            "--endpoint",
            f"http://127.0.0.1:{closed_port()}",
            "--steps",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment({"TASKMETER_ENERGY": "none"}),
    )
    assert result.returncode == 0, result.stderr
    assert "tasks: 31" in result.stdout
    assert "spans sent: 0, spooled: 31, lost: 0" in result.stdout
    flushed = taskmeter("flush", str(spool), "--otlp-endpoint", otlp_sink.endpoint)
    assert flushed.returncode == 0, flushed.stderr
    names = [span.name for span in otlp_sink.spans()]
    assert sorted(set(names)) == ["durable pipeline", "step"]
    assert len({span.span_id for span in otlp_sink.spans()}) == 31
