"""What a task costs in a worker process, against the same task nested in a worker's task.

    python bench/bench_workers.py [--quick]

In one forked pool worker (the same process for every figure), prints the
cost per task of

* ``nested``: a task inside a worker's task (nothing crosses processes),
* ``top-level``: a worker's top-level task, whose record is written for the
  parent (no OpenTelemetry SDK: nothing to flush),
* ``top-level, no journal``: the same without the journal line a worker
  writes as the task starts (so that the parent can tell a task lost with
  its worker),
* ``top-level + OTLP``: the same with a BatchSpanProcessor exporting over
  OTLP/HTTP to a local endpoint, flushed before each record is delivered;
* ``top-level + durable``: the same with taskmeter's DurableSpanProcessor and
  DurableSpanExporter (a spool in a temporary directory), which in a worker
  writes each flushed batch to the spool and sends it from there;
* ``... network first``: the durable pair with ``spool_first=False``, which
  sends each flushed batch before the record is delivered.

Rounds alternate and the median round is reported.
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence

import taskmeter
from taskmeter import Task, propagation


class _Accept(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def per_task_us(kind: str, endpoint: str, n: int) -> float:
    """In the worker: microseconds per task of ``kind``."""
    provider = None
    spool = tempfile.mkdtemp(prefix="bench-workers-spool-")
    if kind == "top-level + OTLP":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif kind.startswith("top-level + durable"):
        from opentelemetry.sdk.trace import TracerProvider

        from taskmeter.export import DurableSpanExporter, DurableSpanProcessor

        exporter = DurableSpanExporter(spool, endpoint=endpoint)
        provider = TracerProvider()
        provider.add_span_processor(
            DurableSpanProcessor(exporter, spool_first=not kind.endswith("network first"))
        )
    taskmeter.use_tracer_provider(provider)
    note_start, note_delivered = propagation._note_start, propagation._note_delivered
    if kind == "top-level, no journal":
        propagation._note_start = propagation._note_delivered = lambda directory, task: None
    try:
        if kind == "nested":
            with Task("worker root"):
                start = time.perf_counter()
                for _ in range(n):
                    with Task("task"):
                        pass
                return (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        for _ in range(n):
            with Task("task"):
                pass
        return (time.perf_counter() - start) / n * 1e6
    finally:
        propagation._note_start, propagation._note_delivered = note_start, note_delivered
        taskmeter.use_tracer_provider(None)
        if provider is not None:
            provider.shutdown()
        shutil.rmtree(spool, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args(argv)
    n, rounds = (100, 3) if args.quick else (500, 7)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    kinds = (
        "nested",
        "top-level",
        "top-level, no journal",
        "top-level + OTLP",
        "top-level + durable",
        "top-level + durable, network first",
    )
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        with Task("parent"), multiprocessing.get_context("fork").Pool(1) as pool:
            for _ in range(rounds):
                for kind in kinds:
                    figures[kind].append(pool.apply(per_task_us, (kind, endpoint, n)))
    finally:
        server.shutdown()
        server.server_close()

    print(f"taskmeter {taskmeter.__version__}: cost per task in a forked worker")
    print(f"(median of {rounds} rounds of {n} tasks)")
    base = statistics.median(figures["nested"])
    for kind in kinds:
        cost = statistics.median(figures[kind])
        print(f"{kind:34} {cost:8.1f}us  (+{cost - base:7.1f}us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
