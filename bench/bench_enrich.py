"""What span enrichment adds to a span, against the same spans without the wrapper, in one run.

    python bench/bench_enrich.py [--quick]

Each case runs ``with tracer.start_as_current_span(...)`` through two
TracerProviders that differ only in the enriching wrapper: the baseline has
the processors registered directly, the candidate has them inside an
``EnrichingSpanProcessor``.  Rounds of the two are interleaved and the
median per-span time of each is reported, with the difference (what
enrichment adds) and the ratio.

Cases:

* ``selected``: every span is selected (the span's readings: process CPU,
  thread CPU, the memory high-water mark with its reset, the copy handed on);
* ``selected, no reset``: the same with ``reset_peak=False``;
* ``not selected``: child spans of an open, selected root (the common case
  under ``opentelemetry-instrument``: a request's inner spans);
* ``not selected, none open``: spans that no selection matches while no
  selected span is open;
* the same in situ, beside a ``BatchSpanProcessor`` whose exporter drops
  the spans, as an application runs it;
* the wrapper alone: its ``on_start``, ``_on_ending`` and ``on_end`` for an
  unselected span, against the wrapped processor's own, without the SDK
  around them (the least noisy view of what an unselected span costs);
* the floor: the system calls a selected span's readings need (``getrusage``
  and the thread's CPU clock at each end, the ``clear_refs`` write of the
  reset), made in a loop with nothing else, against an empty loop.  What
  they take of the 5 us target is not open to any implementation on the
  machine that runs the benchmark.

Targets: at most 5 us added to a selected span, under 0.5 us to one that is
not selected.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from _sdk import DropExporter, NoopProcessor
from taskmeter.enrich import EnrichingSpanProcessor
from taskmeter.probes import active_probes
from taskmeter.probes.memory import _write_holding_gil

TARGET_SELECTED_US = 5.0
TARGET_UNSELECTED_US = 0.5


def provider_with(processors: list[SpanProcessor], wrap: dict[str, object] | None) -> Tracer:
    provider = TracerProvider()
    if wrap is None:
        for processor in processors:
            provider.add_span_processor(processor)
    else:
        provider.add_span_processor(EnrichingSpanProcessor(*processors, **wrap))  # type: ignore[arg-type]
    return provider.get_tracer("bench")


def spans_loop(tracer: Tracer, count: int, under_root: bool) -> float:
    """Seconds per span for ``count`` spans (inside one root span when ``under_root``)."""
    start_span = tracer.start_as_current_span
    if under_root:
        with start_span("root"):
            started = time.perf_counter()
            for _ in range(count):
                with start_span("child"):
                    pass
            return (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        with start_span("span"):
            pass
    return (time.perf_counter() - started) / count


def compare(
    label: str,
    make: Callable[[dict[str, object] | None], Tracer],
    wrap: dict[str, object],
    *,
    under_root: bool,
    count: int,
    rounds: int,
    target_us: float,
) -> None:
    baseline_tracer, candidate_tracer = make(None), make(wrap)
    spans_loop(baseline_tracer, count // 10, under_root)  # warm up
    spans_loop(candidate_tracer, count // 10, under_root)
    base_us, cand_us = interleaved_medians_us(
        lambda: spans_loop(baseline_tracer, count, under_root),
        lambda: spans_loop(candidate_tracer, count, under_root),
        rounds,
    )
    report(label, base_us, cand_us, target_us, f"{cand_us / base_us:6.2f}x")


def interleaved_medians_us(
    baseline: Callable[[], float], candidate: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Median seconds (as µs) of ``rounds`` interleaved calls of each, GC off but between rounds."""
    base: list[float] = []
    cand: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            base.append(baseline())
            cand.append(candidate())
            gc.collect()
    finally:
        gc.enable()
    return statistics.median(base) * 1e6, statistics.median(cand) * 1e6


def report(label: str, base_us: float, cand_us: float, target_us: float, ratio: str) -> None:
    added = cand_us - base_us
    verdict = "ok" if added <= target_us else "MISSED"
    print(
        f"{label:<38} {base_us:8.2f} {cand_us:10.2f} {added:+8.2f} {ratio:>7}"
        f"   target <= {target_us} us: {verdict}"
    )


def processor_loop(processor: SpanProcessor, span: Span, ended: ReadableSpan, count: int) -> float:
    """Seconds per ``on_start`` + ``_on_ending`` + ``on_end`` of ``processor`` for one span.

    The SDK calls the three for every span (``_on_ending`` is its private hook).
    """
    on_start, on_ending, on_end = processor.on_start, processor._on_ending, processor.on_end
    started = time.perf_counter()
    for _ in range(count):
        on_start(span, None)
        on_ending(span)
        on_end(ended)
    return (time.perf_counter() - started) / count


