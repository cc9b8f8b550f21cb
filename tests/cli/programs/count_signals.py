"""Count the SIGTERMs received: announce readiness in READY, and from the first one on
wait WINDOW seconds for more; then write the count in OUT and exit 0 (20 s at most)."""

import signal
import sys
import time

ready, out, window = sys.argv[1], sys.argv[2], float(sys.argv[3])
received = []


def count(signum, frame):
    received.append(time.monotonic())


signal.signal(signal.SIGTERM, count)
with open(ready, "w") as handle:
    handle.write("ready")
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not (received and time.monotonic() > received[0] + window):
    time.sleep(0.01)
with open(out, "w") as handle:
    handle.write(f"{len(received)}\n")
