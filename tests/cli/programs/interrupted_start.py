"""Run ``taskmeter ARGS`` in this process, pausing its start-up at MOMENT until a SIGINT.

Usage: ``interrupted_start.py MOMENT READY ARGS...``.  At MOMENT the file READY
appears; the test then sends SIGINT, and the start-up goes on once it has
arrived (waiting at most 20 s):

* ``before-spawn``: the run's private directory is made, its supervisor not yet
  (no signal is blocked): the SIGINT raises ``KeyboardInterrupt`` there.
* ``at-spawn``: the signals are blocked and the command is about to be
  spawned: the SIGINT is pending as it starts.
* ``after-spawn``: the command has just been spawned, its wait not begun.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from taskmeter.cli import main, run
from taskmeter.cli._supervise import Supervisor

WAIT_S = 20.0


def announce(ready: str) -> None:
    with open(ready + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(ready + ".tmp", ready)


def wait_until_pending() -> None:
    """Wait for a SIGINT that the signal mask holds back."""
    deadline = time.monotonic() + WAIT_S
    while signal.SIGINT not in signal.sigpending() and time.monotonic() < deadline:
        time.sleep(0.005)


moment, ready = sys.argv[1], sys.argv[2]
posix_spawnp = os.posix_spawnp

if moment == "before-spawn":

    class PausedSupervisor(Supervisor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            announce(ready)
            time.sleep(WAIT_S)  # the SIGINT's KeyboardInterrupt ends it
            super().__init__(*args, **kwargs)

    setattr(run, "Supervisor", PausedSupervisor)  # noqa: B010 (not exported by run)

elif moment in ("at-spawn", "after-spawn"):

    def paused_spawn(*args: Any, **kwargs: Any) -> int:
        if moment == "at-spawn":
            announce(ready)
            wait_until_pending()
        pid = posix_spawnp(*args, **kwargs)
        if moment == "after-spawn":
            announce(ready)
            wait_until_pending()
        return pid

    os.posix_spawnp = paused_spawn

else:
    raise SystemExit(f"unknown moment {moment!r}")

raise SystemExit(main(sys.argv[3:]))
