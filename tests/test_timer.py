"""time_method, log_info and time_this write lsst.utils' keys, and a span per call."""

from __future__ import annotations

import asyncio
import datetime
import logging
import mmap
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lsst.utils.timer import logInfo as lsst_log_info
from lsst.utils.timer import timeMethod as lsst_time_method
from opentelemetry.trace import StatusCode

from taskmeter import Task, log_info, time_method, time_this
from taskmeter import attributes as attr
from taskmeter._log import error_counts
from taskmeter._rusage import PROCESS_RSS_PEAK
from taskmeter.testing import SpanCapture

from .helpers import MIB, burn_cpu, touch_bytes

USAGE_KEYS = (
    "CpuTime",
    "UserTime",
    "SystemTime",
    "MaxResidentSetSize",
    "MinorPageFaults",
    "MajorPageFaults",
    "BlockInputs",
    "BlockOutputs",
    "VoluntaryContextSwitches",
    "InvoluntaryContextSwitches",
)


class Ours:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.log = logging.getLogger("pipeline.ours")

    @time_method
    def run(self, value: int) -> int:
        return value * 2

    @time_method
    def fail(self) -> None:
        raise RuntimeError("boom")


class Theirs:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.log = logging.getLogger("pipeline.theirs")

    @lsst_time_method
    def run(self, value: int) -> int:
        return value * 2

    @lsst_time_method
    def fail(self) -> None:
        raise RuntimeError("boom")


