"""Burn SECONDS of CPU time in this process (ground truth for the run tests)."""

import math
import sys
import time

deadline = time.process_time() + float(sys.argv[1])
total = 0.0
while time.process_time() < deadline:
    for i in range(1, 1000):
        total += math.sqrt(i)
