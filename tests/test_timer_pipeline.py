"""time_method on the objects and methods a Rubin pipeline has, beside lsst.utils' timeMethod.

Each scenario runs lsst.utils' decorator and ours on the same class and pins
that they agree, or, where lsst.utils breaks or gives keys that measure
nothing, what taskmeter does instead.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import resource
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lsst.utils.logging import getLogger as lsst_get_logger
from lsst.utils.timer import timeMethod as lsst_time_method
from lsst.utils.usage import _get_rusage_multiplier as lsst_rusage_multiplier

from taskmeter import attributes as attr
from taskmeter import time_method
from taskmeter._rusage import PROCESS_RSS_PEAK, maxrss_unit_bytes
from taskmeter.measure import (
    CpuTimingMetric,
    MeasurementSpanProcessor,
    MemoryMetric,
    MetricComputationError,
    TimingMetric,
)
from taskmeter.testing import capture_spans
from taskmeter.timer import duration_from_time_method

from .measure.test_processor import Metrics
from .property_set import PropertySet
from .test_timer import USAGE_KEYS

DECORATORS: dict[str, Callable[..., Any]] = {"lsst": lsst_time_method, "ours": time_method}
RUN_KEYS = {f"run{phase}{key}" for phase in ("Start", "End") for key in ("Utc", *USAGE_KEYS)}


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    meters = Metrics()
    yield meters
    meters.provider.shutdown()


def _shape(metadata: PropertySet) -> dict[str, tuple[str, int]]:
    return {
        name: (type(metadata.getArray(name)[-1]).__name__, len(metadata.getArray(name)))
        for name in metadata.paramNames()
    }


# ---------------------------------------------------------------- kinds of metadata


def test_property_set_gets_lsst_s_keys_types_and_counts() -> None:
    """On a PropertySet (integers through addLongLong, the rest through add), two calls
    of ours give the names, value types and counts two calls of lsst's give, and its
    full-metadata form measures and reads back as a dict does."""
    shapes = {}
    full = PropertySet()
    for name, decorate in DECORATORS.items():

        class Isr:
            def __init__(self) -> None:
                self.metadata = PropertySet()
                self.log = lsst_get_logger("isr")  # an LsstLogAdapter, as in a Task

            @decorate
            def run(self) -> int:
                return sum(i * i for i in range(20_000))

        isr = Isr()
        isr.run()
        isr.run()
        shapes[name] = _shape(isr.metadata)
        full.set(f"{name}:isr", isr.metadata)  # getFullMetadata()'s shape
    assert shapes["ours"] == shapes["lsst"]
    assert set(shapes["ours"]) == RUN_KEYS | {"__version__", "nodeName"}
    assert shapes["ours"]["runStartMaxResidentSetSize"] == ("int", 2)
    assert shapes["ours"]["__version__"] == ("int", 1)

    ours = full.getScalar("ours:isr")
    for spec in (
        TimingMetric(target="ours:isr.run", package="ip_isr", metric="IsrTime"),
        CpuTimingMetric(target="ours:isr.run", package="ip_isr", metric="IsrCpuTime"),
        MemoryMetric(target="ours:isr.run", package="ip_isr", metric="IsrMemory"),
    ):
        measurement = spec.measure(full)
        assert measurement.value == spec.measure({"ours:isr": _as_dict(ours)}).value
    cpu = (
        full.getArray("ours:isr.runEndCpuTime")[-1] - full.getArray("ours:isr.runStartCpuTime")[-1]
    )
    assert duration_from_time_method(ours, "run") == cpu > 0


def _as_dict(metadata: PropertySet) -> dict[str, Any]:
    return {name: metadata.getArray(name) for name in metadata.paramNames()}


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_none_and_missing_metadata_leave_the_call_alone(name: str) -> None:
    """``metadata = None`` or no attribute at all: the method runs and returns, as with lsst's."""
    decorate = DECORATORS[name]

    class NoneMetadata:
        metadata = None

        @decorate
        def run(self) -> int:
            return 7

    class NoMetadata:
        @decorate
        def run(self) -> int:
            return 8

    assert NoneMetadata().run() == 7
    assert NoneMetadata.metadata is None
    assert NoMetadata().run() == 8


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_metadata_made_on_first_access_gets_both_halves(name: str) -> None:
    """A ``metadata`` property that creates the mapping when first read gets one Start
    and one End set per call, as lsst's does."""
    decorate = DECORATORS[name]

    class Lazy:
        def __init__(self) -> None:
            self._metadata: dict[str, Any] | None = None

        @property
        def metadata(self) -> dict[str, Any]:
            if self._metadata is None:
                self._metadata = {}
            return self._metadata

        @decorate
        def run(self) -> None:
            pass

    task = Lazy()
    task.run()
    task.run()
    assert task._metadata is not None
    assert {k: len(v) for k, v in task._metadata.items() if isinstance(v, list)} == dict.fromkeys(
        RUN_KEYS, 2
    )


