"""MeasurementSpanProcessor: span Measurements equal metadata ones; it never raises."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskmeter import Task, time_method
from taskmeter import attributes as attr
from taskmeter.measure import (
    PROCESSOR_ERRORS,
    TASK_METRICS,
    CpuTimingMetric,
    MeasurementSpanProcessor,
    MemoryMetric,
    TimingMetric,
)
from taskmeter.testing import capture_spans

from ..helpers import MIB, burn_cpu, touch_bytes


class Metrics:
    """An in-memory meter provider, read back as {(name, frozen attributes): point}."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any, str]]]:
        found: dict[str, list[tuple[dict[str, Any], Any, str]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        found.setdefault(metric.name, []).append(
                            (dict(point.attributes or {}), point, metric.unit)
                        )
        return found


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    meters = Metrics()
    yield meters
    meters.provider.shutdown()


class Stage:
    """A pipeline task in LSST's shape."""

    def __init__(self, full_name: str) -> None:
        self.full_name = full_name
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return self.full_name

    @time_method
    def run(self, seconds: float, grow_mib: int = 0) -> None:
        block = touch_bytes(grow_mib * MIB) if grow_mib else None
        burn_cpu(seconds)
        del block

    @time_method
    def runDataRef(self) -> None:
        burn_cpu(0.01)


SPECS = (
    TimingMetric(target="ccdProcessor:isr.run", package="ip_isr", metric="IsrTime"),
    CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
    MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory"),
    TimingMetric(target="apPipe:ccdProcessor.runDataRef", package="pipe_tasks", metric="CcdTime"),
)


def test_span_measurements_equal_metadata_measurements(metrics: Metrics) -> None:
    """Each call's recorded value is what the spec measures on that call's metadata."""
    isr = Stage("apPipe.ccdProcessor.isr")
    other = Stage("apPipe.calibrate")
    processor = MeasurementSpanProcessor(SPECS, meter_provider=metrics.provider)
    with capture_spans(processor), Task("visit 42"):
        isr.run(0.05, grow_mib=32)
        other.run(0.01)  # not a target of any spec
    points = metrics.points()
    full = {"apPipe:ccdProcessor:isr": isr.metadata}
    for spec in SPECS[:3]:
        ((attributes, point, unit),) = points[spec.metric_name.lower()]
        expected = spec.measure(full)
        assert point.count == 1
        assert point.sum == expected.value
        assert unit == expected.unit
        assert attributes == {
            "taskmeter.metric.target": spec.target,
            attr.TASK_LABEL: "visit 42",
            attr.HOST_NAME: attributes[attr.HOST_NAME],
        }
    (_, cpu_point, _) = points["ip_isr.isrcputime"][0]
    # At least the CPU burnt; the figure is the process's, so touching 32 MiB
    # and the other threads alive in a test process (exporters, the monitor)
    # add to it.
    assert 0.05 <= cpu_point.sum < 0.3
    (_, memory_point, _) = points["ip_isr.isrmemory"][0]
    assert memory_point.sum >= 32 * MIB
    assert "pipe_tasks.ccdtime" not in points


def test_target_with_task_path_selects_only_that_tasks_calls(metrics: Metrics) -> None:
    """apPipe:ccdProcessor.runDataRef selects ccdProcessor's calls, not another task's."""
    processor = MeasurementSpanProcessor(SPECS[3:], meter_provider=metrics.provider)
    ccd = Stage("apPipe.ccdProcessor")
    with capture_spans(processor):
        ccd.runDataRef()
        Stage("apPipe.diaPipe").runDataRef()
        Stage("ccdProcessor").runDataRef()  # no apPipe above it: not the target
        ccd.runDataRef()
    ((attributes, point, _),) = metrics.points()["pipe_tasks.ccdtime"]
    assert point.count == 2
    assert attributes["taskmeter.metric.target"] == "apPipe:ccdProcessor.runDataRef"
    assert attr.TASK_LABEL not in attributes


def test_bad_timer_values_are_counted_never_raised(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Spans whose keys give no value raise nothing, are counted by type, and logged once."""
    processor = MeasurementSpanProcessor(
        [CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime")],
        meter_provider=metrics.provider,
        log_interval=3600,
    )
    with capture_spans(processor) as captured, caplog.at_level(logging.WARNING, "taskmeter"):
        for _ in range(5):
            with captured.tracer.start_as_current_span(
                "isr.run",
                attributes={
                    attr.TIMER_METHOD: "run",
                    attr.TIMER_TASK: "isr",
                    attr.TIMER_ATTRIBUTES["StartCpuTime"]: "ten",
                    attr.TIMER_ATTRIBUTES["EndCpuTime"]: 11.0,
                },
            ):
                pass
        with captured.tracer.start_as_current_span(
            "half", attributes={attr.TIMER_METHOD: "run", attr.TIMER_TASK: "isr"}
        ):
            pass  # no keys at all: no work, not an error
    points = metrics.points()
    ((attributes, point, unit),) = points[PROCESSOR_ERRORS]
    assert attributes == {"error.type": "MetricComputationError"}
    assert point.value == 5
    assert unit == "{error}"
    assert "ip_isr.isrcputime" not in points or points["ip_isr.isrcputime"][0][1].count == 0
    logged = [r for r in caplog.records if "MetricComputationError" in r.getMessage()]
    assert len(logged) == 1


def test_overflowing_span_values_are_counted_never_recorded(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A span whose CPU times or legacy-unit size overflow: each such metric is counted
    and logged, nothing raises, and the span's wall time is still recorded."""
    processor = MeasurementSpanProcessor(
        [
            TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime"),
            CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
            MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory",
                         legacy_maxrss_unit=1024),
        ],
        meter_provider=metrics.provider,
        log_interval=3600,
    )  # fmt: skip
    overflowing = {
        attr.TIMER_METHOD: "run",
        attr.TIMER_TASK: "isr",
        attr.TIMER_ATTRIBUTES["StartUtc"]: "2026-01-01T00:00:00+00:00",
        attr.TIMER_ATTRIBUTES["EndUtc"]: "2026-01-01T00:00:02+00:00",
        attr.TIMER_ATTRIBUTES["StartCpuTime"]: -1e308,
        attr.TIMER_ATTRIBUTES["EndCpuTime"]: 1.7e308,
        attr.TIMER_ATTRIBUTES["EndMaxResidentSetSize"]: 1e308,
    }
    with capture_spans(processor) as captured, caplog.at_level(logging.WARNING, "taskmeter"):
        captured.tracer.start_span("isr.run", attributes=overflowing).end()
    points = metrics.points()
    ((attributes, point, _),) = points[PROCESSOR_ERRORS]
    assert attributes == {"error.type": "MetricComputationError"} and point.value == 2
    ((_, wall, _),) = points["ip_isr.isrtime"]
    assert (wall.count, wall.sum) == (1, 2.0)
    for name in ("ip_isr.isrcputime", "ip_isr.isrmemory"):
        assert name not in points or points[name][0][1].count == 0
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "not a finite number" in logged


def test_failing_instrument_is_counted_never_raised(metrics: Metrics) -> None:
    """An exception inside the processor (here: a broken span) is absorbed and counted."""

    class BrokenSpan:
        name = "broken"

        @property
        def attributes(self) -> dict[str, Any]:
            raise RuntimeError("attributes unavailable")

    processor = MeasurementSpanProcessor(SPECS, meter_provider=metrics.provider)
    processor.on_end(BrokenSpan())  # type: ignore[arg-type]
    ((attributes, point, _),) = metrics.points()[PROCESSOR_ERRORS]
    assert attributes == {"error.type": "RuntimeError"} and point.value == 1


def test_task_spans_give_per_task_metrics(metrics: Metrics) -> None:
    """Task spans are recorded on the TASK_METRICS histograms by label and status."""
    processor = MeasurementSpanProcessor(meter_provider=metrics.provider)
    with capture_spans(processor):
        with Task("train") as train:
            burn_cpu(0.05)
        with pytest.raises(ValueError), Task("train"):
            raise ValueError("bad batch")
    points = metrics.points()
    duration = {a[attr.TASK_STATUS]: p for a, p, _ in points["taskmeter.task.duration"]}
    assert duration.keys() == {"finished", "failed"}
    assert duration["finished"].sum == train.duration
    cpu = {a[attr.TASK_STATUS]: p for a, p, _ in points["taskmeter.task.cpu.time"]}
    assert cpu["finished"].sum == train.cpu_time
    for attributes, _, _ in points["taskmeter.task.memory.peak"]:
        assert attributes[attr.TASK_LABEL] == "train"
    assert "taskmeter.task.energy.cpu" not in points, "no energy measured, none recorded"
    assert {m.name for m in TASK_METRICS} >= set(points) - {PROCESSOR_ERRORS}


def test_task_metrics_can_be_switched_off(metrics: Metrics) -> None:
    processor = MeasurementSpanProcessor(meter_provider=metrics.provider, task_metrics=False)
    with capture_spans(processor), Task("quiet"):
        pass
    assert metrics.points() == {}


def test_composes_with_batch_span_processor(metrics: Metrics) -> None:
    """Beside the SDK's BatchSpanProcessor, every span is still exported, and measured."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.add_span_processor(MeasurementSpanProcessor(SPECS, meter_provider=metrics.provider))
    import taskmeter

    taskmeter.use_tracer_provider(provider)
    try:
        isr = Stage("isr")
        with Task("visit"):
            for _ in range(3):
                isr.run(0.0)
        provider.force_flush()
    finally:
        taskmeter.use_tracer_provider(None)
        provider.shutdown()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("Stage.run") == 3 and "visit" in names
    ((_, point, _),) = metrics.points()["ip_isr.isrcputime"]
    assert point.count == 3


def test_specs_from_the_environment(
    metrics: Metrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TASKMETER_METRIC_SPECS names a spec file whose specs are added to the code's."""
    spec_file = tmp_path / "specs.toml"
    spec_file.write_text(
        '[[metrics]]\nkind = "memory"\ntarget = "isr.run"\npackage = "ip_isr"\nmetric = "Mem"\n'
    )
    monkeypatch.setenv("TASKMETER_METRIC_SPECS", str(spec_file))
    processor = MeasurementSpanProcessor(SPECS[:1], meter_provider=metrics.provider)
    assert processor.specs == (
        SPECS[0],
        MemoryMetric(target="isr.run", package="ip_isr", metric="Mem"),
    )


def test_spec_repeated_with_other_case_records_each_call_once(
    metrics: Metrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file spec naming the code's metric as the backend shows it (lowercased) is no second spec.

    The SDK lowercases instrument names: both specs would feed one histogram, twice a call.
    """
    spec_file = tmp_path / "specs.toml"
    spec_file.write_text(
        '[[metrics]]\nkind = "cpu_timing"\ntarget = "isr.run"\npackage = "ip_isr"\n'
        'metric = "isrcputime"\n'
    )
    monkeypatch.setenv("TASKMETER_METRIC_SPECS", str(spec_file))
    spec = CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime")
    processor = MeasurementSpanProcessor([spec], meter_provider=metrics.provider)
    assert processor.specs == (spec,)
    with capture_spans(processor):
        Stage("isr").run(0.0)
        Stage("isr").run(0.0)
    ((_, point, _),) = metrics.points()["ip_isr.isrcputime"]
    assert point.count == 2


def test_bad_spec_file_in_the_environment_is_a_warning(
    metrics: Metrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Configuration never stops the program: a bad file is reported and ignored."""
    spec_file = tmp_path / "specs.toml"
    spec_file.write_text('[[metrics]]\nkind = "speed"\n')
    monkeypatch.setenv("TASKMETER_METRIC_SPECS", str(spec_file))
    with caplog.at_level(logging.WARNING, "taskmeter"):
        processor = MeasurementSpanProcessor(meter_provider=metrics.provider)
    assert processor.specs == ()
    assert "TASKMETER_METRIC_SPECS" in caplog.text and "missing field" in caplog.text


def test_spec_file_in_the_environment_with_clashing_units_is_a_warning(
    metrics: Metrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file giving one metric two units (within itself, or against the code's specs)
    is reported and ignored: the processor is still made, with the code's specs."""
    clash_within = tmp_path / "within.toml"
    clash_within.write_text(
        '[[metrics]]\nkind = "timing"\ntarget = "a.run"\npackage = "p"\nmetric = "m"\n'
        '[[metrics]]\nkind = "memory"\ntarget = "b.run"\npackage = "p"\nmetric = "M"\n'
    )
    clash_with_code = tmp_path / "with_code.toml"
    clash_with_code.write_text(
        '[[metrics]]\nkind = "memory"\ntarget = "b.run"\npackage = "ip_isr"\n'
        'metric = "IsrCpuTime"\n'
    )
    for spec_file in (clash_within, clash_with_code):
        monkeypatch.setenv("TASKMETER_METRIC_SPECS", str(spec_file))
        with caplog.at_level(logging.WARNING, "taskmeter"):
            processor = MeasurementSpanProcessor(SPECS[1:2], meter_provider=metrics.provider)
        assert processor.specs == SPECS[1:2]
    assert str(clash_within) in caplog.text and "units 's'" in caplog.text


def test_bad_arguments_are_rejected(metrics: Metrics) -> None:
    with pytest.raises(TypeError, match="metric spec"):
        MeasurementSpanProcessor(["isr.run"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="MeterProvider"):
        MeasurementSpanProcessor(meter_provider=object())  # type: ignore[arg-type]
    for wrong in (None, 5, "isr.run"):
        with pytest.raises(TypeError, match="specs must be MetricSpec objects"):
            MeasurementSpanProcessor(wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="units"):
        MeasurementSpanProcessor(
            [
                TimingMetric(target="a.run", package="p", metric="m"),
                MemoryMetric(target="b.run", package="p", metric="M"),
            ],
            meter_provider=metrics.provider,
        )
    with pytest.raises(ValueError, match=r"given as timing .* and as cpu_timing .* would mix them"):
        MeasurementSpanProcessor(
            [
                TimingMetric(target="a.run", package="p", metric="m"),
                CpuTimingMetric(target="a.run", package="p", metric="M"),
            ],
            meter_provider=metrics.provider,
        )
    with pytest.raises(ValueError, match="log_interval"):
        MeasurementSpanProcessor(log_interval=-1)


def test_raw_attribute_shortcut_and_public_property_agree(metrics: Metrics) -> None:
    """A span without the SDK's internals (public attributes only) is measured the same."""
    isr = Stage("isr")
    with capture_spans() as captured:
        isr.run(0.0)
    span = captured.one("Stage.run")

    class PublicOnly:
        def __init__(self) -> None:
            self.name = span.name
            self.attributes = dict(span.attributes or {})

    processor = MeasurementSpanProcessor(SPECS[1:2], meter_provider=metrics.provider)
    processor.on_end(span)
    processor.on_end(PublicOnly())  # type: ignore[arg-type]
    ((_, point, _),) = metrics.points()["ip_isr.isrcputime"]
    assert point.count == 2
    assert point.min == point.max
