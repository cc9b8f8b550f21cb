"""Code written for lsst.utils.timer runs unchanged on taskmeter's timers: lsst's
argument names, its object rule, its log lines; each checked against lsst.utils itself."""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

import pytest
import structlog
from astropy import units as u
from lsst.utils.timer import logInfo as lsst_log_info
from lsst.utils.timer import time_this as lsst_time_this
from lsst.utils.timer import timeMethod as lsst_time_method
from structlog.testing import capture_logs

from taskmeter import attributes as attr
from taskmeter import log_info, time_method, time_this
from taskmeter._log import error_counts
from taskmeter.testing import SpanCapture

from .helpers import MIB, touch_bytes
from .test_timer import USAGE_KEYS, shape


class Holder:
    """What lsst.utils looks for on the first argument: ``metadata`` and ``log``."""

    def __init__(self, name: str) -> None:
        self.metadata: dict[str, Any] = {}
        self.log = logging.getLogger(name)


# ---------------------------------------------------------------- lsst's argument names


def test_log_level_in_lsst_spelling_sets_the_level_of_the_timer_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """time_method(logLevel=INFO) logs the usage at INFO, as lsst's timeMethod(logLevel=INFO)."""

    class Ours(Holder):
        @time_method(logLevel=logging.INFO)
        def run(self) -> None:
            pass

    class Theirs(Holder):
        @lsst_time_method(logLevel=logging.INFO)
        def run(self) -> None:
            pass

    with caplog.at_level(logging.INFO, logger="timer"):
        Ours("ours").run()
        Theirs("theirs").run()
    levels = {
        name: [r.levelno for r in caplog.records if r.name == f"timer.{name}"]
        for name in ("ours", "theirs")
    }
    assert levels == {"ours": [logging.INFO] * 2, "theirs": [logging.INFO] * 2}


def test_both_level_spellings_must_agree() -> None:
    """log_level and logLevel are one option: the same value twice is fine, two values are not."""
    time_method(log_level=logging.INFO, logLevel=logging.INFO)
    with pytest.raises(TypeError, match="log_level=20 and logLevel=10 are one option"):
        time_method(log_level=logging.INFO, logLevel=logging.DEBUG)
    with pytest.raises(TypeError, match="log_level=20 and logLevel=10 are one option"):
        log_info(None, "x", logging.INFO, logLevel=logging.DEBUG)
    with pytest.raises(TypeError, match="logLevel must be a logging level"):
        time_method(logLevel="INFO")  # type: ignore[call-overload]


def _log_info_through(func: Any, log: logging.Logger, **options: Any) -> None:
    """One call site for both log_info implementations, so their records can be compared."""
    func(None, "stepStart", metadata={}, logger=log, **options)


@pytest.mark.parametrize("stacklevel", [None, 1, 2])
def test_log_info_takes_lsst_positional_order_and_stacklevel(
    caplog: pytest.LogCaptureFixture, stacklevel: int | None
) -> None:
    """log_info(obj, prefix, level, metadata, logger, stacklevel) as lsst's logInfo: the
    same record level and the same frame the line is attributed to."""
    ours_log, theirs_log = logging.getLogger("ours"), logging.getLogger("theirs")
    with caplog.at_level(logging.DEBUG, logger="timer"):
        _log_info_through(log_info, ours_log, logLevel=logging.INFO, stacklevel=stacklevel)
        _log_info_through(lsst_log_info, theirs_log, logLevel=logging.INFO, stacklevel=stacklevel)
        ours_md: dict[str, Any] = {}
        theirs_md: dict[str, Any] = {}
        log_info(None, "step", logging.WARNING, ours_md, ours_log, 1)
        lsst_log_info(None, "step", logging.WARNING, theirs_md, theirs_log, 1)
    assert shape(ours_md) == shape(theirs_md)

    def where(name: str) -> list[tuple[int, str, str, int]]:
        return [
            (r.levelno, r.filename, r.funcName, r.lineno)
            for r in caplog.records
            if r.name == f"timer.{name}"
        ]

    ours, theirs = where("ours"), where("theirs")
    assert [level for level, *_ in ours] == [logging.INFO, logging.WARNING]
    if stacklevel == 2:  # the two lines above that call _log_info_through
        assert ours[0][:3] == theirs[0][:3] and ours[0][3] + 1 == theirs[0][3]
    else:  # _log_info_through's one line
        assert ours[0] == theirs[0]
    assert ours[1][:3] == theirs[1][:3]  # two call lines in this test


def test_bad_stacklevel_is_rejected() -> None:
    """stacklevel is a count of frames from log_info's caller, so at least 1."""
    with pytest.raises(ValueError, match="stacklevel"):
        log_info(None, "x", stacklevel=0)
    with pytest.raises(TypeError, match="stacklevel"):
        log_info(None, "x", stacklevel="up")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the object of a call


