"""A small web service measured by taskmeter under ``opentelemetry-instrument``, no code change.

    pip install 'taskmeter[instrument]' opentelemetry-instrumentation-fastapi fastapi uvicorn
    OTEL_SERVICE_NAME=scoring OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
    TASKMETER_METRIC_SPECS=examples/web_app_metrics.toml \\
        opentelemetry-instrument python examples/web_app.py --port 8000
    curl 'http://127.0.0.1:8000/score?cpu_ms=300&mib=64'

Add ``TASKMETER_SPOOL_DIR=/var/spool/scoring`` and nothing is lost while the
collector is away: spans and metrics wait in that directory and are sent
when it answers again.

Ctrl-C (``SIGINT``) or ``SIGTERM`` (``kill``, systemd, a container runtime)
stops the server gracefully, and what the process had not exported yet is
exported (or spooled) on the way out.  The exit status is 0 after ``SIGINT``
(uvicorn's) and 143 after ``SIGTERM`` (128 + 15, what a shell reports for a
process that ``SIGTERM`` ended).

Nothing below mentions OpenTelemetry: the FastAPI instrumentation makes a
server span per request, and taskmeter's instrumentor enriches it (a local
root) with the request's CPU time (process and thread), peak memory and
energy.  Code that already uses taskmeter keeps doing so: the ``score
batch`` task is a child span of the request with its own figures, and the
timed ``score_batch`` call becomes the Measurement the spec file names.
Both are recorded as metrics (``taskmeter.task.*`` and
``webapp.scorecputime``) and exported with the spans.
"""

from __future__ import annotations

import argparse
import math
import signal
import time
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from taskmeter import Task, time_method

app = FastAPI(title="taskmeter example: scoring service")


@time_method
def score_batch(cpu_ms: int, mib: int) -> float:
    """Score a batch: hold ``mib`` MiB and compute for ``cpu_ms`` ms of CPU time."""
    block = bytearray(mib * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1  # make every page resident
    deadline = time.thread_time() + cpu_ms / 1000
    total = 0.0
    while time.thread_time() < deadline:
        for i in range(1, 1000):
            total += math.sqrt(i)
    return total + len(block)


@app.get("/score")
async def score(cpu_ms: int = 100, mib: int = 0) -> dict[str, Any]:
    """Run one scoring task; answer with the task's own figures."""
    with Task("score batch") as task:
        result = score_batch(cpu_ms, mib)
    return {
        "result": result,
        "task_id": str(task.task_id),
        "cpu_time": task.cpu_time,
        "peak_memory": task.peak_memory,
        "duration": task.duration,
    }


@app.get("/health")
async def health() -> dict[str, str]:
    """Answer quickly (its span is enriched too: every request is a local root)."""
    return {"status": "ok"}


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """End the program as ``sys.exit`` does, so that its exit hooks run."""
    raise SystemExit(128 + signum)


def exit_cleanly_on_sigterm() -> None:
    """Make ``SIGTERM`` end the program through ``SystemExit`` rather than at once.

    The default action of ``SIGTERM`` ends the process before Python's exit
    hooks run, and those export the spans and metrics still in memory.
    uvicorn catches ``SIGTERM`` while it serves, shuts down gracefully, puts
    the previous handler back and raises the signal again: into this
    handler, which exits with status 143.  A handler someone already
    installed is kept.
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or ``SIGTERM``; what is left is exported at exit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
