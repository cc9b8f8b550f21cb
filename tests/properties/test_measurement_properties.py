"""Measurements from metadata and spans of any shape: a value, NoWorkFound or
MetricComputationError, and a span processor that never raises and never records garbage."""

from __future__ import annotations

import contextlib
import datetime
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from taskmeter import _log
from taskmeter import attributes as attr
from taskmeter.measure import (
    CpuTimingMetric,
    Measurement,
    MeasurementSpanProcessor,
    MemoryMetric,
    MetricComputationError,
    NoWorkFound,
    TimingMetric,
)

from .strategies import json_values, odd_scalars

SPECS = (
    TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime"),
    CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
    MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory"),
)
SUFFIXES = (
    "StartUtc",
    "EndUtc",
    "StartCpuTime",
    "EndCpuTime",
    "EndMaxResidentSetSize",
)

values = st.one_of(odd_scalars, st.lists(odd_scalars, max_size=3), json_values(odd_scalars))


@given(
    st.dictionaries(st.sampled_from(SUFFIXES), values, max_size=5),
    st.one_of(st.none(), odd_scalars),
    st.booleans(),
)
def test_any_timer_keys_measure_or_raise_the_documented_errors(
    keys: dict[str, Any], version: Any, nested: bool
) -> None:
    """Timer keys holding anything: a finite Measurement, NoWorkFound or MetricComputationError."""
    flat = {f"isr.run{suffix}": value for suffix, value in keys.items()}
    if version is not None:
        flat["isr.__version__"] = version
    metadata: Any = flat
    if nested:
        metadata = {"isr": {key.split(".", 1)[1]: value for key, value in flat.items()}}
    for spec in SPECS:
        try:
            measurement = spec.measure(metadata)
        except (NoWorkFound, MetricComputationError):
            continue
        assert isinstance(measurement, Measurement)
        assert math.isfinite(measurement.value) and measurement.value >= 0


@given(json_values())
def test_any_metadata_document(document: Any) -> None:
    """A metadata document of any shape: measured, or TypeError for a non-mapping."""
    for spec in SPECS:
        with contextlib.suppress(NoWorkFound, MetricComputationError, TypeError):
            spec.measure(document)


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.lists(st.floats(min_value=0, max_value=1e3, allow_nan=False), max_size=3),
)
def test_cpu_timing_is_the_last_calls_difference(
    start: float, length: float, earlier: list[float]
) -> None:
    """CpuTiming is EndCpuTime - StartCpuTime of the last call, exactly."""
    starts = [*earlier, start]
    ends = [*(e + 1 for e in earlier), start + length]
    value = SPECS[1].measure({"isr.runStartCpuTime": starts, "isr.runEndCpuTime": ends}).value
    assert value == (start + length) - start


@given(
    st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
    st.timedeltas(min_value=datetime.timedelta(0), max_value=datetime.timedelta(days=3)),
)
def test_timing_is_the_utc_difference(start: datetime.datetime, length: datetime.timedelta) -> None:
    begin = start.replace(tzinfo=datetime.UTC)
    metadata = {"isr.runStartUtc": begin.isoformat(), "isr.runEndUtc": (begin + length).isoformat()}
    assert SPECS[0].measure(metadata).value == length.total_seconds()


@given(st.integers(min_value=0, max_value=2**50), st.sampled_from([None, 0, 1, 2]))
def test_memory_units_follow_the_version(size: int, version: int | None) -> None:
    """Bytes from version 1 on; before that, the platform's ru_maxrss unit."""
    metadata: dict[str, Any] = {"isr.runEndMaxResidentSetSize": size}
    if version is not None:
        metadata["isr.__version__"] = version
    value = SPECS[2].measure(metadata).value
    expected = size if (version or 0) >= 1 else size * SPECS[2].legacy_maxrss_unit
    assert value == float(expected)


attribute_values = st.one_of(
    odd_scalars,
    st.tuples(odd_scalars, odd_scalars),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
attribute_names = st.one_of(
    st.sampled_from(
        [
            attr.TIMER_METHOD,
            attr.TIMER_TASK,
            attr.TASK_ID,
            attr.TASK_LABEL,
            attr.TASK_STATUS,
            attr.HOST_NAME,
            attr.DURATION,
            attr.CPU_TIME,
            attr.MEMORY_PEAK,
            attr.ENERGY_CPU,
            *attr.TIMER_ATTRIBUTES.values(),
        ]
    ),
    st.text(max_size=10),
)


def _processor() -> tuple[MeasurementSpanProcessor, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    processor = MeasurementSpanProcessor(list(SPECS), meter_provider=provider)
    return processor, reader


@given(
    st.lists(
        st.tuples(
            st.text(max_size=10),
            st.dictionaries(attribute_names, attribute_values, max_size=8),
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["run", "isr.run", None]),
)
def test_processor_never_raises_and_records_only_figures(
    spans: list[tuple[str, dict[str, Any]]], method: str | None
) -> None:
    """Spans whose attributes have any types: on_end returns; every point recorded is a
    finite, non-negative number; the rest is counted as errors."""
    processor, reader = _processor()
    for name, attributes in spans:
        if method is not None and attr.TIMER_METHOD in attributes:
            attributes[attr.TIMER_METHOD] = method
        span = ReadableSpan(name=name, attributes=attributes)  # type: ignore[arg-type]
        processor.on_end(span)
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    total = getattr(point, "sum", None)
                    if total is None:
                        total = point.value
                    assert math.isfinite(total) and total >= 0, (metric.name, total)
    assert all(key.startswith("measure.") for key in _log.error_counts)
