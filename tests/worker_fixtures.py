"""What the tests of worker processes share: a marker, an autouse fixture, a CPU check.

A module that imports :func:`fresh_inbox` gets it for each of its tests.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from taskmeter import Task, _workers

CPU_SLACK_S = 0.08
"""How much more CPU than its known burn a worker's task may report (start-up, imports)."""

fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)


@pytest.fixture(autouse=True)
def fresh_inbox() -> Iterator[None]:
    """Each test starts with no inbox in this process, and leaves none."""
    _workers.close_inbox()
    _workers._inbox = None
    yield
    _workers.close_inbox()
    _workers._inbox = None


def check_worker_cpu(parent: Task, burns: int, burn_s: float) -> None:
    """total_cpu() is the parent's own CPU plus exactly its worker records' figures, and
    those are ``burns`` known burns of ``burn_s`` within :data:`CPU_SLACK_S` each."""
    workers = [t for t in parent.subtasks if t.subprocess]
    assert parent.cpu_time is not None
    own_workers = sum(t.total_cpu() or 0.0 for t in workers)
    assert parent.total_cpu() == pytest.approx(parent.cpu_time + own_workers)
    assert burns * burn_s <= own_workers <= burns * (burn_s + CPU_SLACK_S)
