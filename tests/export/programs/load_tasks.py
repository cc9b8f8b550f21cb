"""Run thousands of tasks in three phases, exporting through a durable span processor.

Usage: load_tasks.py ENDPOINT SPOOL_DIR IDS_FILE BEFORE OUTAGE AFTER

Between phases it prints a JSON line and waits for a line on standard input
(the test stops the collector after the first phase and starts it again
after the second).  During the outage phase it measures its own peak RSS
growth: the kernel's high-water mark is reset (``/proc/self/clear_refs``) at
the start and read at the end.  The task span ids go to IDS_FILE, one hex id
a line.
"""

from __future__ import annotations

import json
import sys
import time

import taskmeter
from taskmeter import Task
from taskmeter.export import DurableSpanExporter, DurableSpanProcessor


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def high_water_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def reset_high_water() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def main() -> None:
    endpoint, spool, ids_file = sys.argv[1:4]
    before, outage, after = (int(n) for n in sys.argv[4:7])
    exporter = DurableSpanExporter(spool, endpoint=endpoint, timeout_s=2.0)
    processor = DurableSpanProcessor(exporter)
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(processor)
    taskmeter.use_tracer_provider(provider)
    ids = open(ids_file, "w")  # noqa: SIM115 - written across the phases

    def run(count: int, phase: str) -> float:
        began = time.perf_counter()
        for index in range(count):
            with Task(f"{phase} task") as task:
                sum(range(50))
            ids.write(f"{task.span_id}\n")
            if index % 1000 == 999:
                time.sleep(0.001)  # let the export thread take the GIL now and then
        ids.flush()
        return time.perf_counter() - began

    def report(phase: str, **extra: object) -> None:
        stats = exporter.stats
        print(
            json.dumps(
                {
                    "phase": phase,
                    "sent": stats.sent_items,
                    "spooled": stats.spooled_items,
                    "replayed": stats.replayed_items,
                    "lost": stats.lost_items,
                    "dropped": processor.dropped_spans,
                    "spilled": processor.spilled_spans,
                    "queued": processor.queued,
                    **extra,
                }
            ),
            flush=True,
        )

    report("before", seconds=run(before, "before"))
    sys.stdin.readline()  # the collector is down now

    processor.force_flush(0)  # nothing from before is still queued
    start_rss = rss_bytes()
    reset_high_water()
    seconds = run(outage, "outage")
    processor.force_flush(5_000)  # the queue written out (to the spool: nothing answers)
    peak = high_water_bytes()
    report(
        "outage",
        seconds=seconds,
        start_rss=start_rss,
        peak_rss=peak,
        growth=peak - start_rss,
        spool_bytes=exporter.spool.usage_bytes() if exporter.spool else 0,
    )
    sys.stdin.readline()  # the collector is back

    seconds = run(after, "after")
    delivered = provider.force_flush(60_000)
    report("after", seconds=seconds, delivered=delivered)
    ids.close()
    provider.shutdown()


if __name__ == "__main__":
    main()
