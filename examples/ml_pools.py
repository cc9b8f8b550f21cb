"""Tasks in the workers of joblib and of a PyTorch DataLoader, subtasks of the caller's task.

    python examples/ml_pools.py [--out runs/ml_pools.json] [--items 4] [--seconds 0.1]

joblib's default backend (loky) keeps its worker processes between calls and
starts them as fresh interpreters: wrap the function with ``with_parent`` and
each call reports to the task current where it was wrapped (the same wrapper
serves joblib's threading backend).  Give loky's workers your OpenTelemetry
set-up through ``parallel_config(initializer=...)``.  A DataLoader's workers
(``fork`` on Linux) need nothing: a task in the dataset's ``__getitem__`` is a
subtask of the task that iterates the loader.  Needs joblib and torch.
Prints the tree, the pipeline's own CPU time and ``total_cpu()``, which adds
the workers'.  Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (for instance
``http://127.0.0.1:4318``) to send every span to a collector: one trace.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from joblib import Parallel, delayed, parallel_config
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter import Task, format_tree
from taskmeter.multiprocess import with_parent


def setup_tracing() -> None:
    """The OpenTelemetry set-up of the parent, and of each loky worker."""
    provider = TracerProvider(resource=Resource.create({"service.name": "taskmeter-ml"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def burn_cpu(seconds: float) -> None:
    """Compute until this process has used ``seconds`` more CPU time."""
    deadline = time.process_time() + seconds
    total = 0
    while time.process_time() < deadline:
        for i in range(2000):
            total += i * i


def score(chunk: int, seconds: float) -> int:
    """One chunk of work, measured as a task (in a worker process or thread)."""
    with Task(f"score chunk {chunk}"):
        burn_cpu(seconds)
    return chunk


class Images:
    """A map-style dataset whose items are measured as tasks in the loader's workers."""

    def __init__(self, items: int, seconds: float) -> None:
        self.items = items
        self.seconds = seconds

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int) -> int:
        with Task(f"decode image {index}"):
            burn_cpu(self.seconds)
        return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ml_pools.json"))
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0.1)
    args = parser.parse_args()
    setup_tracing()
    chunks = range(args.items)
    with Task("ml pipeline") as pipeline:
        # loky: reused worker processes; the initializer sets up OpenTelemetry there.
        with parallel_config("loky", initializer=setup_tracing), Task("joblib loky"):
            scored = with_parent(score)  # reports to "joblib loky"
            Parallel(n_jobs=2)(delayed(scored)(c, args.seconds) for c in chunks)
        with Task("joblib threads"):
            scored = with_parent(score)  # reports to "joblib threads"
            Parallel(n_jobs=2, backend="threading")(delayed(scored)(c, 0.0) for c in chunks)
        from torch.utils.data import DataLoader

        loader = DataLoader(Images(args.items, args.seconds), batch_size=2, num_workers=2)
        for epoch in (1, 2):
            with Task(f"epoch {epoch}"):  # its workers are forked as the loop starts
                for _batch in loader:
                    pass
    pipeline.save_to_file(args.out)
    print(format_tree(pipeline))
    print(
        f"own CPU {pipeline.cpu_time:.2f} s; total_cpu(), with the workers, "
        f"{pipeline.total_cpu():.2f} s"
    )
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
