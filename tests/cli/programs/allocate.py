"""Hold MIB mebibytes resident for HOLD seconds, in COUNT processes at once (default 1).

The HOLD seconds start once every process has touched its memory: on a busy
machine a process may take long to be scheduled and fill its block, and the
processes must still hold their blocks all at the same time, for HOLD seconds.
"""

import os
import sys
import time

mib, hold = int(sys.argv[1]), float(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
ready_read, ready_write = os.pipe()
go_read, go_write = os.pipe()
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
if children is None:
    os.write(ready_write, b"r")
    os.read(go_read, 1)
    time.sleep(hold)
    os._exit(0)
for _ in children:
    os.read(ready_read, 1)
os.write(go_write, b"g" * len(children))
time.sleep(hold)
for pid in children:
    os.waitpid(pid, 0)
