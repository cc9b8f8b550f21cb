"""Four tasks in a pool of two workers, under a ``stage`` task (run under opentelemetry-instrument).

    python worker_task_metrics.py fork|spawn|forkserver

Prints, as JSON, how long the pool took.  Used by
tests/instrumentation/test_worker_metrics.py.
"""

from __future__ import annotations

import json
import sys
import time

from taskmeter import Task
from taskmeter.multiprocess import get_context

CHUNKS = 4


def chunk(index: int) -> int:
    """One short task in a worker."""
    with Task("chunk"):
        time.sleep(0.01)
    return index


def main(method: str) -> None:
    started = time.monotonic()
    with Task("stage"), get_context(method).Pool(2) as pool:
        pool.map(chunk, range(CHUNKS))
    print(json.dumps({"pool_s": time.monotonic() - started}))


if __name__ == "__main__":
    main(sys.argv[1])
