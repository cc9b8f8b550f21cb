"""Metric specs give lsst.verify's Measurements and errors on known metadata."""

from __future__ import annotations

import datetime
import json
import math
import sys
from typing import Any

import pytest
import yaml
from lsst.utils.timer import duration_from_timeMethod

from taskmeter import time_method
from taskmeter.measure import (
    CpuTimingMetric,
    Measurement,
    MemoryMetric,
    MetricComputationError,
    NoWorkFound,
    TimingMetric,
    load_metadata,
)
from taskmeter.measure.specs import MetricSpec

from ..helpers import burn_cpu


def timer_keys(
    method: str, start_utc: str, end_utc: str, start_cpu: float, end_cpu: float, end_rss: int
) -> dict[str, list[Any]]:
    """One call's keys, as lists (the way timeMethod appends them)."""
    return {
        f"{method}StartUtc": [start_utc],
        f"{method}EndUtc": [end_utc],
        f"{method}StartCpuTime": [start_cpu],
        f"{method}EndCpuTime": [end_cpu],
        f"{method}StartMaxResidentSetSize": [end_rss // 2],
        f"{method}EndMaxResidentSetSize": [end_rss],
    }


def full_metadata() -> dict[str, Any]:
    """A getFullMetadata()-shaped mapping: apPipe, its ccdProcessor, and isr below it."""
    return {
        "apPipe": {
            "__version__": 1,
            **timer_keys(
                "runDataRef",
                "2026-01-01T12:00:00.000000+00:00",
                "2026-01-01T12:01:30.500000+00:00",
                10.0,
                95.25,
                3 << 30,
            ),
        },
        "apPipe:ccdProcessor": {
            "__version__": 1,
            **timer_keys(
                "runDataRef",
                "2026-01-01T12:00:01.000000+00:00",
                "2026-01-01T12:01:00.250000+00:00",
                11.0,
                60.5,
                2 << 30,
            ),
        },
        "apPipe:ccdProcessor:isr": {
            "__version__": 1,
            **timer_keys(
                "run",
                "2026-01-01T12:00:02.000000+00:00",
                "2026-01-01T12:00:12.000000+00:00",
                12.0,
                21.75,
                1 << 30,
            ),
        },
    }


def timing(target: str) -> TimingMetric:
    return TimingMetric(target=target, package="pipe_tasks", metric="Time")


def cpu(target: str) -> CpuTimingMetric:
    return CpuTimingMetric(target=target, package="pipe_tasks", metric="CpuTime")


def memory(target: str, **kwargs: Any) -> MemoryMetric:
    return MemoryMetric(target=target, package="pipe_tasks", metric="Memory", **kwargs)


@pytest.mark.parametrize(
    ("target", "wall", "cpu_s", "rss"),
    [
        ("apPipe:ccdProcessor.runDataRef", 59.25, 49.5, 2 << 30),
        ("ccdProcessor.runDataRef", 59.25, 49.5, 2 << 30),
        ("isr.run", 10.0, 9.75, 1 << 30),
        ("apPipe.runDataRef", 90.5, 85.25, 3 << 30),
    ],
)
def test_values_from_nested_full_metadata(target: str, wall: float, cpu_s: float, rss: int) -> None:
    """Wall time from Utc, CPU from CpuTime, memory in bytes (version 1), by target."""
    metadata = full_metadata()
    measured = timing(target).measure(metadata)
    assert measured == Measurement(
        "pipe_tasks.Time",
        wall,
        "s",
        notes={"estimator": "utils.timer.timeMethod", "target": target},
        extras=measured.extras,
        identifier=measured.identifier,
    )
    assert measured.extras.keys() == {"start", "end"}
    assert cpu(target).measure(metadata).value == pytest.approx(cpu_s)
    assert cpu(target).measure(metadata).unit == "s"
    assert memory(target).measure(metadata).value == rss
    assert memory(target).measure(metadata).unit == "By"


def test_flat_and_nested_metadata_measure_the_same() -> None:
    """{"isr.runStartCpuTime": ...} and {"isr": {"runStartCpuTime": ...}} are one thing."""
    nested = full_metadata()
    flat = {f"{task}.{key}": value for task, keys in nested.items() for key, value in keys.items()}
    for spec in (timing("isr.run"), cpu("isr.run"), memory("isr.run")):
        assert spec.measure(flat).value == spec.measure(nested).value


def test_scalars_are_one_call() -> None:
    """Values may be scalars instead of one-item lists."""
    metadata = {"runStartCpuTime": 1.0, "runEndCpuTime": 3.5}
    assert cpu("run").measure(metadata).value == 2.5


def test_last_call_wins_on_a_metadata_mapping() -> None:
    """With several calls recorded, the last start and end are used (lsst's getScalar)."""
    metadata = {
        "runStartCpuTime": [1.0, 10.0, 100.0],
        "runEndCpuTime": [2.0, 30.0, 107.5],
        "runStartUtc": ["2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"],
        "runEndUtc": ["2026-01-01T00:00:05+00:00", "2026-01-01T00:01:42+00:00"],
        "runEndMaxResidentSetSize": [100, 300, 200],
        "__version__": 1,
    }
    assert cpu("run").measure(metadata).value == 7.5
    assert timing("run").measure(metadata).value == 42.0
    assert memory("run").measure(metadata).value == 200


def test_cpu_timing_extras_only_when_utc_keys_exist() -> None:
    """CpuTiming's start/end extras come from the Utc keys when they are there."""
    assert cpu("run").measure({"runStartCpuTime": 1.0, "runEndCpuTime": 2.0}).extras == {}


def test_missing_method_is_no_work_found() -> None:
    """Neither key of the target: NoWorkFound, for every kind."""
    for spec in (timing("isr.runX"), cpu("calibrate.run"), memory("characterize.run")):
        with pytest.raises(NoWorkFound):
            spec.measure(full_metadata())
    with pytest.raises(NoWorkFound):
        timing("run").measure({})


@pytest.mark.parametrize("missing", ["Start", "End"])
def test_one_key_of_a_pair_is_an_error(missing: str) -> None:
    """Start without End (or the reverse): MetricComputationError naming the missing key."""
    metadata = full_metadata()
    for spec, key in ((timing("isr.run"), "Utc"), (cpu("isr.run"), "CpuTime")):
        broken = {task: dict(keys) for task, keys in metadata.items()}
        del broken["apPipe:ccdProcessor:isr"][f"run{missing}{key}"]
        with pytest.raises(MetricComputationError, match=f"run{missing}{key}"):
            spec.measure(broken)


@pytest.mark.parametrize(
    ("spec", "key", "value"),
    [
        (cpu("run"), "runEndCpuTime", "95.0"),
        (cpu("run"), "runEndCpuTime", math.nan),
        (cpu("run"), "runEndCpuTime", math.inf),
        (cpu("run"), "runEndCpuTime", [[1.0, 2.0]]),
        (cpu("run"), "runEndCpuTime", []),
        (cpu("run"), "runEndCpuTime", True),
        (timing("run"), "runEndUtc", 1700000000.0),
        (timing("run"), "runEndUtc", "yesterday"),
        (timing("run"), "runEndUtc", math.nan),
        (memory("run"), "runEndMaxResidentSetSize", "1024"),
        (memory("run"), "runEndMaxResidentSetSize", math.nan),
        (memory("run"), "runEndMaxResidentSetSize", 1.5),
        (memory("run"), "runEndMaxResidentSetSize", -1),
        (memory("run"), "runEndMaxResidentSetSize", [[1024]]),
        (memory("run"), "__version__", "1"),
    ],
)
def test_badly_typed_values_are_errors(spec: MetricSpec, key: str, value: Any) -> None:
    """Strings, NaN, infinities, nested lists, empty lists, booleans: MetricComputationError."""
    metadata: dict[str, Any] = {
        "__version__": 1,
        **timer_keys("run", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", 1, 2, 4096),
    }
    metadata[key] = value
    with pytest.raises(MetricComputationError):
        spec.measure(metadata)


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        ("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:30.5+00:00", 90.5),
        ("2026-01-01T00:00:00.000001+00:00", "2026-01-01T00:00:01.000001+00:00", 1.0),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:02.25Z", 2.25),
        ("2026-01-01 00:00:00", "2026-01-01 00:00:03", 3.0),
    ],
)
def test_whole_timestamps_of_other_writers_are_read(start: str, end: str, seconds: float) -> None:
    """Any number of decimals, ``Z``, a space for ``T``: what metadata files hold."""
    metadata = {"runStartUtc": start, "runEndUtc": end}
    assert timing("run").measure(metadata).value == pytest.approx(seconds)


