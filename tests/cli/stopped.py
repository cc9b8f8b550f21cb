"""A real process stopped by SIGSTOP, for the tests of how a stopped task is shown."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from tests.collector import wait_until


@contextmanager
def stopped_process() -> Iterator[int]:
    """The pid of a ``sleep`` stopped by SIGSTOP; continued and killed on leaving."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        child.send_signal(signal.SIGSTOP)
        assert wait_until(
            lambda: psutil.Process(child.pid).status() == psutil.STATUS_STOPPED, 10
        ), "the process did not stop"
        yield child.pid
    finally:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait(10)
