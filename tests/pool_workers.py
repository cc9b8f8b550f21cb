"""What tests/test_worker_pools.py runs in joblib, DataLoader and killed workers.

A module of its own, without pytest or torch at import, so that workers
started as fresh interpreters (loky, spawn) import it quickly.
"""

from __future__ import annotations

import os
import signal

from tests.mp_workers import burn_cpu


def die_in_task(how: str, seconds: float = 0.05) -> None:
    """Burn in a task, then end this process inside it: ``exit`` (``os._exit``) or ``kill``
    (SIGKILL to itself)."""
    from taskmeter import Task

    with Task("dying"):
        burn_cpu(seconds)
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)


def hang_in_task(seconds: float) -> None:
    """A task that burns ``seconds`` of CPU (longer than the test waits): cut off."""
    from taskmeter import Task

    with Task("cut off"):
        burn_cpu(seconds)


class BurningImages:
    """A map-style dataset (what a DataLoader needs) whose items burn CPU inside a task."""

    def __init__(self, items: int, seconds: float) -> None:
        self.items = items
        self.seconds = seconds

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int) -> int:
        from taskmeter import Task

        with Task(f"item {index}"):
            burn_cpu(self.seconds)
        return index


def init_loader_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` that measures its own set-up as a task."""
    from taskmeter import Task

    with Task(f"init worker {worker_id}"):
        burn_cpu(0.01)


def init_exporting_loader_worker(endpoint: str, worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` (given the endpoint with ``functools.partial``) for
    spawned workers: send this worker's spans to ``endpoint`` over OTLP/HTTP."""
    from tests.mp_workers import setup_otlp

    setup_otlp(endpoint)