def shape(metadata: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    """Key -> (type of the value or of its items, length of the list)."""
    result: dict[str, tuple[str, int | None]] = {}
    for key, value in metadata.items():
        if isinstance(value, list):
            result[key] = (type(value[0]).__name__, len(value))
        else:
            result[key] = (type(value).__name__, None)
    return result


def test_keys_types_and_list_lengths_equal_lsst_utils() -> None:
    """Two calls give the same metadata shape, key by key, as lsst.utils' timeMethod."""
    ours, theirs = Ours(), Theirs()
    for value in (1, 2):
        assert ours.run(value) == theirs.run(value)
    assert shape(ours.metadata) == shape(theirs.metadata)
    assert list(ours.metadata) == list(theirs.metadata), "same insertion order"
    assert ours.metadata["__version__"] == theirs.metadata["__version__"] == 1
    assert ours.metadata["nodeName"] == theirs.metadata["nodeName"] == platform.node()
    expected = {f"run{phase}{key}" for phase in ("Start", "End") for key in ("Utc", *USAGE_KEYS)}
    assert set(ours.metadata) == expected | {"__version__", "nodeName"}


def test_values_agree_with_lsst_utils_within_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our readings and lsst's, taken around each other, bracket each other (with no
    reset of the RSS mark folded in: a reset lowers lsst's, not ours)."""
    monkeypatch.setattr(PROCESS_RSS_PEAK, "peak_bytes", None)
    ours, theirs = Ours(), Theirs()
    theirs.run(1)
    ours.run(1)
    theirs.run(1)
    for key in ("runStartCpuTime", "runEndCpuTime", "runStartMaxResidentSetSize"):
        before, ours_value, after = (
            theirs.metadata[key][0],
            ours.metadata[key][0],
            theirs.metadata[key][1],
        )
        assert before <= ours_value <= after, key
    ours_start = datetime.datetime.fromisoformat(ours.metadata["runStartUtc"][0])
    lsst_start = datetime.datetime.fromisoformat(theirs.metadata["runStartUtc"][0])
    assert ours_start.utcoffset() == lsst_start.utcoffset() == datetime.timedelta(0)
    assert ours.metadata["runStartUtc"][0].endswith("+00:00")
    assert lsst_start <= ours_start


def test_task_metadata_written_through_add_like_lsst() -> None:
    """On an LSST TaskMetadata, keys go through add(): the same arrays and scalars as lsst's."""
    from lsst.pipe.base import TaskMetadata

    class OursTm:
        def __init__(self) -> None:
            self.metadata = TaskMetadata()

        @time_method
        def run(self) -> None:
            pass

    class TheirsTm:
        def __init__(self) -> None:
            self.metadata = TaskMetadata()

        @lsst_time_method
        def run(self) -> None:
            pass

    ours, theirs = OursTm(), TheirsTm()
    for _ in range(3):
        ours.run()
        theirs.run()
    assert set(ours.metadata.scalars) == set(theirs.metadata.scalars) == {"__version__", "nodeName"}
    assert {k: len(v) for k, v in ours.metadata.arrays.items()} == {
        k: len(v) for k, v in theirs.metadata.arrays.items()
    }
    assert {k: type(v[0]) for k, v in ours.metadata.arrays.items()} == {
        k: type(v[0]) for k, v in theirs.metadata.arrays.items()
    }


def test_log_info_writes_lsst_log_info_keys() -> None:
    """log_info with a prefix writes what lsst.utils' logInfo writes, and returns it."""
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    returned = log_info(None, "prepStart", metadata=ours)
    lsst_log_info(None, "prepStart", metadata=theirs)
    assert shape(ours) == shape(theirs)
    assert returned == {key: value[0] for key, value in ours.items() if isinstance(value, list)}


def test_end_keys_written_when_the_method_raises(spans: SpanCapture) -> None:
    """A failing call still gets its End keys, and its span is an error with the exception."""
    ours, theirs = Ours(), Theirs()
    with pytest.raises(RuntimeError, match="boom"):
        ours.fail()
    with pytest.raises(RuntimeError, match="boom"):
        theirs.fail()
    assert shape(ours.metadata) == shape(theirs.metadata)
    span = spans.one("Ours.fail")
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert attr.TIMER_ATTRIBUTES["EndCpuTime"] in span.attributes


class Node:
    """A task in LSST's shape: getFullName() gives the dotted task path."""

    def __init__(self, full_name: str) -> None:
        self.full_name = full_name
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return self.full_name

    @time_method
    def runDataRef(self, seconds: float) -> None:
        burn_cpu(seconds)


def test_span_carries_the_call_keys_task_path_and_enclosing_task(spans: SpanCapture) -> None:
    """The span's timer attributes are this call's metadata values; it nests under the task."""
    node = Node("apPipe.ccdProcessor")
    with Task("process visit"):
        node.runDataRef(0.05)
    span = spans.one("Node.runDataRef")
    task_span = spans.one("process visit")
    assert span.parent is not None and span.parent.span_id == task_span.context.span_id
    attributes = span.attributes
    assert attributes[attr.TIMER_METHOD] == "runDataRef"
    assert attributes[attr.TIMER_TASK] == "apPipe:ccdProcessor"
    assert attributes[attr.TASK_LABEL] == "process visit"
    assert attributes[attr.TIMER_VERSION] == 1
    assert attributes[attr.CODE_FUNCTION_NAME] == f"{__name__}.Node.runDataRef"
    for phase in ("Start", "End"):
        for key in ("Utc", *USAGE_KEYS):
            name = attr.TIMER_ATTRIBUTES[phase + key]
            assert attributes[name] == node.metadata[f"runDataRef{phase}{key}"][0], name


def test_nested_calls_are_nested_spans(spans: SpanCapture) -> None:
    """A timed call inside another is a child span of it."""

    class Outer:
        metadata: dict[str, Any]

        def __init__(self) -> None:
            self.metadata = {}
            self.inner = Node("outer.inner")

        @time_method
        def run(self) -> None:
            self.inner.runDataRef(0.0)

    Outer().run()
    outer = spans.one("test_nested_calls_are_nested_spans.<locals>.Outer.run")
    inner = spans.one("Node.runDataRef")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_cpu_and_wall_keys_match_ground_truth() -> None:
    """CpuTime grows by the CPU burnt; Utc by the time slept; MaxRSS covers bytes touched."""
    node = Node("cal")
    node.runDataRef(0.3)
    md = node.metadata
    assert md["runDataRefEndCpuTime"][0] - md["runDataRefStartCpuTime"][0] == pytest.approx(
        0.3, abs=0.03
    )

    class Sleeper:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @time_method
        def wait(self) -> None:
            time.sleep(0.2)

        @time_method
        def grow(self) -> mmap.mmap:
            return touch_bytes(64 * MIB)

    sleeper = Sleeper()
    sleeper.wait()
    start = datetime.datetime.fromisoformat(sleeper.metadata["waitStartUtc"][0])
    end = datetime.datetime.fromisoformat(sleeper.metadata["waitEndUtc"][0])
    assert 0.2 <= (end - start).total_seconds() < 0.25
    block = sleeper.grow()
    assert sleeper.metadata["growEndMaxResidentSetSize"][0] >= 64 * MIB
    del block


def test_plain_function_writes_to_given_metadata_only(spans: SpanCapture) -> None:
    """A function (no self) is timed into metadata= and its span."""
    store: dict[str, Any] = {}

    @time_method(metadata=store)
    def compute(x: int) -> int:
        return x + 1

    assert compute(1) == 2
    assert "computeStartCpuTime" in store and len(store["computeEndUtc"]) == 1
    span = spans.one("test_plain_function_writes_to_given_metadata_only.<locals>.compute")
    assert span.attributes[attr.TIMER_METHOD] == "compute"
    assert attr.TIMER_TASK not in span.attributes


def test_coroutine_is_timed_to_completion() -> None:
    """An async method's keys bracket the awaited work, not the coroutine's creation."""

    class Async:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @time_method
        async def fetch(self) -> str:
            await asyncio.sleep(0.1)
            return "done"

    job = Async()
    assert asyncio.run(job.fetch()) == "done"
    start = datetime.datetime.fromisoformat(job.metadata["fetchStartUtc"][0])
    end = datetime.datetime.fromisoformat(job.metadata["fetchEndUtc"][0])
    assert (end - start).total_seconds() >= 0.1


def test_usage_logged_to_timer_logger(caplog: pytest.LogCaptureFixture) -> None:
    """As lsst.utils: the usage pairs go to timer.<obj.log name> at the decorator's level."""
    with caplog.at_level(logging.DEBUG, logger="timer.pipeline.ours"):
        Ours().run(1)
    messages = [r.getMessage() for r in caplog.records if r.name == "timer.pipeline.ours"]
    assert len(messages) == 2
    assert (
        messages[0].startswith("runStartCpuTime=") and "runStartMaxResidentSetSize=" in messages[0]
    )
    assert messages[1].startswith("runEndCpuTime=")


def test_usage_log_lines_point_at_the_caller_as_lsst_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The timer log lines are attributed to the code that called the method, as lsst.utils'."""
    with caplog.at_level(logging.DEBUG, logger="timer"):
        Ours().run(1)
        Theirs().run(1)
    ours = [r for r in caplog.records if r.name == "timer.pipeline.ours"]
    theirs = [r for r in caplog.records if r.name == "timer.pipeline.theirs"]
    assert [r.filename for r in theirs] == [os.path.basename(__file__)] * 2
    assert [(r.filename, r.funcName) for r in ours] == [(r.filename, r.funcName) for r in theirs]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("LSST_UTILS_DISABLE_TIMER", raising=False)
    monkeypatch.delenv("TASKMETER_DISABLE_TIMER", raising=False)
    yield monkeypatch


def plain(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("name", "value", "disabled"),
    [
        ("LSST_UTILS_DISABLE_TIMER", "", True),
        ("LSST_UTILS_DISABLE_TIMER", "0", True),
        ("TASKMETER_DISABLE_TIMER", "1", True),
        ("TASKMETER_DISABLE_TIMER", "yes", True),
        ("TASKMETER_DISABLE_TIMER", "0", False),
        ("TASKMETER_DISABLE_TIMER", "maybe", False),
    ],
)
def test_environment_switches_timers_off_at_decoration(
    environ: pytest.MonkeyPatch, name: str, value: str, disabled: bool
) -> None:
    """LSST_UTILS_DISABLE_TIMER set at all, or TASKMETER_DISABLE_TIMER true: no wrapper."""
    environ.setenv(name, value)
    assert (time_method(plain) is plain) is disabled
    assert (time_method(metadata={})(plain) is plain) is disabled


def test_malformed_switch_is_warned_once(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that is neither true nor false is reported, and the timers stay on."""
    environ.setenv("TASKMETER_DISABLE_TIMER", "maybe")
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        time_method(plain)
        time_method(plain)
    warnings = [r for r in caplog.records if "TASKMETER_DISABLE_TIMER" in r.getMessage()]
    assert len(warnings) == 1


def test_metadata_that_refuses_values_never_breaks_the_call() -> None:
    """A metadata object that raises is counted and logged; the method's result stands."""

    class Refusing(dict[str, Any]):
        def add(self, name: str, value: Any) -> None:
            raise ValueError("read-only metadata")

    class Job:
        def __init__(self) -> None:
            self.metadata = Refusing()

        @time_method
        def run(self) -> int:
            return 7

    assert Job().run() == 7
    assert error_counts["timer.metadata"] == 2


def test_bad_arguments_are_rejected() -> None:
    """Decorator options are checked when it is applied."""
    with pytest.raises(TypeError, match="log_level"):
        time_method(log_level="debug")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="metadata"):
        time_method(metadata=["not", "a", "mapping"])  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="decorates"):
        time_method(42)
    with pytest.raises(TypeError, match="prefix"):
        log_info(None, 3)  # type: ignore[arg-type]