def test_first_argument_of_any_name_is_the_object_as_in_lsst() -> None:
    """A method whose first parameter is not ``self`` writes to its object, as lsst's does."""

    class Ours(Holder):
        @time_method
        def run(task, value: int) -> int:
            return value

    class Theirs(Holder):
        @lsst_time_method
        def run(task, value: int) -> int:
            return value

    ours, theirs = Ours("ours"), Theirs("theirs")
    for value in (1, 2):
        assert ours.run(value) == theirs.run(value) == value
    assert shape(ours.metadata) == shape(theirs.metadata)
    assert list(ours.metadata) == list(theirs.metadata)


def test_static_function_writes_to_its_first_arguments_metadata() -> None:
    """A staticmethod or plain function whose first argument carries metadata writes there."""

    class Steps:
        @staticmethod
        @time_method
        def ours(holder: Holder) -> str:
            return "ok"

        @staticmethod
        @lsst_time_method
        def theirs(holder: Holder) -> str:
            return "ok"

    ours, theirs = Holder("ours"), Holder("theirs")
    assert Steps.ours(ours) == Steps.theirs(theirs) == "ok"
    assert shape(ours.metadata) == {
        key.replace("theirs", "ours"): value for key, value in shape(theirs.metadata).items()
    }


def test_logger_of_the_first_argument_gets_the_lines(caplog: pytest.LogCaptureFixture) -> None:
    """The object's ``log`` is used whatever the parameter's name."""

    @time_method
    def process(task: Holder) -> None:
        pass

    with caplog.at_level(logging.DEBUG, logger="timer.pipeline.step"):
        process(Holder("pipeline.step"))
    assert len([r for r in caplog.records if r.name == "timer.pipeline.step"]) == 2


class NotMetadata:
    """A ``metadata`` attribute that is no metadata (a description, an ORM's schema)."""

    def __init__(self) -> None:
        self.metadata = ("schema", "v2")
        self.log = "not a logger"


def test_plain_functions_are_not_broken_by_their_first_argument(spans: SpanCapture) -> None:
    """Arguments without metadata, with metadata of another kind, or none at all: the call
    runs, its keys are on its span, nothing is touched and nothing is counted as an error."""

    @time_method
    def double(x: Any = 0) -> Any:
        return x

    odd = NotMetadata()
    assert double(3) == 3
    assert double(odd) is odd
    assert double(x=5) == 5
    assert double() == 0
    assert odd.metadata == ("schema", "v2")
    assert not error_counts
    timed = spans.named(
        "test_plain_functions_are_not_broken_by_their_first_argument.<locals>.double"
    )
    assert len(timed) == 4
    assert all(attr.TIMER_ATTRIBUTES["EndCpuTime"] in span.attributes for span in timed)


def test_data_frame_with_a_metadata_column_is_left_alone() -> None:
    """A pandas Series has add() and item assignment, but is no metadata: a function of a
    frame with a ``metadata`` column runs untouched, with nothing counted or logged."""
    import pandas as pd

    @time_method
    def score(frame: Any) -> int:
        return len(frame)

    frame = pd.DataFrame({"metadata": [1, 2], "log": [3, 4]})
    assert score(frame) == 2
    assert frame.to_dict() == {"metadata": {0: 1, 1: 2}, "log": {0: 3, 1: 4}}
    assert not error_counts


def test_task_metadata_of_a_first_argument_is_written_as_lsst_writes_it() -> None:
    """An LSST TaskMetadata on a function's first argument gets lsst's arrays and scalars."""
    from lsst.pipe.base import TaskMetadata

    class Carrier:
        def __init__(self) -> None:
            self.metadata = TaskMetadata()

    @time_method
    def ours(carrier: Carrier) -> None:
        pass

    @lsst_time_method
    def theirs(carrier: Carrier) -> None:
        pass

    ours_carrier, theirs_carrier = Carrier(), Carrier()
    ours(ours_carrier)
    theirs(theirs_carrier)
    assert {k.replace("ours", "x") for k in ours_carrier.metadata.arrays} == {
        k.replace("theirs", "x") for k in theirs_carrier.metadata.arrays
    }
    assert set(ours_carrier.metadata.scalars) == set(theirs_carrier.metadata.scalars)


def test_given_metadata_wins_over_the_first_arguments() -> None:
    """metadata= takes the place of the object's, as in lsst.utils."""
    store: dict[str, Any] = {}

    @time_method(metadata=store)
    def step(holder: Holder) -> None:
        pass

    holder = Holder("h")
    step(holder)
    assert holder.metadata == {}
    assert "stepEndCpuTime" in store