@pytest.mark.parametrize("cut", ["2026-01-01T00:00", "2026-01-01", "2026-01-01T00:00:01+00:"])
def test_timestamps_cut_short_are_errors(cut: str) -> None:
    """A timestamp without its seconds (or with half an offset) is read by fromisoformat,
    to the wrong instant: an error instead."""
    metadata = {"runStartUtc": "2026-01-01T00:00:00+00:00", "runEndUtc": cut}
    with pytest.raises(MetricComputationError, match="not a complete ISO 8601 time"):
        timing("run").measure(metadata)


def test_ambiguous_target_is_an_error() -> None:
    """A target matching the keys of two tasks: MetricComputationError listing both."""
    metadata = full_metadata()
    with pytest.raises(MetricComputationError, match=r"apPipe\.runDataRef.*ccdProcessor"):
        timing("runDataRef").measure(metadata)
    with pytest.raises(MetricComputationError, match="matches several"):
        memory("runDataRef").measure(metadata)


def test_unpaired_and_backwards_calls_are_errors() -> None:
    """Start and End lists of different lengths, or an end before its start."""
    with pytest.raises(MetricComputationError, match="not paired"):
        cpu("run").measure({"runStartCpuTime": [1.0, 2.0], "runEndCpuTime": [1.5]})
    with pytest.raises(MetricComputationError, match="before"):
        cpu("run").measure({"runStartCpuTime": 5.0, "runEndCpuTime": 4.0})
    with pytest.raises(MetricComputationError, match="offset"):
        timing("run").measure(
            {"runStartUtc": "2026-01-01T00:00:00", "runEndUtc": "2026-01-01T00:00:01+00:00"}
        )


