"""With opentelemetry-distro installed, its configurator sets the SDK up and taskmeter only wraps.

The distro exists only at 0.66b1, which needs opentelemetry-instrumentation
0.66b1 (and so the SDK 1.45.1), while the main test environment has the
0.66b2 set; so this test builds a second virtual environment,
``.venv-distro`` beside the main one (kept between runs, rebuilt when the
requirements below change), with taskmeter and ``opentelemetry-distro[otlp]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter import attributes as attr

from ..collector import IN_CI, CollectorUnderTest, attributes_of, wait_until

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-distro"
REQUIREMENTS = ["opentelemetry-distro[otlp]==0.66b1"]
STAMP = VENV / "taskmeter-requirements.txt"

SCRIPT = """
import json, time
from importlib.metadata import version
from opentelemetry import trace
from taskmeter import Task

provider = trace.get_tracer_provider()
processors = provider._active_span_processor._span_processors
tracer = trace.get_tracer("distro-app")
with tracer.start_as_current_span("distro request"):
    with Task("distro task"):
        deadline = time.thread_time() + 0.2
        while time.thread_time() < deadline:
            pass
print(json.dumps({
    "top": [type(p).__name__ for p in processors],
    "wrapped": [type(p).__name__ for w in processors for p in getattr(w, "processors", ())],
    "versions": {name: version(name) for name in (
        "opentelemetry-sdk", "opentelemetry-instrumentation", "opentelemetry-distro")},
}))
"""


def distro_venv() -> Path:
    """The environment with the distro; built (about a minute) when missing or outdated."""
    wanted = "\n".join(REQUIREMENTS) + "\n"
    python = VENV / "bin" / "python"
    if python.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return VENV
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), *REQUIREMENTS],
            check=True,
            timeout=600,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        message = f"cannot build {VENV}: {exc.stderr or exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    STAMP.write_text(wanted)
    return VENV


@pytest.mark.slow
def test_distro_configures_and_taskmeter_enriches(rotel_collector: CollectorUnderTest) -> None:
    """One configurator (the distro's), one exporting processor, wrapped; spans enriched."""
    venv = distro_venv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    env.update(
        OTEL_SERVICE_NAME="distro-e2e",
        OTEL_EXPORTER_OTLP_ENDPOINT=rotel_collector.grpc_endpoint,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="none",
        no_proxy="127.0.0.1,localhost",
    )
    result = subprocess.run(
        [
            str(venv / "bin" / "opentelemetry-instrument"),
            str(venv / "bin" / "python"),
            "-c",
            SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Overriding of current" not in result.stderr
    assert "already loaded" not in result.stderr  # no second configurator
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["versions"] == {
        "opentelemetry-sdk": "1.45.1",
        "opentelemetry-instrumentation": "0.66b1",
        "opentelemetry-distro": "0.66b1",
    }
    assert found["top"] == ["EnrichingSpanProcessor"]
    assert found["wrapped"] == ["MeasurementSpanProcessor", "BatchSpanProcessor"]
    sink = rotel_collector.sink
    assert wait_until(lambda: bool(sink.spans("distro request")), timeout=20)
    (span,) = sink.spans("distro request")
    figures = attributes_of(span.attributes)
    assert figures[attr.CPU_THREAD] >= 0.2
    assert attr.MEMORY_PEAK in figures
    assert wait_until(lambda: bool(sink.metric_points("taskmeter.task.cpu.time")), timeout=20)
    (point,) = sink.metric_points("taskmeter.task.cpu.time")
    assert point.resource["telemetry.auto.version"] == "0.66b1"  # set by the distro's configurator
