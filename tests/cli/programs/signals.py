"""Record the signals received in OUT, announce readiness in READY, sleep up to 20 s.

Exits with status 0 after the first SIGTERM or SIGHUP or SIGUSR1 it gets;
SIGINT raises KeyboardInterrupt (so the process dies of SIGINT), even when the
test runs as a background job, whose children start with SIGINT ignored.
"""

import os
import signal
import sys
import time

ready, out = sys.argv[1], sys.argv[2]


def record(signum, frame):
    with open(out, "a") as handle:
        handle.write(f"{signum}\n")
    sys.exit(0)


for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(sig, record)
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    # Ready is announced inside the try, so a SIGINT sent as soon as it shows
    # is recorded too.
    with open(ready, "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(20)
except KeyboardInterrupt:
    with open(out, "a") as handle:
        handle.write(f"{signal.SIGINT}\n")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
