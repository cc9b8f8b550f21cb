"""duration_from_time_method reads a method's duration from the timer keys: right against
known CPU and known timestamps, and equal to lsst.utils' duration_from_timeMethod on the
same metadata, whoever wrote it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lsst.pipe.base import TaskMetadata
from lsst.utils.timer import duration_from_timeMethod as lsst_duration
from lsst.utils.timer import timeMethod as lsst_time_method

from taskmeter import time_method, time_this
from taskmeter.timer import duration_from_time_method, duration_from_timeMethod

from .helpers import burn_cpu

CLOCKS = ("Cpu", "User", "System", "Utc")
BURN_S = 0.2


class Burner:
    """A task whose ``run`` burns a given amount of CPU, timed by taskmeter's time_method."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata

    @time_method
    def run(self, cpu_s: float) -> None:
        burn_cpu(cpu_s)


class LsstBurner(Burner):
    """The same task, timed by lsst.utils' timeMethod."""

    @lsst_time_method
    def run(self, cpu_s: float) -> None:
        burn_cpu(cpu_s)


@pytest.mark.parametrize("writer", [Burner, LsstBurner], ids=["taskmeter", "lsst"])
@pytest.mark.parametrize("container", [dict, TaskMetadata], ids=["dict", "TaskMetadata"])
def test_cpu_duration_of_a_method_burning_known_cpu_matches_lsst(
    writer: type[Burner], container: type[Any]
) -> None:
    """A method that burns 0.2 s of CPU measures 0.2 s on the Cpu clock, and every clock's
    duration is lsst.utils' own on the same metadata (dict or TaskMetadata, keys written by
    either timer), and User + System is Cpu."""
    task = writer(container())
    task.run(BURN_S)
    cpu_s = duration_from_time_method(task.metadata, "run")
    assert cpu_s is not None
    assert BURN_S - 0.01 <= cpu_s < BURN_S + 0.1
    for clock in CLOCKS:
        assert duration_from_time_method(task.metadata, "run", clock) == lsst_duration(
            task.metadata, "run", clock
        ), clock
    user_s = duration_from_time_method(task.metadata, "run", "User")
    system_s = duration_from_time_method(task.metadata, "run", "System")
    assert user_s is not None and system_s is not None
    # CpuTime is process_time(); User and System are getrusage's, to the microsecond.
    assert user_s + system_s == pytest.approx(cpu_s, abs=2e-3)


def test_the_last_call_counts() -> None:
    """Two calls append two sets of keys: the duration is the second call's (0.15 s of CPU),
    not the first's nor the span of both."""
    task = Burner({})
    task.run(0.02)
    task.run(0.15)
    cpu_s = duration_from_time_method(task.metadata, "run")
    assert cpu_s is not None
    assert 0.15 - 0.01 <= cpu_s < 0.15 + 0.08
    assert cpu_s == lsst_duration(task.metadata, "run")


def test_utc_clock_is_the_wall_time_of_the_call() -> None:
    """A method that sleeps 0.3 s lasts at least 0.3 s on the Utc clock, and uses almost no
    CPU."""

    class Sleeper:
        def __init__(self) -> None:
            self.metadata: dict[str, Any] = {}

        @time_method
        def run(self) -> None:
            time.sleep(0.3)

    task = Sleeper()
    task.run()
    wall_s = duration_from_time_method(task.metadata, "run", "Utc")
    cpu_s = duration_from_time_method(task.metadata, "run", "Cpu")
    assert wall_s is not None and cpu_s is not None
    assert 0.3 <= wall_s < 0.3 + 0.25
    assert cpu_s < 0.1
    assert wall_s == lsst_duration(task.metadata, "run", "Utc")


KNOWN_TIMESTAMPS: dict[str, Any] = {
    # Two calls; the last lasts 2.5 s, and its end is written with another UTC offset.
    "runStartUtc": ["2026-03-01T10:00:00+00:00", "2026-03-01T10:00:05.250000+00:00"],
    "runEndUtc": ["2026-03-01T10:00:04+00:00", "2026-03-01T12:00:07.750000+02:00"],
    "runStartCpuTime": [1.0, 3.0],
    "runEndCpuTime": [2.5, 4.75],
}


def test_utc_duration_from_known_timestamps_matches_lsst() -> None:
    """Known ISO timestamps of two calls, the last ending in another UTC offset: 2.5 s, as
    lsst.utils computes; the Cpu clock gives the last pair's 1.75 s."""
    assert duration_from_time_method(KNOWN_TIMESTAMPS, "run", "Utc") == 2.5
    assert lsst_duration(KNOWN_TIMESTAMPS, "run", "Utc") == 2.5
    assert duration_from_time_method(KNOWN_TIMESTAMPS, "run") == 1.75
    assert lsst_duration(KNOWN_TIMESTAMPS, "run") == 1.75


def test_scalar_values_and_nested_task_metadata() -> None:
    """Scalars (not lists) are read as they are, and a TaskMetadata of a task path is read
    with a dotted method name, as lsst.utils reads it."""
    flat = {"isr.runStartCpuTime": 2.0, "isr.runEndCpuTime": 2.5}
    assert duration_from_time_method(flat, "isr.run") == 0.5 == lsst_duration(flat, "isr.run")
    inner = TaskMetadata()
    inner.add("runStartCpuTime", 1.0)
    inner.add("runEndCpuTime", 1.25)
    nested = TaskMetadata()
    nested["isr"] = inner
    assert duration_from_time_method(nested, "isr.run") == 0.25 == lsst_duration(nested, "isr.run")