def test_metadata_first_set_inside_the_call_gets_no_half_call() -> None:
    """A method that creates its ``metadata`` while it runs: lsst's writes the End keys
    alone, which lsst.verify cannot measure; ours writes the call nowhere (its span
    still has both halves), so the metadata holds whole calls only."""
    results = {}
    for name, decorate in DECORATORS.items():

        class Late:
            metadata: dict[str, Any] | None = None

            @decorate
            def run(self) -> None:
                self.metadata = {}

        task = Late()
        task.run()
        results[name] = task.metadata
    assert results["lsst"] is not None and "runEndCpuTime" in results["lsst"]
    assert "runStartCpuTime" not in results["lsst"]
    with pytest.raises(MetricComputationError):
        CpuTimingMetric(target="run", package="p", metric="m").measure(results["lsst"])
    assert results["ours"] == {}


# ---------------------------------------------------------------- kinds of method


def test_property_under_the_decorator_is_refused_and_over_it_is_timed() -> None:
    """``@time_method`` on a property object is a TypeError at class creation (lsst's
    turns the attribute into a method that fails when called); ``@property`` over
    ``@time_method`` times each read, as lsst's does."""
    with pytest.raises(TypeError, match="decorates a function or method, not <property"):

        class Wrong:
            @time_method  # type: ignore[prop-decorator]
            @property
            def area(self) -> int:
                return 1

    for decorate in DECORATORS.values():

        class Right:
            def __init__(self) -> None:
                self.metadata: dict[str, Any] = {}

            @property
            @decorate
            def area(self) -> int:
                return 4

        shape = Right()
        assert shape.area + shape.area == 8
        assert len(shape.metadata["areaEndCpuTime"]) == 2


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_generator_method_is_timed_while_it_creates_the_generator(name: str) -> None:
    """lsst's times the call that returns the generator, not its iteration; so does ours."""
    decorate = DECORATORS[name]

    class Reader:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @decorate
        def rows(self) -> Iterator[int]:
            yield 1
            yield 2

    reader = Reader()
    rows = reader.rows()
    assert len(reader.metadata["rowsEndCpuTime"]) == 1, "End written before iteration"
    assert list(rows) == [1, 2]
    assert len(reader.metadata["rowsEndCpuTime"]) == 1


def test_staticmethod_without_arguments_runs_where_lsst_s_fails() -> None:
    """lsst's wrapper needs a first argument; ours times a call without one on its span."""

    class Tools:
        @staticmethod
        @lsst_time_method
        def theirs() -> int:
            return 1

        @staticmethod
        @time_method
        def ours() -> int:
            return 2

    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        Tools.theirs()
    with capture_spans() as captured:
        assert Tools.ours() == 2
    assert captured.one(
        "test_staticmethod_without_arguments_runs_where_lsst_s_fails.<locals>.Tools.ours"
    )


# ---------------------------------------------------------------- recursion and threads


class Recursive:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return "isr"

    @time_method
    def run(self, depth: int) -> int:
        return 0 if depth == 0 else 1 + self.run(depth - 1)


