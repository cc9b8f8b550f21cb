"""Forks children that run tasks into a task file until they are killed.

It imports taskmeter once, so each child starts in a millisecond.  Commands,
one a line on standard input:

``run PATH``
    fork a child that runs a growing task tree saved to PATH (the monitor
    refreshes it every ``TASKMETER_MONITOR_INTERVAL`` seconds), and print its pid;
``reap PID``
    wait for that child (the test has killed it) and print ``reaped``.
"""

from __future__ import annotations

import os
import sys

from taskmeter import Task


def child(path: str) -> None:
    with Task("killed mid-run", file=path):
        step = 0
        while True:
            step += 1
            with Task(f"step {step}"):
                with Task("inner"):
                    sum(range(2000))
                if step % 50 == 0:
                    with Task("burst"):
                        for _ in range(20):
                            with Task("leaf"):
                                pass


def main() -> None:
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            pid = os.fork()
            if pid == 0:
                try:
                    child(argument)
                finally:
                    os._exit(0)
            print(pid, flush=True)
        elif command == "reap":
            os.waitpid(int(argument), 0)
            print("reaped", flush=True)


if __name__ == "__main__":
    main()
