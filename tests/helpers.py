"""Ground truth for measurement tests: known bytes, known CPU seconds."""

from __future__ import annotations

import math
import os
import time

MIB = 1024 * 1024


def touch_bytes(size: int) -> bytearray:
    """Allocate ``size`` bytes and write to every page, so all of it is resident."""
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    return block


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU time."""
    deadline = time.thread_time() + seconds
    total = 0.0
    while time.thread_time() < deadline:
        for i in range(1, 1000):
            total += math.sqrt(i)


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
