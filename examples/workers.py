"""Tasks in worker processes become subtasks of the task that started the workers.

    python examples/workers.py [--out runs/workers.json] [--chunks 4] [--seconds 0.2]

Scores chunks of work in worker processes three ways: a ``fork`` Pool (no
code needed), a ``spawn`` ProcessPoolExecutor (taskmeter's context: one
line) and a ``spawn`` Pool (an initializer given a worker context: one line).
Prints the task tree, the pipeline's own CPU time and ``total_cpu()``, which
adds the workers'.  Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (for instance
``http://127.0.0.1:4318``) to send every span, parent's and workers', to a
collector: one trace.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter import Task, format_tree
from taskmeter.multiprocess import get_context, init_worker, worker_context


def setup_tracing() -> TracerProvider:
    """The OpenTelemetry set-up of the parent, and of each spawned worker."""
    provider = TracerProvider(resource=Resource.create({"service.name": "taskmeter-workers"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def burn_cpu(seconds: float) -> None:
    """Compute for about ``seconds`` of CPU time."""
    deadline = time.process_time() + seconds
    total = 0.0
    while time.process_time() < deadline:
        for i in range(1, 2000):
            total += math.sqrt(i)


def score(chunk: int, seconds: float) -> int:
    """What a worker runs: one task per chunk (a coarse unit of work)."""
    with Task(f"score chunk {chunk}"):
        burn_cpu(seconds)
    return chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/workers.json"))
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0.2, help="CPU seconds per chunk")
    args = parser.parse_args()
    chunks = list(range(args.chunks))
    work = partial(score, seconds=args.seconds)

    provider = setup_tracing()
    spawn = multiprocessing.get_context("spawn")
    with Task("workers pipeline", file=args.out) as pipeline:
        if "fork" in multiprocessing.get_all_start_methods():
            # fork: nothing to add; the workers inherit the task running here.
            fork = multiprocessing.get_context("fork")
            with Task("fork pool"), fork.Pool(2) as pool:
                pool.map(work, chunks)

        # spawn: one line, taskmeter's multiprocessing context.
        with (
            Task("spawn executor"),
            ProcessPoolExecutor(
                2, mp_context=get_context("spawn"), initializer=setup_tracing
            ) as executor,
        ):
            list(executor.map(work, chunks))

        # spawn: or one line, an initializer given a worker context.
        with (
            Task("spawn pool"),
            spawn.Pool(
                2, initializer=init_worker, initargs=(worker_context(), setup_tracing)
            ) as pool,
        ):
            pool.map(work, chunks)
    provider.shutdown()

    print(format_tree(pipeline))
    print(f"\npipeline CPU time, this process: {pipeline.cpu_time:.2f} s")
    print(f"total_cpu(), with the workers:   {pipeline.total_cpu():.2f} s")
    print(f"task file: {args.out}  (trace {pipeline.trace_id})")


if __name__ == "__main__":
    main()