def test_recursive_calls_are_nested_spans_each_measured(metrics: Metrics) -> None:
    """A timed method calling itself appends one Start and one End per call (as lsst's),
    and each call is its own span, child of its caller, measured on its own."""
    processor = MeasurementSpanProcessor(
        [TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime")],
        meter_provider=metrics.provider,
    )
    task = Recursive()
    with capture_spans(processor) as captured:
        assert task.run(3) == 3
    assert {len(v) for v in task.metadata.values() if isinstance(v, list)} == {4}
    calls = captured.named("Recursive.run")
    assert len(calls) == 4
    by_id = {span.context.span_id: span for span in calls}
    roots = [span for span in calls if span.parent is None or span.parent.span_id not in by_id]
    assert len(roots) == 1
    ((_, point, _),) = metrics.points()["ip_isr.isrtime"]
    assert point.count == 4
    assert point.max == pytest.approx(_wall(roots[0]), abs=1e-3)


def _wall(span: Any) -> float:
    attributes = span.attributes
    start = datetime.fromisoformat(attributes[attr.TIMER_ATTRIBUTES["StartUtc"]])
    end = datetime.fromisoformat(attributes[attr.TIMER_ATTRIBUTES["EndUtc"]])
    return (end - start).total_seconds()


def test_calls_from_several_threads_at_once_are_all_recorded(metrics: Metrics) -> None:
    """Four threads calling one task's method 50 times each: every key holds 200 values
    (none lost), and the processor records 200 calls, each from its own span."""
    processor = MeasurementSpanProcessor(
        [CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime")],
        meter_provider=metrics.provider,
    )
    task = Recursive()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            task.run(0)

    with capture_spans(processor) as captured:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {k: len(v) for k, v in task.metadata.items() if isinstance(v, list)} == dict.fromkeys(
        RUN_KEYS, 200
    )
    assert len(captured.named("Recursive.run")) == 200
    ((_, point, _),) = metrics.points()["ip_isr.isrcputime"]
    assert point.count == 200
    assert point.min >= 0


# ---------------------------------------------------------------- keys and values


class Pair:
    """The same task twice, timed by lsst's decorator and by ours, logging to an
    LsstLogAdapter (what ``lsst.pipe.base.Task.log`` is)."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.log = lsst_get_logger("pipe.isr")

    def work(self) -> int:
        return sum(i * i for i in range(20_000))

    @lsst_time_method(logLevel=logging.INFO)
    def theirs(self) -> int:
        return self.work()

    @time_method(logLevel=logging.INFO)
    def ours(self) -> int:
        return self.work()


def test_every_key_of_ours_lies_between_lsst_s_readings_around_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lsst, ours, lsst on one task: every Start and End value of ours (all the
    counters, the times, MaxResidentSetSize in bytes, the UTC stamp) lies between
    lsst's first and second readings, and the INFO lines to ``timer.pipe.isr`` through
    an LsstLogAdapter carry the same pairs, attributed to the same caller.  (No reset
    of the RSS mark is folded in: a reset lowers lsst's MaxResidentSetSize, not ours.)"""
    monkeypatch.setattr(PROCESS_RSS_PEAK, "peak_bytes", None)
    task = Pair()
    with caplog.at_level(logging.INFO, logger="timer.pipe.isr"):
        task.theirs()
        task.ours()
        task.theirs()
    metadata = task.metadata
    for phase in ("Start", "End"):
        for key in ("Utc", *USAGE_KEYS):
            (first, second), (ours,) = (
                metadata[f"theirs{phase}{key}"],
                metadata[f"ours{phase}{key}"],
            )
            if key == "Utc":
                first, ours, second = (datetime.fromisoformat(v) for v in (first, ours, second))
            assert type(ours) is type(first)
            assert first <= ours <= second, (phase, key)
    assert metadata["oursStartMaxResidentSetSize"][0] == pytest.approx(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * lsst_rusage_multiplier(), rel=0.5
    )
    records = [r for r in caplog.records if r.name == "timer.pipe.isr"]
    assert [r.levelno for r in records] == [logging.INFO] * 6
    pairs = [[item.split("=")[0] for item in r.getMessage().split("; ")] for r in records]
    assert [[name.replace("theirs", "") for name in p] for p in pairs[:2]] == [
        [name.replace("ours", "") for name in p] for p in pairs[2:4]
    ]
    assert {(r.filename, r.funcName) for r in records} == {(Path(__file__).name, _THIS)}


_THIS = "test_every_key_of_ours_lies_between_lsst_s_readings_around_it"


@pytest.mark.parametrize("system", ["Linux", "Darwin", "FreeBSD", "SunOS"])
def test_max_resident_set_size_unit_is_lsst_s_on_every_platform(
    system: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``ru_maxrss`` unit (bytes on macOS, pages on Solaris, KiB elsewhere) is the
    one lsst.utils multiplies by, so ``MaxResidentSetSize`` is bytes as in lsst's keys."""
    monkeypatch.setattr(platform, "system", lambda: system)
    assert maxrss_unit_bytes(system) == lsst_rusage_multiplier()


# ---------------------------------------------------------------- targets


class Verarbeitung:
    """A task whose method name is a non-ASCII Python identifier."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return "entzerrung"

    @time_method
    def läuft(self) -> None:
        pass


def test_method_with_a_non_ascii_name_is_a_target(metrics: Metrics, tmp_path: Path) -> None:
    """Python method names may be non-ASCII and lsst's timeMethod keys them by name; a
    spec (in code or in a spec file) targets such a method, measured from metadata
    and from spans alike."""
    from taskmeter.measure.specfile import load_specs

    spec_file = tmp_path / "metrics.toml"
    spec_file.write_text(
        '[[metrics]]\nkind = "timing"\ntarget = "entzerrung.läuft"\n'
        'package = "ip_isr"\nmetric = "LaeuftTime"\n',
        encoding="utf-8",
    )
    (spec,) = load_specs(spec_file)
    assert spec == TimingMetric(target="entzerrung.läuft", package="ip_isr", metric="LaeuftTime")
    task = Verarbeitung()
    with capture_spans(MeasurementSpanProcessor([spec], meter_provider=metrics.provider)):
        task.läuft()
    measured = spec.measure({"entzerrung": task.metadata})
    ((_, point, unit),) = metrics.points()["ip_isr.laeufttime"]
    assert (point.count, point.sum, unit) == (1, measured.value, "s")
    for target in ("entzerrung.2läuft", "entzerrung.lä uft", "entzerrung.läuft."):
        with pytest.raises(ValueError, match="not a method name"):
            TimingMetric(target=target, package="ip_isr", metric="M")


def test_several_specs_on_one_method_and_one_on_a_method_never_called(
    metrics: Metrics,
) -> None:
    """Four specs naming ``isr.run`` (two timings under different names) each record
    every call, with the value the metadata gives for the last; a spec whose method
    never ran records nothing and is "no work found", not an error."""
    from taskmeter.measure import measure_metadata

    specs = [
        TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime"),
        TimingMetric(target="run", package="pipe_tasks", metric="AnyRunTime"),
        CpuTimingMetric(target="isr.run", package="ip_isr", metric="IsrCpuTime"),
        MemoryMetric(target="isr.run", package="ip_isr", metric="IsrMemory"),
        TimingMetric(target="isr.runDataRef", package="ip_isr", metric="NeverTime"),
    ]
    task = Recursive()
    with capture_spans(MeasurementSpanProcessor(specs, meter_provider=metrics.provider)):
        task.run(0)
        task.run(0)
    points = metrics.points()
    report = measure_metadata({"isr": task.metadata}, specs)
    assert [m.metric for m in report.measurements] == [s.metric_name for s in specs[:4]]
    assert [(spec.metric_name, reason) for spec, reason in report.no_work] == [
        ("ip_isr.NeverTime", "no StartUtc/EndUtc keys for target 'isr.runDataRef'")
    ]
    assert report.errors == []
    for measurement in report.measurements:
        ((_, point, unit),) = points[measurement.metric.lower()]
        assert (point.count, unit) == (2, measurement.unit)
        assert point.max >= measurement.value >= point.min  # the last call is one of them
    assert "ip_isr.nevertime" not in points


class Gathering:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    async def step(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @time_method
    async def run(self) -> list[float]:
        return list(await asyncio.gather(self.step(0.15), self.step(0.05)))


def test_gathered_coroutines_are_sibling_spans_each_timed_to_completion() -> None:
    """Two timed coroutines awaited at once under a timed coroutine: each is a child
    span of the caller timed to its own completion (lsst's timeMethod would time only
    the creation of the coroutine), and the metadata gets one Start and End each."""
    task = Gathering()
    with capture_spans() as captured:
        assert asyncio.run(task.run()) == [0.15, 0.05]
    run = captured.one("Gathering.run")
    steps = sorted(captured.named("Gathering.step"), key=_wall)
    assert [span.parent.span_id for span in steps if span.parent] == [run.context.span_id] * 2
    # Order and lower bounds only: a loaded machine delays the event loop, never speeds it.
    assert 0.05 <= _wall(steps[0]) <= _wall(steps[1]) <= _wall(run)
    assert _wall(steps[1]) >= 0.15
    assert len(task.metadata["stepEndUtc"]) == 2
