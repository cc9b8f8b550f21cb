"""Facts about this process that are costly to look up on every task."""

from __future__ import annotations

import os
import socket

hostname: str = socket.gethostname()
pid: int = os.getpid()


def _after_fork_in_child() -> None:
    global pid
    pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def current_hostname() -> str:
    """The host name (looked up once per process)."""
    return hostname


def current_pid() -> int:
    """This process's id (kept right across ``fork``)."""
    return pid
