"""The example web app under ``opentelemetry-instrument`` with ``TASKMETER_SPOOL_DIR`` set: the
collector is down when the app starts and serves its first requests, then comes up; every span
the app made arrives, with no restart and no code change.

Ground truth: the app also prints every span it ends (``OTEL_TRACES_EXPORTER=otlp,console``:
the console exporter beside the OTLP one), so the test knows each span id the app made and
counts the unique span ids that reached the sink behind a real rotel collector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..collector import OtlpSink, RotelCollector, free_port, wait_until
from .test_web_app_e2e import _app_ready, _stop, get_json

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOWN_REQUESTS = 30
UP_REQUESTS = 6
QUEUE = 64
"""Spans held in memory (the SDK's ``OTEL_BSP_MAX_QUEUE_SIZE``, which taskmeter's processor
honours too): the outage makes more spans than that (5 per request), as any outage longer
than a few seconds does at the default 2048, so whatever does not go to disk is lost."""


def printed_span_ids(text: str) -> dict[str, str]:
    """Span id -> name of every span the console exporter printed (JSON objects, one after
    another)."""
    decoder = json.JSONDecoder()
    found: dict[str, str] = {}
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return found
        document: Any
        document, position = decoder.raw_decode(text, start)
        found[document["context"]["span_id"].removeprefix("0x")] = document["name"]


def arrived(sink: OtlpSink) -> dict[str, str]:
    return {span.span_id.hex(): span.name for span in sink.spans()}


@pytest.mark.slow
def test_every_span_of_an_instrumented_app_survives_a_collector_outage(tmp_path: Path) -> None:
    """Spans and metrics made while the collector was down wait in the spool and arrive once
    it is up: every span id the app printed is at the sink; the task metric counts every
    request."""
    sink = OtlpSink().start()
    collector = RotelCollector(sink.endpoint, tmp_path / "rotel")
    collector.grpc_port, collector.http_port = free_port(), free_port()
    spool = tmp_path / "spool"
    app: subprocess.Popen[bytes] | None = None
    try:
        app_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
        env.update(
            OTEL_SERVICE_NAME="scoring-outage",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc_endpoint,  # nothing listens there yet
            OTEL_TRACES_EXPORTER="otlp,console",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_METRIC_EXPORT_INTERVAL="300",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_BSP_MAX_QUEUE_SIZE=str(QUEUE),
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",
            TASKMETER_SPOOL_DIR=str(spool),
            TASKMETER_ENERGY="none",
            no_proxy="127.0.0.1,localhost",
            NO_PROXY="127.0.0.1,localhost",
        )
        stdout, stderr = tmp_path / "app.out", tmp_path / "app.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            app = subprocess.Popen(
                [
                    str(BIN / "opentelemetry-instrument"),
                    sys.executable,
                    str(ROOT / "examples" / "web_app.py"),
                    "--port",
                    str(app_port),
                ],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        base = f"http://127.0.0.1:{app_port}"
        ready = wait_until(lambda: app.poll() is not None or _app_ready(f"{base}/health"), 60)
        assert ready and app.poll() is None, f"the app did not start: {stderr.read_text()}"
        for _ in range(DOWN_REQUESTS):
            get_json(f"{base}/score?cpu_ms=5&mib=1")
        assert wait_until(lambda: any(spool.glob("*.traces.otlp")), 20), stderr.read_text()
        assert wait_until(lambda: any(spool.glob("*.metrics.otlp")), 20), stderr.read_text()
        assert sink.spans() == []

        collector.start(same_ports=True)
        for _ in range(UP_REQUESTS):
            get_json(f"{base}/score?cpu_ms=5&mib=1")
        requests = DOWN_REQUESTS + UP_REQUESTS
        # Delivered while the app runs: the spool is replayed once the collector answers.
        assert wait_until(
            lambda: list(arrived(sink).values()).count("score batch") == requests, 60
        ), f"{len(arrived(sink))} spans; app: {stderr.read_text()[-2000:]}"

        def counted() -> float:
            points = sink.metric_points("taskmeter.task.cpu.time")
            return max((p.point.count for p in points), default=0)

        assert wait_until(lambda: counted() == requests, 30)
    finally:
        if app is not None:
            _stop(app)
        collector.stop()
    try:
        made = printed_span_ids(stdout.read_text())
        assert list(made.values()).count("GET /score") == DOWN_REQUESTS + UP_REQUESTS
        assert wait_until(lambda: set(arrived(sink)) >= set(made), 10)
        received = arrived(sink)
        missing = {span_id: made[span_id] for span_id in set(made) - set(received)}
        assert not missing, f"{len(missing)} of {len(made)} spans lost: {missing}"
        total = len(sink.spans())
        print(
            f"\nspans made {len(made)}, unique at the sink {len(received)}, "
            f"received {total} (duplicates {total - len(received)})"
        )
        assert not any(spool.glob("*.otlp")), "everything was delivered and removed"
    finally:
        sink.stop()
