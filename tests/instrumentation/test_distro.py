"""With opentelemetry-distro installed, its configurator sets the SDK up and taskmeter only wraps.

The distro exists only at 0.66b1, which needs opentelemetry-instrumentation
0.66b1 (and so the SDK 1.45.1), while the main test environment has the
0.66b2 set; so this test builds a second virtual environment,
``.venv-distro`` beside the main one (kept between runs, rebuilt when the
requirements below or taskmeter's ``pyproject.toml`` change: its entry
points are recorded at install time), with taskmeter and
``opentelemetry-distro[otlp]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter import attributes as attr

from ..collector import IN_CI, CollectorUnderTest, OtlpSink, attributes_of, wait_until
from ..export.servers import closed_port
from .runner import BIN, ROOT, run_instrumented_program

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
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    wanted = "\n".join([*REQUIREMENTS, f"# pyproject.toml {project}"]) + "\n"
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
    ran = run_instrumented_program(
        ["-c", SCRIPT],
        {
            "OTEL_SERVICE_NAME": "distro-e2e",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.grpc_endpoint,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "no_proxy": "127.0.0.1,localhost",
        },
        bin_dir=venv / "bin",
        timeout=120,
    )
    assert "Overriding of current" not in ran.stderr
    assert "already loaded" not in ran.stderr  # no second configurator
    found = ran.found
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


BURST = """
import json
from opentelemetry import trace

provider = trace.get_tracer_provider()
processors = provider._active_span_processor._span_processors
tracer = trace.get_tracer("distro-app")
ids = []
for i in range(200):  # far more than the queue holds, as fast as they come
    with tracer.start_as_current_span(f"burst {i}") as span:
        ids.append(format(span.get_span_context().span_id, "016x"))
print(json.dumps({
    "wrapped": [type(p).__name__ for w in processors for p in getattr(w, "processors", ())],
    "ids": ids,
}))
"""


@pytest.mark.slow
def test_distro_with_the_taskmeter_exporter_loses_nothing(
    tmp_path: Path, otlp_sink: OtlpSink
) -> None:
    """The distro's configurator with OTEL_TRACES_EXPORTER=taskmeter and a spool: its batch
    processor is replaced by the durable one, so a burst far larger than the queue, with the
    collector away, is kept whole in the spool; ``taskmeter flush`` delivers every span."""
    venv = distro_venv()
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    env.update(
        OTEL_SERVICE_NAME="distro-durable",
        OTEL_TRACES_EXPORTER="taskmeter",
        OTEL_METRICS_EXPORTER="taskmeter",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        OTEL_BSP_MAX_QUEUE_SIZE="16",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",
        TASKMETER_SPOOL_DIR=str(spool),
        no_proxy="127.0.0.1,localhost",
    )
    result = subprocess.run(
        [str(venv / "bin" / "opentelemetry-instrument"), str(venv / "bin" / "python"), "-c", BURST],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["wrapped"] == ["MeasurementSpanProcessor", "DurableSpanProcessor"]
    assert list(spool.glob("*.traces.otlp"))
    flushed = subprocess.run(
        [str(BIN / "taskmeter"), "flush", str(spool), "--otlp-endpoint", otlp_sink.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in env.items() if not k.startswith("OTEL_")},
    )
    assert flushed.returncode == 0, flushed.stderr
    received = {span.span_id.hex() for span in otlp_sink.spans()}
    assert set(found["ids"]) <= received, f"{len(set(found['ids']) - received)} spans lost"