def test_time_method_goes_on_either_side_of_staticmethod_and_classmethod() -> None:
    """Above or below @staticmethod/@classmethod, the method binds as it should and is timed."""

    class Job:
        metadata: ClassVar[dict[str, Any]] = {}

        @time_method
        @classmethod
        def build(cls) -> type[Job]:
            return cls

        @classmethod
        @time_method
        def rebuild(cls) -> type[Job]:
            return cls

        @time_method
        @staticmethod
        def add(a: int, b: int) -> int:
            return a + b

    assert Job.build() is Job and Job().rebuild() is Job
    assert Job.add(1, 2) == Job().add(1, 2) == 3
    assert len(Job.metadata["buildEndCpuTime"]) == len(Job.metadata["rebuildEndCpuTime"]) == 1


def test_failing_get_full_name_keeps_the_span_attributes(spans: SpanCapture) -> None:
    """An object whose getFullName() raises: counted, and the span still names the method."""

    class Broken(Holder):
        def getFullName(self) -> str:
            raise RuntimeError("no parent task")

        @time_method
        def run(self) -> int:
            return 1

    assert Broken("b").run() == 1
    span = spans.one("test_failing_get_full_name_keeps_the_span_attributes.<locals>.Broken.run")
    assert span.attributes[attr.TIMER_METHOD] == "run"
    assert attr.TIMER_TASK not in span.attributes
    assert error_counts["timer.task_path"] == 1


# ---------------------------------------------------------------- time_this' log line


def _normalized(message: str) -> str:
    """A time_this message with its numbers (duration, memory, line) replaced."""
    return re.sub(r"\d+(\.\d+)?", "N", message)


def _raise_in(timer: Any, log: logging.Logger) -> None:
    with timer(log, msg="load", level=logging.INFO):
        raise KeyError("missing")


def test_time_this_exception_message_is_lsst_s(caplog: pytest.LogCaptureFixture) -> None:
    """A block that raises is logged with the exception and where it was raised, as lsst's."""
    with caplog.at_level(logging.INFO, logger="timer"):
        for timer, name in ((time_this, "ours"), (lsst_time_this, "theirs")):
            with pytest.raises(KeyError):
                _raise_in(timer, logging.getLogger(name))
    ours, theirs = (
        next(r.getMessage() for r in caplog.records if r.name == f"timer.{name}")
        for name in ("ours", "theirs")
    )
    assert "KeyError('missing') @ " in ours and __file__ in ours
    assert _normalized(ours) == _normalized(theirs)


def test_time_this_memory_line_is_lsst_s_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """mem_usage=True with the default unit prints "byte", as lsst's u.byte does."""
    with caplog.at_level(logging.DEBUG, logger="timer"):
        for timer, name in ((time_this, "ours"), (lsst_time_this, "theirs")):
            with timer(logging.getLogger(name), msg="grow", mem_usage=True):
                block = touch_bytes(4 * MIB)
            del block
    ours, theirs = (
        next(r.getMessage() for r in caplog.records if r.name == f"timer.{name}")
        for name in ("ours", "theirs")
    )
    assert " byte, delta: " in ours
    assert _normalized(ours) == _normalized(theirs)


@pytest.mark.parametrize(
    ("unit", "bytes_per_unit"), [(u.Tbyte, 1000**4), (u.TiB, 1024**4), (u.bit, 1 / 8)]
)
def test_time_this_takes_every_astropy_unit_of_information(
    caplog: pytest.LogCaptureFixture, unit: Any, bytes_per_unit: float
) -> None:
    """Any unit astropy converts to bytes is used (and named) as lsst.utils uses it."""
    with caplog.at_level(logging.DEBUG), time_this(mem_usage=True, mem_unit=unit) as timer:
        block = touch_bytes(48 * MIB)
    del block
    assert not [r for r in caplog.records if "Invalid memory unit" in r.getMessage()]
    assert timer.mem_current_delta is not None
    assert timer.mem_current_delta * bytes_per_unit == pytest.approx(48 * MIB, rel=0.1)
    assert f" {unit}, delta: " in caplog.records[-1].getMessage()


