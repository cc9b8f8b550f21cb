"""Daemonize as a service does (fork, setsid, fork): the command exits at once and its
grandchild, the daemon, lives on in a session of its own for up to 20 s.

Once the daemon has been re-parented to the process that started the command
(taskmeter, the subreaper), READY gets "COMMAND_PID DAEMON_PID".  The daemon
keeps the default action of SIGTERM: it dies of it.
"""

import os
import sys
import time

ready = sys.argv[1]
command, supervisor = os.getpid(), os.getppid()
if os.fork():
    os.wait()
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
deadline = time.monotonic() + 10
while os.getppid() != supervisor and time.monotonic() < deadline:
    time.sleep(0.01)
with open(ready + ".tmp", "w") as handle:
    handle.write(f"{command} {os.getpid()}")
os.replace(ready + ".tmp", ready)
time.sleep(20)
