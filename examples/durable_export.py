"""Tasks whose spans survive a collector outage: a durable span processor and a spool.

    python examples/durable_export.py --spool runs/spool --endpoint http://127.0.0.1:4318

With no collector listening there, the spans wait in the spool (and the
program runs as fast as ever); start a collector and run the example again,
or ``taskmeter flush runs/spool``, to deliver them.
"""

from __future__ import annotations

import argparse
import os

import taskmeter
from taskmeter import Task
from taskmeter.export import DurableSpanExporter, DurableSpanProcessor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spool", default=os.environ.get("TASKMETER_SPOOL_DIR", "runs/spool"))
    parser.add_argument("--endpoint", help="OTLP/HTTP base URL (default: OTEL_* variables)")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    from opentelemetry.sdk.trace import TracerProvider

    exporter = DurableSpanExporter(args.spool, endpoint=args.endpoint, timeout_s=2.0)
    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(exporter))
    taskmeter.use_tracer_provider(provider)

    with Task("durable pipeline") as root:
        for step in range(args.steps):
            with Task("step"):
                sum(i * i for i in range(1000 + step))

    provider.shutdown()  # sends what it can; the rest stays in the spool
    stats = exporter.stats
    waiting = exporter.spool.pending() if exporter.spool else 0
    print(f"tasks: {len(root.subtasks) + 1}")
    print(
        f"spans sent: {stats.sent_items + stats.replayed_items}, spooled: {stats.spooled_items}, "
        f"lost: {stats.lost_items}"
    )
    print(f"batches waiting in {args.spool}: {waiting}")


if __name__ == "__main__":
    main()
