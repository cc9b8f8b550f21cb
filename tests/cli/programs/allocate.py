"""Hold MIB mebibytes resident for HOLD seconds, in COUNT processes at once (default 1)."""

import os
import sys
import time

mib, hold = int(sys.argv[1]), float(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
children: list[int] | None = []
for _ in range(count - 1):
    pid = os.fork()
    if pid == 0:
        children = None
        break
    children.append(pid)
block = bytearray(mib * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
time.sleep(hold)
if children is None:
    os._exit(0)
for pid in children:
    os.waitpid(pid, 0)
