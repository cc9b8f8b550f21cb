"""A span attribute count limit that cuts taskmeter's spans is said once, not silently
paid for with missing task metrics and Measurements."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from taskmeter import Task, _log
from taskmeter.measure import MeasurementSpanProcessor, TimingMetric
from taskmeter.measure.processor import ATTRIBUTE_COUNT_NEEDED
from taskmeter.testing import capture_spans

from ..pipeline_tasks import IsrTask

VARIABLE = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"


def run_pipeline(limit: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], set[str]]:
    """Two tasks, three timed calls and a wide user span under ``limit``: the spans, and the
    names of the metrics recorded."""
    monkeypatch.setenv(VARIABLE, str(limit))
    monkeypatch.setenv("TASKMETER_MACHINE", "rack-7")
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    spec = TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime")
    processor = MeasurementSpanProcessor([spec], meter_provider=meters)
    try:
        with capture_spans(processor) as captured:
            isr = IsrTask()
            with Task("visit"), Task("ccd"):
                for _ in range(3):
                    isr.run()
            wide = {f"app.field{i}": i for i in range(limit + 5)}
            with captured.tracer.start_as_current_span("wide user span", attributes=wide):
                pass
        spans = captured.spans
        data = reader.get_metrics_data()
    finally:
        meters.shutdown()
    names = {
        metric.name
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    return spans, names


def test_a_limit_that_cuts_task_and_timer_spans_is_said_once_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=8: the SDK drops the spans' ids and timer method, so
    nothing is recorded; one warning says so, names the variable and the limit to use."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        spans, names = run_pipeline(8, monkeypatch)
    assert {"taskmeter.task.duration", "ip_isr.isrtime"}.isdisjoint(names)
    assert any(span.dropped_attributes for span in spans if span.name == "ccd")
    warnings = [r.getMessage() for r in caplog.records if VARIABLE in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "'IsrTask.run'" in warnings[0] and f"at least {ATTRIBUTE_COUNT_NEEDED}" in warnings[0]
    assert "(8;" in warnings[0]
    assert _log.error_counts[f"env.{VARIABLE}"] == 5  # three timer spans, two task spans


def test_the_limit_the_warning_asks_for_keeps_every_attribute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """At the limit named in the warning no taskmeter span loses an attribute, everything is
    recorded, and a user span that exceeds it (no taskmeter attribute) is not reported."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        spans, names = run_pipeline(ATTRIBUTE_COUNT_NEEDED, monkeypatch)
    ours = [span for span in spans if span.name != "wide user span"]
    assert len(ours) == 5
    assert all(span.dropped_attributes == 0 for span in ours)
    assert max(len(span.attributes or {}) for span in ours) <= ATTRIBUTE_COUNT_NEEDED
    assert {"taskmeter.task.duration", "ip_isr.isrtime"} <= names
    (wide,) = [span for span in spans if span.name == "wide user span"]
    assert wide.dropped_attributes == 5
    assert not [r for r in caplog.records if VARIABLE in r.getMessage()]
    assert f"env.{VARIABLE}" not in _log.error_counts