def test_overflowing_differences_and_sizes_are_errors_naming_the_keys() -> None:
    """A CPU-time difference or a legacy-unit size past a float's range is an error
    naming the keys, not a Measurement of infinity (a ValueError)."""
    with pytest.raises(
        MetricComputationError,
        match=r"isr\.runEndCpuTime - isr\.runStartCpuTime is not a finite number",
    ):
        cpu("isr.run").measure({"isr.runStartCpuTime": -1e308, "isr.runEndCpuTime": 1.7e308})
    old = {"isr.runEndMaxResidentSetSize": [1e308]}
    with pytest.raises(MetricComputationError, match=r"isr\.runEndMaxResidentSetSize .*1024"):
        memory("isr.run", legacy_maxrss_unit=1024).measure(old)
    with pytest.raises(MetricComputationError, match="not a finite number of bytes"):
        memory("isr.run", legacy_maxrss_unit=10**400).measure({"isr.runEndMaxResidentSetSize": 1})
    assert memory("isr.run", legacy_maxrss_unit=1024).measure({**old, "isr.__version__": 1}).value


def test_timestamps_far_apart_give_a_finite_time() -> None:
    """The earliest and latest ISO 8601 times, offsets pushing them further apart, are
    still a finite number of seconds."""
    metadata = {
        "runStartUtc": "0001-01-01T00:00:00+23:59",
        "runEndUtc": "9999-12-31T23:59:59-23:59",
    }
    assert math.isfinite(timing("run").measure(metadata).value)


