"""What a fork costs when the monitor's thread must end before it and start after it.

    python bench/bench_fork.py [--quick]

Inside a task with a task file (the monitor refreshing it), prints the cost
of one ``os.fork()`` whose child exits at once, waited for by the parent:

* ``monitor stopped``: the monitor's thread not alive (``Monitor.stop()``),
  so the fork's handlers find nothing to stop: the baseline;
* ``monitor running``: its thread alive, idle between refreshes, as in any
  program with a task file open: it ends before the fork and starts again
  after it (on Python 3.13+, at the parent's first call past the fork).

Rounds alternate and the median round is reported, with the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from taskmeter import Task
from taskmeter.monitor import get_monitor


def fork_once() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def fork_round(forks: int, running: bool) -> float:
    """Seconds per fork over ``forks`` forks, the monitor's thread alive or not."""
    monitor = get_monitor()
    if running:
        monitor.remove(monitor.add(lambda: None, 3600, name="wake"))  # starts the thread
        thread = monitor._thread
        assert thread is not None and thread.is_alive()
    else:
        monitor.stop()
    started = time.perf_counter()
    for _ in range(forks):
        fork_once()
    elapsed = (time.perf_counter() - started) / forks
    if running:
        fork_once()  # on 3.13+ the thread starts at the first call past a fork
        thread = monitor._thread
        assert thread is not None and thread.is_alive(), "the thread did not start again"
    return elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    rounds, forks = (5, 20) if args.quick else (15, 50)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as directory, Task("forking", file=Path(directory) / "t"):
        fork_round(5, True)  # warm-up
        for _ in range(rounds):
            for running in (False, True):
                times[running].append(fork_round(forks, running))
    stopped = statistics.median(times[False])
    running_s = statistics.median(times[True])
    print(f"python {sys.version.split()[0]}, {rounds} rounds of {forks} forks, median round")
    print(f"monitor stopped  {stopped * 1e6:8.0f} us per fork")
    print(f"monitor running  {running_s * 1e6:8.0f} us per fork  ({running_s / stopped:.2f}x)")


if __name__ == "__main__":
    main()
