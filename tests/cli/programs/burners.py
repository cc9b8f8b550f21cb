"""Start N processes that each burn SECONDS of CPU, then end in one of three ways.

wait:   wait for them (they are reaped here: their CPU is in this process's rusage)
linger: do not reap them; stay until they have ended (they are zombies when this exits)
leave:  exit at once, leaving them running (orphans)

``linger`` waits for their ends with ``waitid(WNOWAIT)``, which leaves them
unreaped: however long a loaded machine takes to burn their CPU, they have
ended, and not been reaped, when this exits.
"""

import os
import sys

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
    for pid in pids:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
os._exit(0)
