"""What writing and reading a task file costs, as ratios to pydantic's own calls in the same run.

    python bench/bench_taskfile.py [--quick] [--tasks N]

Writes a tree of N tasks (default 100,000: a root, 100 stages, the rest spread under
them) and prints, as medians of interleaved rounds:

* ``save_task`` against its baseline, ``write_atomic(path, task.model_dump_json())``
  (what saving is when nothing else is done);
* ``load_task`` as ``taskmeter show`` and ``report`` call it (values of the wrong JSON
  type checked, a strict parse) against ``load_task`` as other callers do (lax), and
  the same file with one mistyped value, and with one figure out of range (a negative
  CPU time), both read the checked way (standard parser, value walk, validation);
* a chain 300 tasks deep (past the 127 levels pydantic serializes, so written task by
  task), per task, against the wide tree's per task cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from taskmeter import Task
from taskmeter.taskfile import load_task, save_task, write_atomic


def wide_tree(count: int) -> Task:
    """A finished root with 100 stages and ``count - 101`` leaves under them, with figures."""
    root = Task.model_validate({"label": "root", "status": "finished", "duration": 1.0})
    stages = [
        Task.model_validate({"label": f"stage {s}", "status": "finished", "duration": 0.5})
        for s in range(100)
    ]
    root.subtasks.extend(stages)
    for index in range(count - 101):
        stages[index % 100].subtasks.append(
            Task.model_validate(
                {
                    "label": f"item {index}",
                    "status": "finished",
                    "duration": 0.001 * index,
                    "cpu_time": 0.0009 * index,
                    "peak_memory": 1024 * index,
                }
            )
        )
    return root


def deep_chain(depth: int) -> Task:
    root = Task.model_validate({"label": "root", "status": "finished"})
    current = root
    for level in range(depth):
        child = Task.model_validate({"label": f"level {level}", "status": "finished"})
        current.subtasks.append(child)
        current = child
    return root


def median_times(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median seconds of each variant, rounds interleaved (so drift affects all alike)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller tree, fewer rounds")
    parser.add_argument("--tasks", type=int, default=None, help="tasks in the wide tree")
    args = parser.parse_args()
    count = args.tasks or (10_000 if args.quick else 100_000)
    rounds = 3 if args.quick else 7
    root = wide_tree(count)
    chain = deep_chain(300)
    with tempfile.TemporaryDirectory(prefix="bench-taskfile-") as directory:
        path = Path(directory) / "tree.json"
        bad = Path(directory) / "mistyped.json"
        out_of_range = Path(directory) / "out-of-range.json"
        deep = Path(directory) / "deep.json"
        save = median_times(
            {
                "baseline": lambda: write_atomic(path, root.model_dump_json() + "\n"),
                "save_task": lambda: save_task(root, path),
            },
            rounds,
        )
        document = json.loads(path.read_text())
        document["subtasks"][50]["subtasks"][3]["peak_memory"] = True
        bad.write_text(json.dumps(document))
        document["subtasks"][50]["subtasks"][3]["peak_memory"] = 1024
        document["subtasks"][70]["subtasks"][5]["cpu_time"] = -5
        out_of_range.write_text(json.dumps(document))
        load = median_times(
            {
                "lax": lambda: load_task(path),
                "checked": lambda: load_task(path, mistyped=lambda message: None),
                "mistyped": lambda: load_task(bad, mistyped=lambda message: None),
                "range": lambda: load_task(out_of_range, mistyped=lambda message: None),
            },
            rounds,
        )
        chain_s = median_times({"deep": lambda: save_task(chain, deep)}, rounds)["deep"]
        assert sum(1 for _ in load_task(deep).walk()) == 301
        size_mb = path.stat().st_size / 1e6
    print(f"tree of {count} tasks, {size_mb:.1f} MB of JSON; medians of {rounds} rounds")
    print(
        f"save   baseline {save['baseline'] * 1e3:8.1f} ms   save_task "
        f"{save['save_task'] * 1e3:8.1f} ms   ratio {save['save_task'] / save['baseline']:.2f}"
    )
    print(
        f"load   lax      {load['lax'] * 1e3:8.1f} ms   checked   "
        f"{load['checked'] * 1e3:8.1f} ms   ratio {load['checked'] / load['lax']:.2f}"
        f"   one mistyped value {load['mistyped'] * 1e3:8.1f} ms   ratio "
        f"{load['mistyped'] / load['lax']:.2f}"
        f"   one figure out of range {load['range'] * 1e3:8.1f} ms   ratio "
        f"{load['range'] / load['lax']:.2f}"
    )
    per_wide = save["save_task"] / count
    per_deep = chain_s / 301
    print(
        f"deep   300 levels {chain_s * 1e3:6.1f} ms: {per_deep * 1e6:.1f} us a task, "
        f"{per_deep / per_wide:.1f}x a task of the wide tree"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
