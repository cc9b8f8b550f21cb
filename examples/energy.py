"""Energy and peak GPU memory of a task, with whatever this machine can measure.

    python examples/energy.py [--seconds 2] [--require rapl,nvml] [--verbose]

Runs a task that computes for ``--seconds`` and prints each figure with the
method that produced it (``rapl``, ``nvml-counter``, ``prometheus``, ...), or
"not measured".  With ``--require`` the named sources must work, or the
program stops with an error saying what is missing and how to fix it (the
same names as ``TASKMETER_ENERGY``).  ``--verbose`` logs, at debug level, why
each source that is not used is unavailable.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

import taskmeter
from taskmeter import Task
from taskmeter.probes import ProbeUnavailableError, default_probes


def compute(seconds: float) -> float:
    """Keep one CPU busy for about ``seconds``."""
    deadline = time.perf_counter() + seconds
    total = 0.0
    while time.perf_counter() < deadline:
        for i in range(1, 2000):
            total += math.sqrt(i)
    return total


def describe(value: float | int | None, unit: str, source: str | None = None) -> str:
    if value is None:
        return "not measured"
    text = f"{value:.3f} {unit}" if unit == "J" else f"{value / 2**20:.1f} MiB"
    return f"{text} ({source})" if source else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to compute")
    parser.add_argument("--require", help="sources that must work, e.g. rapl,nvml")
    parser.add_argument("--verbose", action="store_true", help="log why sources are unused")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")

    if args.require:
        try:
            taskmeter.set_probes(default_probes(f"auto,{args.require}"))
        except (ProbeUnavailableError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    with Task("energy demo") as task:
        compute(args.seconds)

    sources = task.energy_sources
    print(f"task: {task.label}, {task.duration:.2f} s")
    print(f"probes: {', '.join(p.name for p in taskmeter.active_probes())}")
    print(f"cpu energy:      {describe(task.cpu_power, 'J', sources.get('cpu'))}")
    print(f"gpu energy:      {describe(task.gpu_power, 'J', sources.get('gpu'))}")
    print(f"system energy:   {describe(task.system_power, 'J', sources.get('system'))}")
    print(f"peak GPU memory: {describe(task.peak_gpu_memory, 'By')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