def test_datetime_values_are_read_as_the_times_they_are() -> None:
    """YAML reads unquoted timestamps as datetimes: read like the ISO strings they were,
    naive or aware, and the extras are ISO strings again."""
    aware = yaml.safe_load(
        "runStartUtc: [2020-01-01T00:00:00+00:00]\n"
        "runEndUtc: [2020-01-01T01:00:01.5+01:00]\n"
        "runStartCpuTime: [1.0]\nrunEndCpuTime: [2.0]\n"
    )
    assert isinstance(aware["runStartUtc"][0], datetime.datetime)
    measured = timing("run").measure(aware)
    assert measured.value == 1.5
    assert measured.extras == {
        "start": "2020-01-01T00:00:00+00:00",
        "end": "2020-01-01T01:00:01.500000+01:00",
    }
    assert cpu("run").measure(aware).extras == measured.extras
    naive = yaml.safe_load("runStartUtc: 2020-01-01 00:00:00\nrunEndUtc: 2020-01-01 00:00:03\n")
    assert timing("run").measure(naive).value == 3.0
    with pytest.raises(MetricComputationError, match="only one has a UTC offset"):
        timing("run").measure({**naive, "runEndUtc": aware["runEndUtc"]})


def test_old_metadata_without_version_is_in_the_platform_unit() -> None:
    """No __version__: ru_maxrss units (KiB on Linux), or the unit the spec is told."""
    old = {"runEndMaxResidentSetSize": [1000]}
    expected_unit = 1 if sys.platform == "darwin" else 1024
    assert memory("run").measure(old).value == 1000 * expected_unit
    assert memory("run", legacy_maxrss_unit=1).measure(old).value == 1000
    assert memory("run", legacy_maxrss_unit=4096).measure(old).value == 4096000
    assert memory("run").measure({**old, "__version__": 0}).value == 1000 * expected_unit
    assert memory("run").measure({**old, "__version__": 1}).value == 1000
    assert memory("run").measure({**old, "__version__": 2}).value == 1000


def test_version_key_is_the_target_tasks_own() -> None:
    """isr.run reads isr's __version__, not another task's."""
    metadata = {
        "isr": {"__version__": 1, "runEndMaxResidentSetSize": [2048]},
        "calibrate": {"runEndMaxResidentSetSize": [10]},
    }
    assert memory("isr.run").measure(metadata).value == 2048
    assert memory("calibrate.run").measure(metadata).value == 10 * memory("x").legacy_maxrss_unit


def test_bare_target_reads_the_version_of_the_task_whose_method_matched() -> None:
    """A target naming no task ("run") matches one method's keys and reads that task's
    __version__ once, wherever other tasks' versions are (here: new isr, legacy calibrate)."""
    unit = memory("x").legacy_maxrss_unit
    metadata = {
        "pipe": {"__version__": 1, "prepareEndMaxResidentSetSize": [7]},
        "pipe:isr": {"__version__": 1, "runEndMaxResidentSetSize": [2048]},
        "pipe:calibrate": {"__version__": 0, "measureEndMaxResidentSetSize": [10]},
    }
    assert memory("run").measure(metadata).value == 2048
    assert memory("measure").measure(metadata).value == 10 * unit
    assert memory("prepare").measure(metadata).value == 7
    flat = {"runEndMaxResidentSetSize": [5], "__version__": 1, "isr.__version__": 0}
    assert memory("run").measure(flat).value == 5
    assert memory("run").measure({"runEndMaxResidentSetSize": [5]}).value == 5 * unit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "", "package": "p", "metric": "m"}, "target"),
        ({"target": "isr run", "package": "p", "metric": "m"}, "target"),
        ({"target": "isr.", "package": "p", "metric": "m"}, "target"),
        ({"target": "isr.runStartCpuTime", "package": "p", "metric": "m"}, "drop 'StartCpuTime'"),
        ({"target": "isr.run", "package": "pipe.tasks", "metric": "m"}, "periods"),
        ({"target": "isr.run", "package": "p", "metric": "Isr.Time"}, "periods"),
        ({"target": "isr.run", "package": "", "metric": "m"}, "package"),
        ({"target": "isr.run", "package": "p", "metric": "a b"}, "metric"),
        ({"target": "isr.run", "package": "9p", "metric": "m"}, "start with a letter"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, str], message: str) -> None:
    """Bad targets and names are ValueErrors that say what is wrong."""
    with pytest.raises(ValueError, match=message):
        TimingMetric(**kwargs)