def compare_alone(label: str, select: str, *, under_root: bool, count: int, rounds: int) -> None:
    """The wrapper's own calls for an unselected span, against the wrapped processor's."""
    inner = NoopProcessor()
    wrapper = EnrichingSpanProcessor(inner, select=select)
    tracer = TracerProvider().get_tracer("bench")
    root = tracer.start_span("root")
    context = None
    if under_root:
        wrapper.on_start(root, None)  # selected, and open throughout
        context = trace.set_span_in_context(root)
    span = tracer.start_span("child", context=context)
    span.end()
    ended = span._readable_span()
    count *= 10  # the calls are short
    base_us, cand_us = interleaved_medians_us(
        lambda: processor_loop(inner, span, ended, count),
        lambda: processor_loop(wrapper, span, ended, count),
        rounds,
    )
    report(label, base_us, cand_us, TARGET_UNSELECTED_US, "")


def readings_floor(count: int, rounds: int) -> None:
    """The system calls of a selected span's readings alone, against an empty loop."""
    try:
        clear_refs: int | None = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        clear_refs = None
    getrusage, self_ = resource.getrusage, resource.RUSAGE_SELF
    thread_time = time.thread_time
    write, one = _write_holding_gil, b"5"

    def empty() -> float:
        started = time.perf_counter()
        for _ in range(count):
            pass
        return (time.perf_counter() - started) / count

    def calls() -> float:
        started = time.perf_counter()
        for _ in range(count):
            getrusage(self_)
            thread_time()
            if clear_refs is not None:
                write(clear_refs, one)
            getrusage(self_)
            thread_time()
        return (time.perf_counter() - started) / count

    try:
        base_us, calls_us = interleaved_medians_us(empty, calls, rounds)
    finally:
        if clear_refs is not None:
            os.close(clear_refs)
    what = "2 getrusage + 2 thread CPU clock" + (
        " + 1 clear_refs write" if clear_refs is not None else " (clear_refs not writable here)"
    )
    floor_us = calls_us - base_us
    print(
        f"floor: {what}: {floor_us:.2f} us, "
        f"{floor_us / TARGET_SELECTED_US:.0%} of the {TARGET_SELECTED_US} us target"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans (a smoke run)")
    args = parser.parse_args(argv)
    count, rounds = (2_000, 3) if args.quick else (20_000, 9)
    print(f"probes: {', '.join(p.name for p in active_probes())}; {rounds} rounds of {count} spans")
    print(f"{'case':<38} {'bare us':>8} {'wrapped us':>10} {'added':>8} {'ratio':>7}")

    def noop(wrap: dict[str, object] | None) -> Tracer:
        return provider_with([NoopProcessor()], wrap)

    def batch(wrap: dict[str, object] | None) -> Tracer:
        return provider_with([BatchSpanProcessor(DropExporter())], wrap)

    selected = {"select": "all"}
    no_reset = {"select": "all", "reset_peak": False}
    roots = {"select": "root"}
    nothing = {"select": "name:never matches*"}
    for where, make in (("", noop), (" (in situ, batch)", batch)):
        common = {"count": count, "rounds": rounds}
        compare(
            f"selected{where}",
            make,
            selected,
            under_root=False,
            target_us=TARGET_SELECTED_US,
            **common,  # type: ignore[arg-type]
        )
        compare(
            f"selected, no reset{where}",
            make,
            no_reset,
            under_root=False,
            target_us=TARGET_SELECTED_US,
            **common,  # type: ignore[arg-type]
        )
        compare(
            f"not selected, root open{where}",
            make,
            roots,
            under_root=True,
            target_us=TARGET_UNSELECTED_US,
            **common,  # type: ignore[arg-type]
        )
        compare(
            f"not selected, none open{where}",
            make,
            nothing,
            under_root=False,
            target_us=TARGET_UNSELECTED_US,
            **common,  # type: ignore[arg-type]
        )
    common = {"count": count, "rounds": rounds}
    compare_alone(
        "not selected, root open (wrapper alone)",
        "root,marked",
        under_root=True,
        **common,  # type: ignore[arg-type]
    )
    compare_alone(
        "not selected, none open (wrapper alone)",
        "name:never matches*",
        under_root=False,
        **common,  # type: ignore[arg-type]
    )
    readings_floor(count * 5, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
