"""Two tasks in turn, BIG then SMALL mebibytes, after sleeping DELAY seconds.

With a fifth argument ``outside``, BIG is used before the tasks, in none.

Each task resets the kernel's RSS high-water mark as it starts, which lowers
the ``ru_maxrss`` that ``wait4`` gives for this process: the peak of BIG is
no longer in it.  The process's RSS before the tasks, in bytes, is written
to BASELINE (the file named by the first argument).

The delay puts the tasks between two of ``taskmeter run``'s samples, which
are 2.56 s apart from 2.55 s after the start until 5.11 s with a long
``--interval``: the sampled ``VmHWM`` does not see BIG's peak either.
"""

import os
import sys
import time
from pathlib import Path

from taskmeter import Task

MIB = 1024 * 1024


def touch(mebibytes: int) -> None:
    block = bytearray(mebibytes * MIB)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    del block


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


baseline = Path(sys.argv[1])
big, small, delay = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
time.sleep(delay)
baseline.write_text(str(resident_bytes()))
if sys.argv[5:] == ["outside"]:
    touch(big)
else:
    with Task("big"):
        touch(big)
with Task("small"):
    touch(small)
