"""What a task runs, in instructions, against a bare OpenTelemetry SDK span (callgrind).

    python bench/bench_task_instructions.py [--cache] [--counts 1000 3000]

Time on a shared or virtual machine drifts from one second to the next;
the instructions a loop runs do not.  This runs the same three loops as
``bench_task.py``'s ``sdk-min`` set-up, each in its own process under
valgrind's callgrind:

* ``bare``: ``with tracer.start_as_current_span(...)`` under a root span,
  carrying a task span's twelve attributes (set in one call),
* ``top-level``: ``with Task(...)``, each task a root of its own,
* ``nested``: ``with Task(...)`` under one root task, which keeps them,

each at two iteration counts; the difference between the two runs, divided
by the difference in iterations, is what one iteration runs (start-up,
imports and warm-up cancel out).  It prints the instructions per iteration
and their ratio to the bare span.  With ``--cache`` callgrind also simulates
the caches and branch predictor (a model of a CPU, not this one): first-level
instruction and data cache misses and mispredicted branches per iteration,
which is where a task's time goes beyond its instructions.

The kernel's side of a system call is not counted: a task's three (two
``getrusage``, the ``clear_refs`` write of the peak-memory reset) show in
``bench_task.py``'s floor column instead.  Needs valgrind (Debian package
``valgrind``); ``PYTHONHASHSEED=0`` makes the runs repeatable.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

LOOP = r"""
import sys
sys.path.insert(0, {bench!r})
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from _sdk import DropExporter
import taskmeter
from taskmeter import Task

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
taskmeter.use_tracer_provider(provider)
tracer = provider.get_tracer("bench")
mode, count = sys.argv[1], int(sys.argv[2])


class Keep(SimpleSpanProcessor):
    last = None

    def on_end(self, span):
        if span.name == "bench task":
            Keep.last = dict(span.attributes or {{}})


provider.add_span_processor(Keep(DropExporter()))
with Task("bench root"), Task("bench task"):
    pass
processors = provider._active_span_processor
processors._span_processors = processors._span_processors[:-1]
attributes = Keep.last

for _ in range(200):  # warm-up: the probes are detected, the caches filled
    with Task("bench task"):
        pass
if mode == "bare":
    with tracer.start_as_current_span("bench root"):
        for _ in range(count):
            with tracer.start_as_current_span("bench task") as span:
                span.set_attributes(attributes)
elif mode == "nested":
    with Task("bench root"):
        for _ in range(count):
            with Task("bench task"):
                pass
else:
    for _ in range(count):
        with Task("bench task"):
            pass
"""

EVENTS = {
    "I   refs": "instructions",
    "I1  misses": "I1 misses",
    "D1  misses": "D1 misses",
    "Mispredicts": "mispredicted branches",
}


def run_loop(script: Path, mode: str, count: int, cache: bool, scratch: Path) -> dict[str, int]:
    """The totals callgrind prints for one run of the loop."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={scratch / f'{mode}.{count}.out'}",
    ]
    if cache:
        command += ["--cache-sim=yes", "--branch-sim=yes"]
    command += [sys.executable, str(script), mode, str(count)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "TASKMETER_ENERGY": "none"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{mode} x {count} failed:\n{result.stderr[-2000:]}")
    totals: dict[str, int] = {}
    for line in result.stderr.splitlines():
        for label, name in EVENTS.items():
            match = re.search(rf"{re.escape(label)}:\s+([\d,]+)", line)
            if match:
                totals[name] = int(match.group(1).replace(",", ""))
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="simulate caches and branches")
    parser.add_argument(
        "--counts",
        nargs=2,
        type=int,
        default=(1000, 3000),
        metavar=("LOW", "HIGH"),
        help="the two iteration counts (default: 1000 3000)",
    )
    args = parser.parse_args(argv)
    low, high = args.counts
    if not 0 < low < high:
        parser.error("--counts: two counts, the first smaller, both positive")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1

    import taskmeter

    print(f"taskmeter {taskmeter.__version__}, Python {sys.version.split()[0]}")
    print(f"per iteration: (run of {high} - run of {low}) / {high - low}, callgrind")
    bench = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="taskmeter-callgrind-") as name:
        scratch = Path(name)
        script = scratch / "loop.py"
        script.write_text(LOOP.format(bench=bench))
        per_iteration: dict[str, dict[str, float]] = {}
        for mode in ("bare", "top-level", "nested"):
            first = run_loop(script, mode, low, args.cache, scratch)
            second = run_loop(script, mode, high, args.cache, scratch)
            per_iteration[mode] = {
                event: (second[event] - first[event]) / (high - low) for event in first
            }
    events = list(per_iteration["bare"])
    print(f"{'loop':10}" + "".join(f"{event:>30}" for event in events))
    bare = per_iteration["bare"]
    for mode, figures in per_iteration.items():
        cells = "".join(
            f"{figures[event]:>22,.0f} {figures[event] / bare[event]:6.2f}x" for event in events
        )
        print(f"{mode:10}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