def test_bad_metadata_is_rejected_at_every_entry_point() -> None:
    """time_this and log_info check metadata= as time_method does, instead of failing later."""
    with pytest.raises(TypeError, match="metadata"), time_this(name="x", metadata=["a"]):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="metadata"):
        log_info(None, "x", metadata="abc")  # type: ignore[arg-type]
    assert not error_counts


def test_metadata_with_add_but_no_item_assignment_is_rejected() -> None:
    """``__version__`` and ``nodeName`` are assigned, as lsst.utils does: an object with
    add() alone would silently get only the Utc keys."""

    class AddOnly:
        def __init__(self) -> None:
            self.values: list[tuple[str, Any]] = []

        def add(self, name: str, value: Any) -> None:
            self.values.append((name, value))

    for call in (
        lambda: time_method(metadata=AddOnly()),  # type: ignore[call-overload]
        lambda: log_info(None, "x", metadata=AddOnly()),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="item assignment"):
            call()


def test_logger_given_by_name_is_rejected_not_silently_unused() -> None:
    """A logger's name where a logger belongs is a TypeError, not timer lines never logged."""
    with pytest.raises(TypeError, match="logger"):
        time_method(logger="pipeline.isr")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="logger"):
        log_info(None, "x", logger="pipeline.isr")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="log"), time_this("pipeline.isr"):  # type: ignore[arg-type]
        pass
    assert not error_counts