def test_a_named_time_this_block_is_read_like_a_method() -> None:
    """time_this(name=..., metadata=...) writes keys that read back as the block's CPU time."""
    metadata: dict[str, Any] = {}
    with time_this(name="writeOutputs", metadata=metadata):
        burn_cpu(0.1)
    cpu_s = duration_from_time_method(metadata, "writeOutputs")
    assert cpu_s is not None
    assert 0.1 - 0.01 <= cpu_s < 0.1 + 0.08


def test_no_metadata_is_none_as_in_lsst() -> None:
    """None metadata gives None, as lsst.utils gives."""
    assert duration_from_time_method(None, "run") is None
    assert lsst_duration(None, "run") is None


def test_lsst_spelling_is_the_same_function() -> None:
    """duration_from_timeMethod is lsst's name for duration_from_time_method."""
    assert duration_from_timeMethod is duration_from_time_method


def test_clock_names_ignore_case() -> None:
    """Clock names ignore case: cpu and UTC are Cpu and Utc (lsst.utils: only Utc)."""
    assert duration_from_time_method(KNOWN_TIMESTAMPS, "run", "cpu") == 1.75
    assert duration_from_time_method(KNOWN_TIMESTAMPS, "run", "UTC") == 2.5


def test_unknown_clock_is_a_value_error_naming_the_clocks() -> None:
    """A clock other than Cpu, User, System, Utc is a ValueError listing them."""
    with pytest.raises(
        ValueError, match=r"clock must be one of Cpu, User, System, Utc, not 'Wall'"
    ):
        duration_from_time_method(KNOWN_TIMESTAMPS, "run", "Wall")
    with pytest.raises(ValueError, match="clock must be one of"):
        duration_from_time_method(KNOWN_TIMESTAMPS, "run", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [{"runEndCpuTime": [1.0]}, {"runStartCpuTime": [1.0]}, TaskMetadata()],
    ids=["no start", "no end", "empty TaskMetadata"],
)
def test_missing_key_is_a_key_error_of_that_key_as_in_lsst(metadata: Any) -> None:
    """A missing start or end key is KeyError(key): the key lsst.utils' error names too."""
    missing = "runEndCpuTime" if "runStartCpuTime" in metadata else "runStartCpuTime"
    with pytest.raises(KeyError) as ours:
        duration_from_time_method(metadata, "run")
    assert ours.value.args == (missing,)
    with pytest.raises(KeyError) as theirs:
        lsst_duration(metadata, "run")
    assert missing in str(theirs.value)


@pytest.mark.parametrize(
    ("metadata", "error", "message"),
    [
        (
            {"runStartCpuTime": [], "runEndCpuTime": [1.0]},
            ValueError,
            "runStartCpuTime is an empty",
        ),
        ({"runStartCpuTime": "1.0", "runEndCpuTime": 2.0}, TypeError, "runStartCpuTime='1.0'"),
        ({"runStartCpuTime": True, "runEndCpuTime": 2.0}, TypeError, "two numbers"),
        ({"runStartUtc": "noon", "runEndUtc": "2026-03-01T10:00:00"}, ValueError, "runStartUtc="),
        (
            {"runStartUtc": "2026-03-01T10:00:00", "runEndUtc": "2026-03-01T10:00:01+00:00"},
            TypeError,
            "one timestamp has a UTC offset",
        ),
        (
            {"runStartCpuTime": -1e308, "runEndCpuTime": 1.7e308},
            ValueError,
            "runEndCpuTime - runStartCpuTime is not a finite number",
        ),
        ({"runStartCpuTime": 0, "runEndCpuTime": 10**5000}, ValueError, "not a finite number"),
        ({"runStartCpuTime": 0.0, "runEndCpuTime": float("nan")}, ValueError, "not a finite"),
    ],
    ids=[
        "empty list",
        "string and number",
        "bool",
        "not ISO",
        "naive and aware",
        "overflow",
        "int past float",
        "nan",
    ],
)
def test_values_that_are_no_duration_are_errors_naming_the_key(
    metadata: dict[str, Any], error: type[Exception], message: str
) -> None:
    """An empty list, a string beside a number, a bool, a non-ISO timestamp, one timestamp
    with an offset and one without, or numbers whose difference is not finite: an error
    naming the key (lsst.utils fails obscurely, or returns infinity)."""
    clock = "Utc" if "runStartUtc" in metadata else "Cpu"
    with pytest.raises(error, match=message):
        duration_from_time_method(metadata, "run", clock)


def test_bad_arguments_are_type_errors() -> None:
    """A method name that is not a non-empty str, or metadata that cannot be indexed, is a
    TypeError naming the problem."""
    with pytest.raises(TypeError, match="method_name must be"):
        duration_from_time_method({}, "")
    with pytest.raises(TypeError, match="method_name must be"):
        duration_from_time_method({}, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must be a mapping"):
        duration_from_time_method(42, "run")
