"""Metric specs: lsst.verify's ``TimingMetricTask``, ``CpuTimingMetricTask`` and
``MemoryMetricTask``, as plain objects.

A spec names a timed method (``target``: ``isr.run``,
``apPipe:ccdProcessor.runDataRef``) and the metric to store
(``package.metric``), and turns that method's timer keys into a
:class:`~taskmeter.measure.Measurement`, from task metadata
(:meth:`MetricSpec.measure`) or from the attributes of the method's span.

The semantics are lsst.verify's: the keys are found by substring (a key
matches when it *contains* ``target + "StartCpuTime"``), the last call
recorded wins, no key at all means :class:`NoWorkFound`, and half a pair, a
badly typed value or a fragment matching two keys means
:class:`MetricComputationError`.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from .. import attributes as attr
from .._rusage import maxrss_unit_bytes
from .errors import MetricComputationError, NoWorkFound
from .measurement import ESTIMATOR, Measurement
from .metadata import Metadata, Reading

__all__ = ["CpuTimingMetric", "MemoryMetric", "MetricSpec", "TimingMetric"]

# Task and method names are Python identifiers (non-ASCII letters included, as
# lsst.utils keys a method by its __name__), with '-' allowed in task names.
_TARGET = re.compile(r"[^\W\d][\w-]*(?:[.:][^\W\d][\w-]*)*")
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*", re.ASCII)
_KEY_SUFFIXES = tuple(attr.TIMER_ATTRIBUTES)
_MAX_INSTRUMENT_NAME = 255

Getter = Callable[[str], "Reading | None"]
"""Looks up one key suffix (``StartCpuTime``) or ``__version__`` for a spec."""


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


class MetricSpec(ABC):
    """A metric computed from the timer keys of one target method.

    Args:
        target: The timed method, optionally prefixed by its task path in the
            form of ``getFullMetadata()`` keys: ``run``, ``isr.run``,
            ``apPipe:ccdProcessor.runDataRef``.
        package: The metric's namespace (no periods), e.g. ``pipe_tasks``.
        metric: The metric's name in the package (no periods), e.g. ``ProcessCcdTime``.
    """

    kind: ClassVar[str]
    """The spec's kind in spec files (``timing``, ``cpu_timing``, ``memory``)."""
    unit: ClassVar[str]
    """UCUM unit of the values (``s``, ``By``)."""
    suffixes: ClassVar[tuple[str, ...]]
    """The key suffixes read after ``target`` (the first one decides matching)."""

    __slots__ = ("_match_fragment", "metric", "metric_name", "package", "target")

    def __init__(self, *, target: str, package: str, metric: str) -> None:
        target = _require_str("target", target).strip()
        package = _require_str("package", package).strip()
        metric = _require_str("metric", metric).strip()
        if not _TARGET.fullmatch(target):
            raise ValueError(
                f"target {target!r} is not a method name optionally prefixed by a task path "
                "(e.g. 'run', 'isr.run', 'apPipe:ccdProcessor.runDataRef')"
            )
        for suffix in _KEY_SUFFIXES:
            if target.endswith(suffix):
                raise ValueError(
                    f"target {target!r} names a metadata key; drop {suffix!r} to name the method"
                )
        for name, value in (("package", package), ("metric", metric)):
            if "." in value:
                raise ValueError(f"{name} name {_show(value)} must not contain periods")
            if not _NAME_PART.fullmatch(value):
                raise ValueError(
                    f"{name} name {_show(value)} must be letters, digits, '_' or '-' "
                    "(it becomes an OpenTelemetry instrument name)"
                )
        if not package[0].isalpha():
            raise ValueError(f"package name {package!r} must start with a letter")
        metric_name = f"{package}.{metric}"
        if len(metric_name) > _MAX_INSTRUMENT_NAME:
            raise ValueError(f"metric name {metric_name!r} is longer than 255 characters")
        self.target: Final = target
        self.package: Final = package
        self.metric: Final = metric
        self.metric_name: Final = metric_name
        self._match_fragment = target + self.suffixes[0]

    # ------------------------------------------------------------ measuring

    def measure(self, metadata: object) -> Measurement:
        """The Measurement from task metadata (mapping, ``TaskMetadata``, ...).

        Raises:
            NoWorkFound: the metadata holds none of the target's keys.
            MetricComputationError: the keys are there but give no value.
            TypeError: ``metadata`` is not metadata.
        """
        view = Metadata.of(metadata)
        readings: dict[str, Reading | None] = {}

        def lookup(suffix: str) -> Reading | None:
            if suffix not in readings:
                readings[suffix] = self._find(view, suffix, lookup)
            return readings[suffix]

        return self.from_readings(lookup)

    def from_readings(self, get: Getter) -> Measurement:
        """The Measurement from values looked up by key suffix (see :meth:`compute`)."""
        value, extras = self.compute(get)
        return Measurement(
            self.metric_name,
            value,
            self.unit,
            notes={"estimator": ESTIMATOR, "target": self.target},
            extras=extras,
        )

    @abstractmethod
    def compute(self, get: Getter) -> tuple[float, dict[str, Any]]:
        """The value (in :attr:`unit`) and the extras, from the readings ``get`` returns."""

    def _find(self, view: Metadata, suffix: str, get: Getter) -> Reading | None:
        """The reading for ``suffix``: the one key containing the target and the suffix."""
        return view.find(self.target + suffix)

    # ------------------------------------------------------------ matching spans

    def matches(self, method: str, task_path: str | None = None) -> bool:
        """Whether the calls of ``method`` on the task at ``task_path`` are this target's.

        The same test lsst.verify applies to a full metadata key: the key of
        the call (``apPipe:ccdProcessor.runDataRefStartUtc``) must contain the
        target's (``ccdProcessor.runDataRefStartUtc``).
        """
        suffix = self.suffixes[0]
        key = f"{task_path}.{method}{suffix}" if task_path else f"{method}{suffix}"
        return self._match_fragment in key

    # ------------------------------------------------------------ protocol

    def to_dict(self) -> dict[str, Any]:
        """The spec as a spec-file entry."""
        return {
            "kind": self.kind,
            "target": self.target,
            "package": self.package,
            "metric": self.metric,
        }

    def _key(self) -> tuple[Any, ...]:
        return (type(self), self.target, self.metric_name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, package={self.package!r}, "
            f"metric={self.metric!r})"
        )


