"""Trace sampling and the metrics taskmeter derives from spans.

A span the sampler does not record reaches no span processor, so its task is not
counted on the task metrics, nor its timed calls on the Measurements: with a
sampler that drops spans of the program's own traces, those metrics cover the
sampled traces only.  Under ``opentelemetry-instrument`` that is said once.
"""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

from taskmeter import Task, tracing
from taskmeter.instrumentation import warn_if_sampling
from taskmeter.measure import MeasurementSpanProcessor

from .runner import run_instrumented_program

PROGRAM = """
import json
from taskmeter import Task
for _ in range(3):
    with Task("step"):
        pass
print(json.dumps({"ok": True}))
"""
QUIET = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}


def sampler_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "OTEL_TRACES_SAMPLER" in line]


def test_a_sampler_that_drops_spans_is_said_once_under_opentelemetry_instrument() -> None:
    """OTEL_TRACES_SAMPLER=traceidratio: one warning that task metrics count sampled traces
    only; the program runs."""
    ran = run_instrumented_program(
        ["-c", PROGRAM],
        {**QUIET, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
    )
    (line,) = sampler_lines(ran.stderr)
    assert "TraceIdRatioBased{0.25}" in line and "'traceidratio'" in line
    assert "sampled traces" in line


@pytest.mark.parametrize("sampler", [None, "parentbased_always_on", "always_on"])
def test_samplers_that_record_every_root_say_nothing(sampler: str | None) -> None:
    env = dict(QUIET)
    if sampler is not None:
        env["OTEL_TRACES_SAMPLER"] = sampler
    ran = run_instrumented_program(["-c", PROGRAM], env)
    assert sampler_lines(ran.stderr) == []
    assert "sampler" not in ran.stderr


def test_warning_reads_the_provider_s_sampler(caplog: pytest.LogCaptureFixture) -> None:
    """Samplers set in code count as well; a ratio of 1 records every trace; a provider
    without a sampler says nothing."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        assert not warn_if_sampling(TracerProvider())
        assert not warn_if_sampling(TracerProvider(sampler=ALWAYS_ON))
        assert not warn_if_sampling(object())
        assert not warn_if_sampling(TracerProvider(sampler=TraceIdRatioBased(1.0)))
        assert not warn_if_sampling(TracerProvider(sampler=ParentBased(TraceIdRatioBased(1))))
        assert warn_if_sampling(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1))))
        assert warn_if_sampling(TracerProvider(sampler=ALWAYS_OFF))
    assert len([r for r in caplog.records if "sampler" in r.getMessage()]) == 1


def test_tasks_of_unrecorded_spans_are_not_counted_on_task_metrics() -> None:
    """The limitation the warning speaks of: with every span dropped, tasks still measure,
    and no task metric is recorded."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(MeasurementSpanProcessor(meter_provider=meters))
    previous = tracing.current_tracer_provider()
    tracing.use_tracer_provider(provider)
    try:
        with Task("step") as task:
            sum(range(1000))
    finally:
        tracing.use_tracer_provider(previous)
        provider.shutdown()
    assert task.duration is not None and task.duration > 0
    data = reader.get_metrics_data()
    meters.shutdown()
    assert data is None or not data.resource_metrics
