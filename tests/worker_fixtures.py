"""What the tests of worker processes share: a marker and an autouse fixture.

A module that imports :func:`fresh_inbox` gets it for each of its tests.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from taskmeter import _workers

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
