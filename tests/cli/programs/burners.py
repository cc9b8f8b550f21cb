"""Start N processes that each burn SECONDS of CPU, then end in one of three ways.

wait:   wait for them (they are reaped here: their CPU is in this process's rusage)
linger: do not wait; stay until they have ended (they are zombies when this exits)
leave:  exit at once, leaving them running (orphans)
"""

import os
import sys
import time

mode, count, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
burn = os.path.join(os.path.dirname(os.path.abspath(__file__)), "burn.py")
pids = [
    os.posix_spawn(sys.executable, [sys.executable, burn, seconds], os.environ)
    for _ in range(count)
]
if mode == "wait":
    for pid in pids:
        os.waitpid(pid, 0)
elif mode == "linger":
    time.sleep(float(seconds) + 1.5)
os._exit(0)
