"""Ground truth for measurement tests: known bytes, known CPU seconds."""

from __future__ import annotations

import math
import mmap
import os
import time

MIB = 1024 * 1024


def touch_bytes(size: int) -> mmap.mmap:
    """Map ``size`` bytes of fresh anonymous memory and write to every page, so the
    process's resident set grows by exactly ``size`` until the block is released.

    A private anonymous mapping, not a ``bytearray``: glibc's malloc raises its
    mmap threshold (up to 32 MiB) each time it frees a mapped block, after which
    a block of that size comes from the heap, may reuse pages freed earlier that
    are still resident, and stays resident when freed; the resident set would
    then not grow by ``size`` at all, and the measured peak would be right
    while the test's ground truth was wrong.  ``del`` of the last reference
    unmaps the block.
    """
    block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
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


def burn_system_cpu(seconds: float) -> None:
    """Spin in the kernel until this thread has used ``seconds`` of CPU time.

    Each ``readv`` of ``/dev/zero`` has the kernel zero a 1 MiB buffer that
    stays mapped, so nearly all of the time (about 95 %) is system time and
    little is spent in Python between the calls.
    """
    buffer = bytearray(1024 * 1024)
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        deadline = time.thread_time() + seconds
        while time.thread_time() < deadline:
            os.readv(fd, [buffer])
    finally:
        os.close(fd)


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