# ---------------------------------------------------------------- value checks


def _show(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, shortened; never fails (an int too long to print)."""
    try:
        text = repr(value)
    except Exception:
        return f"<a {type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(reading: Reading) -> float:
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetricComputationError(f"{reading.key} is {_show(value)}, not a number")
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        raise MetricComputationError(
            f"{reading.key} is {_show(value)}, not a usable number"
        ) from None
    if not math.isfinite(number):
        raise MetricComputationError(f"{reading.key} is {_show(value)}, not a finite number")
    return number


_COMPLETE_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
    r"(?:Z|[+-]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?",
    re.ASCII,
)
"""A date-time to the second at least, as lsst.utils and :func:`taskmeter.time_method`
write the ``Utc`` keys (``datetime.isoformat()``), or other writers of metadata files
(any number of decimals, ``Z``, a space for ``T``).  A timestamp cut short
(``2026-11-22T09:59``, by a span attribute value-length limit) does not match,
though ``fromisoformat`` reads it, to the wrong instant; spans are held to the
timers' exact form by :mod:`taskmeter.measure.processor`."""


def _timestamp(reading: Reading) -> datetime.datetime:
    """The time a ``Utc`` key holds: an ISO 8601 string, as lsst.utils and the timers
    write it, or a ``datetime`` (YAML reads an unquoted timestamp as one), taken as the
    time it is; with no UTC offset, either is naive, as ``fromisoformat`` reads it."""
    value = reading.value
    if isinstance(value, datetime.datetime):
        return value
    if not isinstance(value, str):
        raise MetricComputationError(f"{reading.key} is {_show(value)}, not an ISO 8601 time")
    if not _COMPLETE_TIMESTAMP.fullmatch(value):
        raise MetricComputationError(
            f"{reading.key} is {_show(value)}, not a complete ISO 8601 time "
            "(YYYY-MM-DDTHH:MM:SS[.fff][+HH:MM]): cut short, or not written by a timer"
        )
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise MetricComputationError(
            f"{reading.key} is {_show(value)}, not an ISO 8601 time"
        ) from exc


def _pair(
    spec: MetricSpec, get: Getter, start_suffix: str, end_suffix: str
) -> tuple[Reading, Reading]:
    """Both readings of a start/end pair, or the error lsst.verify gives."""
    start = get(start_suffix)
    end = get(end_suffix)
    if start is None and end is None:
        raise NoWorkFound(f"no {start_suffix}/{end_suffix} keys for target {spec.target!r}")
    if start is None or end is None:
        present, missing = (end, start_suffix) if start is None else (start, end_suffix)
        assert present is not None
        raise MetricComputationError(
            f"{present.key} is present but the {spec.target}{missing} key is missing"
        )
    if start.count != end.count:
        raise MetricComputationError(
            f"{start.key} holds {start.count} values but {end.key} holds {end.count}: "
            "the calls recorded are not paired"
        )
    return start, end


def _difference(end_value: float, start_value: float, start: Reading, end: Reading) -> float:
    """``end_value - start_value``, or the error naming both keys when it overflows."""
    difference = end_value - start_value
    if not math.isfinite(difference):
        raise MetricComputationError(
            f"{end.key} - {start.key} is not a finite number "
            f"({_show(end.value)} - {_show(start.value)})"
        )
    return difference


def _as_written(value: object) -> object:
    """A timestamp extra as the metadata spells it: a ``datetime`` in ISO 8601."""
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _non_negative(spec: MetricSpec, value: float, start: Reading, end: Reading) -> float:
    if value < 0:
        raise MetricComputationError(
            f"{end.key} is before {start.key} ({value:g} {spec.unit}) for target {spec.target!r}"
        )
    return value


# ---------------------------------------------------------------- the three specs


class TimingMetric(MetricSpec):
    """Wall-clock time of the target's last call: ``EndUtc - StartUtc``, in seconds
    (lsst.verify's ``TimingMetricTask``); extras ``start`` and ``end``."""

    kind = "timing"
    unit = "s"
    suffixes = ("StartUtc", "EndUtc")
    __slots__ = ()

    def compute(self, get: Getter) -> tuple[float, dict[str, Any]]:
        start, end = _pair(self, get, "StartUtc", "EndUtc")
        start_time, end_time = _timestamp(start), _timestamp(end)
        try:
            seconds = (end_time - start_time).total_seconds()
        except TypeError as exc:  # one with an offset, one without
            raise MetricComputationError(
                f"{start.key} ({_show(start.value)}) and {end.key} ({_show(end.value)}) "
                "cannot be compared: only one has a UTC offset"
            ) from exc
        _non_negative(self, seconds, start, end)
        return seconds, {"start": _as_written(start.value), "end": _as_written(end.value)}


class CpuTimingMetric(MetricSpec):
    """CPU time of the target's last call: ``EndCpuTime - StartCpuTime``, in seconds
    (lsst.verify's ``CpuTimingMetricTask``); extras ``start`` and ``end`` when the
    ``Utc`` keys are there."""

    kind = "cpu_timing"
    unit = "s"
    suffixes = ("StartCpuTime", "EndCpuTime", "StartUtc", "EndUtc")
    __slots__ = ()

    def compute(self, get: Getter) -> tuple[float, dict[str, Any]]:
        start, end = _pair(self, get, "StartCpuTime", "EndCpuTime")
        seconds = _difference(_number(end), _number(start), start, end)
        _non_negative(self, seconds, start, end)
        extras: dict[str, Any] = {}
        for name, suffix in (("start", "StartUtc"), ("end", "EndUtc")):
            try:
                reading = get(suffix)
            except MetricComputationError:
                continue  # a cut timestamp: no extra, and the CPU time stands
            value = None if reading is None else _as_written(reading.value)
            if isinstance(value, str) and value:
                extras[name] = value
        return seconds, extras


class MemoryMetric(MetricSpec):
    """Peak resident set size at the end of the target's last call, in bytes
    (lsst.verify's ``MemoryMetricTask``).

    ``EndMaxResidentSetSize`` is in bytes when the task's ``__version__`` is 1
    or more; older metadata (no ``__version__``) holds ``ru_maxrss`` in the
    platform's unit: KiB on Linux, bytes on macOS, pages on Solaris, taken
    from the platform running the measurement unless ``legacy_maxrss_unit``
    (bytes per unit) says where the metadata came from.
    """

    kind = "memory"
    unit = "By"
    suffixes = ("EndMaxResidentSetSize",)
    VERSION = "__version__"
    __slots__ = ("legacy_maxrss_unit",)

    def __init__(
        self,
        *,
        target: str,
        package: str,
        metric: str,
        legacy_maxrss_unit: int | None = None,
    ) -> None:
        super().__init__(target=target, package=package, metric=metric)
        if legacy_maxrss_unit is None:
            legacy_maxrss_unit = maxrss_unit_bytes()
        elif (
            isinstance(legacy_maxrss_unit, bool)
            or not isinstance(legacy_maxrss_unit, int)
            or legacy_maxrss_unit <= 0
        ):
            raise ValueError(
                f"legacy_maxrss_unit must be a positive number of bytes, not {legacy_maxrss_unit!r}"
            )
        self.legacy_maxrss_unit: Final = legacy_maxrss_unit

    def _find(self, view: Metadata, suffix: str, get: Getter) -> Reading | None:
        if suffix != self.VERSION:
            return super()._find(view, suffix, get)
        # The version of the task whose method matched, by that key's full task
        # path ("ccdProcessor:isr.runEndMaxResidentSetSize" is read with
        # "ccdProcessor:isr.__version__"): a target naming no task ("run")
        # still reads one task's version, not every task's.
        end = get(self.suffixes[0])
        if end is None:
            return None
        task_path, dot, _ = end.key.rpartition(".")
        return view.read(f"{task_path}{dot}{self.VERSION}")

    def compute(self, get: Getter) -> tuple[float, dict[str, Any]]:
        end = get("EndMaxResidentSetSize")
        if end is None:
            raise NoWorkFound(f"no EndMaxResidentSetSize key for target {self.target!r}")
        size = _number(end)
        if not size.is_integer() or size < 0:
            raise MetricComputationError(f"{end.key} is {_show(end.value)}, not a number of bytes")
        version_reading = get(self.VERSION)
        version = 0
        if version_reading is not None:
            raw = version_reading.value
            if isinstance(raw, bool) or not isinstance(raw, numbers.Integral):
                raise MetricComputationError(
                    f"{version_reading.key} is {_show(raw)}, not a metadata version number"
                )
            version = int(raw)
        if version >= 1:
            return size, {}
        try:
            size_bytes = size * self.legacy_maxrss_unit
        except OverflowError:  # a unit too large for a float
            size_bytes = math.inf
        if not math.isfinite(size_bytes):
            raise MetricComputationError(
                f"{end.key} ({_show(end.value)}) times the legacy unit of "
                f"{_show(self.legacy_maxrss_unit)} bytes is not a finite number of bytes"
            )
        return size_bytes, {}

    def to_dict(self) -> dict[str, Any]:
        entry = super().to_dict()
        if self.legacy_maxrss_unit != maxrss_unit_bytes():
            entry["legacy_maxrss_unit"] = self.legacy_maxrss_unit
        return entry


SPEC_KINDS: Final[Mapping[str, type[MetricSpec]]] = {
    spec.kind: spec for spec in (TimingMetric, CpuTimingMetric, MemoryMetric)
}
"""Spec classes by their kind in spec files."""