def test_invalid_unit_is_warned_about_only_when_memory_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As lsst.utils: a unit that is not one of bytes is checked only when it is used."""
    with caplog.at_level(logging.DEBUG):
        with time_this(mem_unit=u.s):
            pass
        assert not [r for r in caplog.records if "Invalid memory unit" in r.getMessage()]
        with time_this(mem_usage=True, mem_unit=u.s) as timer:
            pass
    (warning,) = [r for r in caplog.records if "Invalid memory unit" in r.getMessage()]
    assert warning.getMessage() == "Invalid memory unit 's', using 'byte' instead"
    assert timer.mem_current_usage is not None and " byte, delta: " in caplog.records[-1].message


def test_structlog_logger_gets_key_value_pairs_as_lsst_gives_them() -> None:
    """A structlog logger: no prefix, no stacklevel, duration/memory/kwargs as pairs."""
    log = structlog.get_logger("pipeline")
    for timer in (time_this, lsst_time_this):
        with (
            capture_logs() as ours_or_theirs,
            timer(log, msg="read", level=logging.INFO, kwargs={"visit": 12}, force_mem_usage=True),
        ):
            pass
        (event,) = ours_or_theirs
        assert set(event) == {
            "event",
            "log_level",
            "duration",
            "visit",
            "mem_current_usage",
            "mem_current_delta",
            "mem_peak_delta",
        }, timer
        assert event["visit"] == 12 and event["log_level"] == "info"
        assert re.fullmatch(
            r"read: Took \d+\.\d{4} seconds; current memory usage: .*", event["event"]
        )


def test_structlog_logger_with_mem_usage_needs_no_stdlib_method() -> None:
    """mem_usage=True asks a structlog logger is_enabled_for, not the stdlib's isEnabledFor."""
    log = structlog.get_logger("pipeline")
    with capture_logs() as events, time_this(log, mem_usage=True) as timer:
        pass
    assert timer.mem_current_usage is not None
    assert events[0]["mem_current_usage"] == timer.mem_current_usage
    assert not error_counts


# ---------------------------------------------------------------- both timers on one object


@pytest.mark.parametrize("kind", ["dict", "TaskMetadata"])
def test_ours_and_lsst_s_calls_on_one_object_write_the_same_keys_and_types(kind: str) -> None:
    """taskmeter's time_method and lsst.utils' timeMethod, taking turns on one object's
    metadata: every key gets one entry per call, all of one type (a TaskMetadata refuses
    to mix them), the scalars agree, and lsst's duration reader reads our last call as
    ours does."""
    from lsst.pipe.base import TaskMetadata
    from lsst.utils.timer import duration_from_timeMethod as lsst_duration

    from taskmeter.timer import duration_from_time_method

    class Isr:
        def __init__(self) -> None:
            self.metadata: Any = {} if kind == "dict" else TaskMetadata()

        def run(self) -> int:
            return sum(i * i for i in range(20_000))

    ours, theirs = time_method(Isr.run), lsst_time_method(Isr.run)
    isr = Isr()
    for call in (theirs, ours, theirs, ours):
        call(isr)
    metadata = isr.metadata
    if kind == "dict":
        arrays = {k: v for k, v in metadata.items() if isinstance(v, list)}
        scalars = {k: v for k, v in metadata.items() if not isinstance(v, list)}
    else:
        arrays, scalars = dict(metadata.arrays), dict(metadata.scalars)
    expected = {f"run{phase}{key}" for phase in ("Start", "End") for key in ("Utc", *USAGE_KEYS)}
    assert set(arrays) == expected
    for key, values in arrays.items():
        assert len(values) == 4, key
        assert len({type(v) for v in values}) == 1, (key, values)
    assert scalars == {"__version__": 1, "nodeName": scalars["nodeName"]}
    for clock in ("Cpu", "User", "System", "Utc"):
        assert lsst_duration(metadata, "run", clock) == duration_from_time_method(
            metadata, "run", clock
        )
    assert duration_from_time_method(metadata, "run", "Cpu") > 0


def test_a_timed_classmethod_or_init_of_a_pipe_base_task_counts_no_error(
    spans: SpanCapture,
) -> None:
    """On a real ``lsst.pipe.base.Task``: a timed classmethod is called on the class,
    whose ``getFullName`` is an instance method, and a timed ``__init__`` runs before
    the task has its name.  Neither is the object's failure: nothing is counted, the
    classmethod's span has no task path and ``__init__``'s has the one it set up."""
    import lsst.pex.config as pex_config
    from lsst.pipe.base import Task as PipeTask

    class Built(PipeTask):
        ConfigClass = pex_config.Config
        _DefaultName = "built"

        @time_method
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

        @classmethod
        @time_method
        def build(cls) -> int:
            return 1

    assert Built.build() == 1
    task = Built()
    assert task.getFullName() == "built"
    assert not error_counts
    (build,) = [s for s in spans.spans if s.attributes.get(attr.TIMER_METHOD) == "build"]
    assert attr.TIMER_TASK not in build.attributes
    (init,) = [s for s in spans.spans if s.attributes.get(attr.TIMER_METHOD) == "__init__"]
    assert init.attributes[attr.TIMER_TASK] == "built"
