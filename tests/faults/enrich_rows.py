"""Fault rows of span enrichment (:class:`~taskmeter.enrich.EnrichingSpanProcessor`).

The application opens a ``request`` span (selected for enrichment) around part of its work;
the exporter inside the wrapper shows what reached the backend.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskmeter
from taskmeter import Task
from taskmeter import attributes as attr
from taskmeter.enrich import EnrichingSpanProcessor
from taskmeter.probes import CpuTimeProbe, LinuxRssHighWater, PeakMemoryProbe, Probe

from .catalogue import (
    EXPECTED,
    Outcome,
    application,
    cpu_survives,
    not_applicable,
    run_application,
    scenario,
)

COMPONENT = "enrich-processor"


def _enriched_run(
    tmp_path: Path,
    *,
    probes: Sequence[Probe] | None = None,
    inner: Sequence[SpanProcessor] = (),
    max_open: int = 10_000,
    requests: int = 1,
    never_ended: int = 0,
) -> Outcome:
    exporter = InMemorySpanExporter()
    wrapper = EnrichingSpanProcessor(
        *inner,
        SimpleSpanProcessor(exporter),
        select="name:request*",
        probes=probes,
        max_open=max_open,
    )

    def during(task: Task) -> None:
        provider = taskmeter.tracing.current_tracer_provider()
        assert provider is not None
        tracer = provider.get_tracer("web")  # the application's spans, not taskmeter's
        # Held open (never ended) while the requests run: a span dropped without
        # ending gives its place back once collected.
        left_open = [tracer.start_span(f"request left open {i}") for i in range(never_ended)]
        for i in range(requests):
            with tracer.start_as_current_span(f"request {i}"):
                assert application() == EXPECTED
        assert len(left_open) == never_ended

    outcome = run_application(tmp_path, processors=[wrapper], during=during)
    outcome.extra["exported"] = exporter.get_finished_spans()
    return outcome


def _request(outcome: Outcome, index: int = 0) -> ReadableSpan:
    [span] = [s for s in outcome.extra["exported"] if s.name == f"request {index}"]
    return span


def _figures(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class _ReadFails(PeakMemoryProbe):
    """A memory probe whose reading at the end of a span fails (a driver error)."""

    def read(self, state: Any, figures: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")


def _cpu_kept_memory_absent(outcome: Outcome) -> None:
    cpu_survives(outcome)
    figures = _figures(_request(outcome))
    assert figures[attr.CPU_TIME] > 0 and attr.DURATION in figures
    assert attr.MEMORY_PEAK not in figures


@scenario(COMPONENT, "error", counted="probe.memory.read", check=_cpu_kept_memory_absent)
def _probe_fails_in_the_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _enriched_run(tmp_path, probes=[CpuTimeProbe(), _ReadFails()], requests=3)


@scenario(COMPONENT, "unreadable", counted=None, check=_cpu_kept_memory_absent)
def _proc_unreadable_in_the_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)  # no status file: the high-water mark cannot be read
    probes = [CpuTimeProbe(), PeakMemoryProbe(LinuxRssHighWater(procfs=proc))]
    return _enriched_run(tmp_path, probes=probes)


class _ThirdParty(SpanProcessor):
    """A processor of another library, wrapped with the exporter, that fails on every span."""

    def on_end(self, span: ReadableSpan) -> None:
        raise ValueError("cannot handle this span")


def _every_request_exported_enriched(outcome: Outcome) -> None:
    cpu_survives(outcome)
    for index in range(3):
        assert _figures(_request(outcome, index))[attr.CPU_TIME] > 0


@scenario(
    COMPONENT,
    "garbage",
    counted="enrich.processor._ThirdParty.on_end",
    check=_every_request_exported_enriched,
)
def _wrapped_processor_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    outcome = _enriched_run(tmp_path, inner=[_ThirdParty()], requests=3)
    # Once for every span that ended (the requests and the tasks), each still exported.
    failures = taskmeter._log.error_counts["enrich.processor._ThirdParty.on_end"]
    assert failures == len(outcome.extra["exported"]) == 5
    return outcome


def _newest_passed_on_plain(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert attr.CPU_TIME not in _figures(_request(outcome, 0))  # beyond the bound: plain
    assert attr.CPU_TIME not in _figures(_request(outcome, 1))


@scenario(COMPONENT, "disk-full", counted="enrich.max_open", check=_newest_passed_on_plain)
def _too_many_open_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # The wrapper's table of open spans is bounded (the in-memory counterpart of a full disk):
    # spans that stay open (held, never ended) fill it, and later ones go out without figures.
    return _enriched_run(tmp_path, max_open=4, never_ended=4, requests=2)


not_applicable(
    COMPONENT,
    "the wrapper calls local probes and processors in memory: nothing it calls connects, "
    "waits or needs a permission (the probes' own faults of that kind are their rows)",
    "timeout",
    "refused",
    "permission",
)
