"""What durable export costs, and what it keeps, against the SDK's batch exporter in the same run.

    python bench/bench_export.py [--spans N] [--work-us US]

For each set-up, N spans are ended in a tight loop (one thread, the
application's) while an OTLP/HTTP endpoint on 127.0.0.1 (the test suite's
sink) answers, then N more while nothing listens on the endpoint's port, and
then the endpoint comes back and everything is flushed.  Reported per
set-up: the application thread's time per span in each phase, as a ratio to
the SDK's ``BatchSpanProcessor(OTLPSpanExporter())`` while the endpoint is
up, and how many spans of each phase reached the endpoint.

Set-ups:

* ``sdk``: ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (the baseline);
* ``durable``: :class:`DurableSpanProcessor` + :class:`DurableSpanExporter` with a spool;
* ``sdk+durable``: ``BatchSpanProcessor`` + :class:`DurableSpanExporter` (what
  ``OTEL_TRACES_EXPORTER=taskmeter`` gives under the SDK's configurator).

A tight loop ends spans faster than any exporter sends them: the SDK's
processor then drops what its queue cannot hold, while the durable one has
the application's thread write the overflow to the spool (``spilled``), so
its time per span includes that writing; it keeps every span.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.collector import OtlpSink, free_port, wait_until

from taskmeter.export import DurableSpanExporter, DurableSpanProcessor


def busy(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def run(setup: str, spans: int, spool: Path, work_s: float) -> dict[str, float]:
    port = free_port()
    sink = OtlpSink().start(port=port)
    endpoint = f"http://127.0.0.1:{port}"
    provider = TracerProvider()
    if setup == "sdk":
        processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=2)
        )
    elif setup == "durable":
        processor = DurableSpanProcessor(DurableSpanExporter(spool, endpoint=endpoint, timeout_s=2))
    else:
        processor = BatchSpanProcessor(DurableSpanExporter(spool, endpoint=endpoint, timeout_s=2))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    ids: dict[str, set[bytes]] = {"up": set(), "down": set()}
    timing: dict[str, float] = {}
    received: set[bytes] = set()
    for phase in ("up", "down"):
        if phase == "down":
            provider.force_flush(30_000)
            received |= {s.span_id for s in sink.spans()}
            sink.stop()
        began = time.perf_counter()
        for index in range(spans):
            with tracer.start_as_current_span("work") as span:
                span.set_attribute("index", index)
                if work_s:
                    busy(work_s)
            ids[phase].add(span.get_span_context().span_id.to_bytes(8, "big"))
        timing[phase] = (time.perf_counter() - began) / spans - work_s
    time.sleep(0.5)
    sink = OtlpSink().start(port=port)
    provider.force_flush(60_000)
    wait_until(lambda: len(sink.spans()) >= spans, 10)
    received |= {s.span_id for s in sink.spans()}
    provider.shutdown()
    sink.stop()
    spilled = getattr(processor, "spilled_spans", 0)
    return {
        "spilled": spilled / (2 * spans),
        "up_us": timing["up"] * 1e6,
        "down_us": timing["down"] * 1e6,
        "up_kept": len(ids["up"] & received) / spans,
        "down_kept": len(ids["down"] & received) / spans,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument(
        "--work-us", type=float, default=0.0, help="busy work inside each span (default 0)"
    )
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the SDK logs every dropped batch
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for setup in ("sdk", "durable", "sdk+durable"):
            results[setup] = run(setup, args.spans, Path(directory) / setup, args.work_us / 1e6)
    base = results["sdk"]["up_us"]
    print(
        f"{args.spans} spans per phase, {args.work_us:g} us of work in each; application "
        "thread's time per span beyond the work; spans that arrived"
    )
    print(
        f"{'set-up':<12} {'up':>18} {'down':>18} {'kept (up)':>10} {'kept (down)':>12}"
        f" {'spilled':>8}"
    )
    for setup, r in results.items():
        print(
            f"{setup:<12} {r['up_us']:7.1f} us ({r['up_us'] / base:4.2f}x) "
            f"{r['down_us']:7.1f} us ({r['down_us'] / base:4.2f}x) "
            f"{r['up_kept']:>9.1%} {r['down_kept']:>12.1%} {r['spilled']:>8.1%}"
        )
    print(
        "spilled: spans the application thread wrote to the spool because the export queue "
        "was full (the SDK's processor drops those instead)"
    )


if __name__ == "__main__":
    main()