def test_constructor_rejects_wrong_types() -> None:
    with pytest.raises(TypeError, match="target"):
        TimingMetric(target=3, package="p", metric="m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="legacy_maxrss_unit"):
        memory("run", legacy_maxrss_unit=0)
    with pytest.raises(TypeError, match="metadata"):
        timing("run").measure(["not", "metadata"])


class Isr:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    def run(self, seconds: float) -> None:
        burn_cpu(seconds)


def test_measurements_of_our_timer_agree_with_lsst_duration_from_time_method() -> None:
    """On metadata our decorator wrote, our values equal lsst.utils' own reading of it."""
    isr = Isr()
    isr.run(0.05)
    isr.run(0.1)
    full = {"isr": isr.metadata}
    assert cpu("isr.run").measure(full).value == pytest.approx(
        duration_from_timeMethod(isr.metadata, "run", "Cpu")
    )
    assert timing("isr.run").measure(full).value == pytest.approx(
        duration_from_timeMethod(isr.metadata, "run", "Utc")
    )
    assert cpu("isr.run").measure(full).value == pytest.approx(0.1, abs=0.02)


def lsst_pipeline() -> Any:
    """Run a two-level lsst.pipe.base Task whose methods use lsst.utils' timeMethod."""
    import lsst.pex.config as pex_config
    import lsst.pipe.base as pipe_base
    from lsst.utils.timer import timeMethod

    class IsrConfig(pex_config.Config):
        pass

    class IsrTask(pipe_base.Task):
        ConfigClass = IsrConfig
        _DefaultName = "isr"

        @timeMethod
        def run(self, seconds: float) -> None:
            burn_cpu(seconds)

    class ProcessConfig(pex_config.Config):
        isr = pex_config.ConfigurableField(target=IsrTask, doc="instrument signature removal")

    class ProcessCcdTask(pipe_base.Task):
        ConfigClass = ProcessConfig
        _DefaultName = "ccdProcessor"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.makeSubtask("isr")

        @timeMethod
        def runDataRef(self) -> None:
            self.isr.run(0.02)
            self.isr.run(0.08)

    task = ProcessCcdTask()
    task.runDataRef()
    return task.getFullMetadata()


def test_lsst_task_metadata_object_json_and_yaml(tmp_path: Any) -> None:
    """A real TaskMetadata, and its JSON and YAML forms, measure alike and as expected."""
    full = lsst_pipeline()
    last_start = full.getArray("ccdProcessor:isr.runStartCpuTime")[-1]
    last_end = full.getArray("ccdProcessor:isr.runEndCpuTime")[-1]
    json_file = tmp_path / "ccdProcessor_metadata.json"
    json_file.write_text(full.model_dump_json())
    yaml_file = tmp_path / "ccdProcessor_metadata.yaml"
    yaml_file.write_text(yaml.safe_dump(full.model_dump()))
    assert json.loads(json_file.read_text()).keys() == {"scalars", "arrays", "metadata"}
    sources = (full, load_metadata(json_file), load_metadata(yaml_file))
    for spec in (
        cpu("ccdProcessor:isr.run"),
        cpu("isr.run"),
        timing("ccdProcessor.runDataRef"),
        memory("ccdProcessor.runDataRef"),
    ):
        values = {spec.measure(source).value for source in sources}
        assert len(values) == 1, spec
    assert cpu("isr.run").measure(full).value == pytest.approx(last_end - last_start)
    assert cpu("isr.run").measure(full).value == pytest.approx(0.08, abs=0.02)
    assert memory("ccdProcessor.runDataRef").measure(full).value == full.getScalar(
        "ccdProcessor.runDataRefEndMaxResidentSetSize"
    )
    # "run" alone selects isr's run (runDataRef's keys do not contain "runStartCpuTime"), and
    # its memory reads isr's own __version__ (not ccdProcessor's as well).
    assert cpu("run").measure(full).value == cpu("isr.run").measure(full).value
    assert memory("run").measure(full).value == full.getScalar(
        "ccdProcessor:isr.runEndMaxResidentSetSize"
    )
