"""A span attribute value-length limit that cuts the timer's timestamps gives no wrong
Measurement: the cut timestamps are an error of that Measurement, and the limit is said once."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from taskmeter import Task, _log, time_method
from taskmeter.measure import MeasurementSpanProcessor, TimingMetric
from taskmeter.measure.processor import VALUE_LENGTH_NEEDED
from taskmeter.testing import capture_spans

VARIABLE = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"
SLEEP_S = 0.05


class Sleeper:
    """A task whose timed ``run`` sleeps."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    def run(self) -> None:
        time.sleep(SLEEP_S)


def measure_under(
    limit: int | None, monkeypatch: pytest.MonkeyPatch, label: str = "job"
) -> dict[str, Any]:
    """One timed call inside a task under ``limit``: the points recorded, by metric name."""
    if limit is not None:
        monkeypatch.setenv(VARIABLE, str(limit))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    spec = TimingMetric(target="run", package="p", metric="t")
    processor = MeasurementSpanProcessor([spec], meter_provider=meters, task_metrics=False)
    try:
        with capture_spans(processor), Task(label):
            Sleeper().run()
        data = reader.get_metrics_data()
    finally:
        meters.shutdown()
    return {
        metric.name: list(metric.data.data_points)
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


@pytest.mark.parametrize("limit", [10, 16, 19, 22, 25, 29, 31])
def test_cut_timestamps_record_no_value_but_an_error_and_one_warning(
    limit: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Timestamps cut to ``limit`` characters still parse (to the minute, the second, a
    shorter fraction, no UTC offset): no value is recorded, an error is counted, and one
    warning names the variable and the limit that keeps them."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        points = measure_under(limit, monkeypatch)
    assert "p.t" not in points
    (errors,) = points["taskmeter.processor.errors"]
    assert errors.value == 1
    assert errors.attributes == {"error.type": "MetricComputationError"}
    warnings = [r.getMessage() for r in caplog.records if VARIABLE in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"({limit};" in warnings[0] and f"at least {VALUE_LENGTH_NEEDED}" in warnings[0]
    assert _log.error_counts[f"env.{VARIABLE}"] >= 1


@pytest.mark.parametrize("limit", [None, VALUE_LENGTH_NEEDED])
def test_timestamps_that_fit_give_the_right_value_and_no_warning(
    limit: int | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No limit, or the one the warning asks for: the wall time is recorded, nothing said."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        points = measure_under(limit, monkeypatch)
    (point,) = points["p.t"]
    assert point.count == 1
    assert SLEEP_S <= point.sum < SLEEP_S + 0.5
    assert "taskmeter.processor.errors" not in points
    assert not warnings_about_the_limit(caplog)


def warnings_about_the_limit(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if VARIABLE in r.getMessage()]


@pytest.mark.parametrize("limit", [32, VALUE_LENGTH_NEEDED - 1])
def test_a_limit_that_cuts_only_task_ids_keeps_the_value_and_is_said(
    limit: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whole timestamps give the right value; the task ids cut short are said once."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        points = measure_under(limit, monkeypatch)
    (point,) = points["p.t"]
    assert SLEEP_S <= point.sum < SLEEP_S + 0.5
    assert "taskmeter.processor.errors" not in points
    (warning,) = warnings_about_the_limit(caplog)
    assert f"({limit};" in warning


def test_a_label_as_long_as_a_higher_limit_is_taken_as_cut(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Above the ids' length only a value that reaches the limit is said, a label here."""
    limit = VALUE_LENGTH_NEEDED + 8
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        measure_under(limit, monkeypatch, label="x" * (limit + 5))
    (warning,) = warnings_about_the_limit(caplog)
    assert f"({limit};" in warning
