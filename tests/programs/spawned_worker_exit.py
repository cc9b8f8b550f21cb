"""A spawned worker that ends its work, then exits (run under opentelemetry-instrument).

    python spawned_worker_exit.py task|span|plain

The worker runs a task (``task``: its spans are flushed as the task ends) or
only a span of its own (``span``: nothing flushes it before the exit), in a
process of taskmeter's spawn context; ``plain``: a span in a process of
multiprocessing's own spawn context.
Prints, as JSON, how long the worker took from the end of its work to its
exit, and its exit code; then this process ends at once (``os._exit``): its
own exit is not what is measured.  Used by tests/instrumentation/test_worker_exit.py
and, against an endpoint that never answers, to measure that exit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

from opentelemetry import trace

from taskmeter import Task
from taskmeter.multiprocess import get_context


def work(kind: str, done: multiprocessing.Queue[float]) -> None:
    """The worker: one task or one span, then the time its work ended."""
    if kind == "task":
        with Task("worker task"):
            time.sleep(0.01)
    else:
        with trace.get_tracer("worker").start_as_current_span("worker span"):
            time.sleep(0.01)
    done.put(time.time())


def main(kind: str) -> None:
    context = multiprocessing.get_context("spawn") if kind == "plain" else get_context("spawn")
    with Task("parent"):
        done: multiprocessing.Queue[float] = context.Queue()
        worker = context.Process(target=work, args=(kind, done))
        worker.start()
        ended = done.get(timeout=60)
        worker.join(120)
        exited = time.time()
    print(json.dumps({"exit_s": exited - ended, "exitcode": worker.exitcode}), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