def test_time_this_refuses_metadata_it_would_not_write() -> None:
    """metadata= without a name, or an empty name, is an error, not keys silently not written."""
    store: dict[str, Any] = {}
    with pytest.raises(ValueError, match="name"), time_this(msg="write", metadata=store):
        pass
    with pytest.raises(ValueError, match="name"), time_this(name="", metadata=store):
        pass
    assert store == {}


def test_time_this_logs_like_lsst_and_is_a_span(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """time_this logs "Took ... seconds" to timer.<log>, yields the duration, makes a span."""
    log = logging.getLogger("pipeline.block")
    with (
        caplog.at_level(logging.INFO, logger="timer.pipeline.block"),
        time_this(log, msg="Reading %s", args=("visit 1",), level=logging.INFO) as timer,
    ):
        time.sleep(0.05)
    (record,) = [r for r in caplog.records if r.name == "timer.pipeline.block"]
    assert record.getMessage().startswith("Reading visit 1: Took 0.0")
    assert 0.05 <= timer.duration < 0.1
    span = spans.one("Reading %s")
    assert attr.TIMER_METHOD not in span.attributes


def test_time_this_with_name_writes_timer_keys(spans: SpanCapture) -> None:
    """A named block is timed like a method of that name, into metadata and its span."""
    store: dict[str, Any] = {}
    with time_this(name="writeOutputs", metadata=store):
        burn_cpu(0.05)
    assert store["writeOutputsEndCpuTime"][0] - store["writeOutputsStartCpuTime"][0] >= 0.045
    span = spans.one("writeOutputs")
    assert span.attributes[attr.TIMER_METHOD] == "writeOutputs"


def test_time_this_reports_memory_and_reraises(caplog: pytest.LogCaptureFixture) -> None:
    """Memory figures in the unit asked for; an exception is logged and propagates."""
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(KeyError),
        time_this(msg="grow", mem_usage=True, mem_unit="MiB") as timer,
    ):
        block = touch_bytes(32 * MIB)
        raise KeyError("missing")
    del block
    message = caplog.records[-1].getMessage()
    assert "timed code triggered exception of \"KeyError('missing') @ " in message
    assert "MiB" in message
    assert timer.mem_current_delta is not None and timer.mem_current_delta >= 31


@pytest.mark.parametrize(
    ("unit_name", "bytes_per_unit"),
    [
        ("byte", 1),
        ("kilobyte", 1000),
        ("MB", 1000**2),
        ("KiB", 1024),
        ("MiB", MIB),
        ("GiB", 1024**3),
    ],
)
def test_time_this_takes_astropy_units_of_bytes_as_lsst_does(
    caplog: pytest.LogCaptureFixture, unit_name: str, bytes_per_unit: int
) -> None:
    """mem_unit=u.MiB (or any astropy unit of bytes, as lsst.utils takes) scales the figures."""
    from astropy import units as u

    unit = getattr(u, unit_name)
    with (
        caplog.at_level(logging.DEBUG),
        time_this(msg="grow", mem_usage=True, mem_unit=unit) as timer,
    ):
        block = touch_bytes(32 * MIB)
    del block
    assert not [r for r in caplog.records if "Invalid memory unit" in r.getMessage()]
    assert timer.mem_current_delta is not None
    assert timer.mem_current_delta * bytes_per_unit == pytest.approx(32 * MIB, rel=0.1)
    assert f" {unit}, delta: " in caplog.records[-1].getMessage()
