"""Use tasks with task files, then fork as ML code does; print what the parent saw.

Run with ``-W always::DeprecationWarning`` and ``TASKMETER_MONITOR_INTERVAL``
short: on Python 3.12+ each fork made while another thread is alive warns
"This process ... is multi-threaded" on standard error.  Forks, all from
the main thread: a ``fork`` Pool and a ``Process`` inside a running task
with a task file (the monitor refreshing it), a plain ``os.fork()`` there,
and one after the tasks (the monitor idle).  Prints one JSON line: the
subtasks that came back, and how many times the monitor refreshed the task
file after the forks.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

from taskmeter import Task
from taskmeter.monitor import get_monitor


def work(index: int) -> int:
    with Task(f"work {index}"):
        return index * 2


def fork_and_wait(label: str) -> None:
    pid = os.fork()
    if pid == 0:
        with Task(label):
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def main(directory: Path) -> None:
    fork = multiprocessing.get_context("fork")
    with Task("warm-up", file=directory / "warm-up.json"):
        pass
    refreshed: list[int] = []
    with Task("stage", file=directory / "stage.json") as stage:
        with fork.Pool(2) as pool:
            pool.map(work, range(4))
        process = fork.Process(target=work, args=(9,))
        process.start()
        process.join()
        fork_and_wait("forked")
        calls = get_monitor().wakeups
        time.sleep(10 * get_monitor().default_interval)
        refreshed.append(get_monitor().wakeups - calls)
    fork_and_wait("after the tasks")
    print(
        json.dumps(
            {
                "subtasks": sorted(t.label for t in stage.subtasks),
                "wakeups_after_forks": refreshed[0],
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
