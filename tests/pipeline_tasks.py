"""Pipeline tasks in LSST's shape (a full name, metadata, timed methods) for tests."""

from __future__ import annotations

from typing import Any

from taskmeter import time_method

from .helpers import burn_cpu


class IsrTask:
    """A task named ``isr``: metadata and a timed ``run``."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return "isr"

    @time_method
    def run(self, seconds: float = 0.0) -> None:
        """Burn ``seconds`` of CPU time."""
        burn_cpu(seconds)
