"""A span processor that turns timer spans into Measurements, and task spans into
per-task metrics, recorded as OpenTelemetry metrics."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import metrics
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import __about__, _unrecorded, settings
from .. import attributes as attr
from .._log import config_warning, debug_once, swallowed
from .._spans import raw_attributes as _raw_attributes
from .errors import MetricComputationError, NoWorkFound, SpecError
from .instruments import (
    BUCKETS_BY_UNIT,
    ERROR_TYPE,
    METRIC_TARGET,
    PROCESSOR_ERRORS,
    TASK_METRICS,
)
from .metadata import Reading
from .specfile import check_metrics_agree, load_specs
from .specs import MetricSpec

__all__ = ["MeasurementSpanProcessor"]

_SUFFIX_ATTRIBUTES: dict[str, str] = {**attr.TIMER_ATTRIBUTES, "__version__": attr.TIMER_VERSION}
_MATCH_CACHE_SIZE = 4096
_ATTRIBUTE_CACHE_SIZE = 4096


class _Target:
    """One spec with its instrument and the fixed attributes of its data points."""

    __slots__ = ("attributes", "instrument", "spec")

    def __init__(self, spec: MetricSpec, instrument: Histogram) -> None:
        self.spec = spec
        self.instrument = instrument
        self.attributes = {METRIC_TARGET: spec.target}


_UTC_ATTRIBUTES = frozenset({attr.TIMER_START_UTC, attr.TIMER_END_UTC})
_TIMER_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?\+00:00", re.ASCII)
"""The timestamps :func:`taskmeter.time_method` writes (``datetime.now(UTC).isoformat()``)."""


def _span_getter(raw: Mapping[str, Any]) -> Any:
    def get(suffix: str) -> Reading | None:
        name = _SUFFIX_ATTRIBUTES.get(suffix)
        if name is None:
            return None
        value = raw.get(name)
        if value is None:
            return None
        if name in _UTC_ATTRIBUTES and not (
            isinstance(value, str) and _TIMER_TIMESTAMP.fullmatch(value)
        ):
            # Cut by a value-length limit, a timestamp still parses, to the wrong instant.
            raise MetricComputationError(
                f"{name} is {_short(value)}, not a whole timestamp as the timer writes it "
                "(cut by a span attribute value-length limit?)"
            )
        return Reading(name, value, 1)

    return get


class MeasurementSpanProcessor(SpanProcessor):
    """Derives lsst.verify-style Measurements from ending timer spans and records them.

    For each ending span of a :func:`taskmeter.time_method` call (or a named
    :func:`taskmeter.time_this` block) whose method matches a spec's
    ``target`` (as lsst.verify matches metadata keys: ``isr.run`` selects the
    ``run`` calls of the task at ``isr`` or ``apPipe:isr``), the spec's value
    is recorded on a histogram named ``package.metric`` (unit ``s`` or
    ``By``), with attributes ``taskmeter.task.label`` (the enclosing task),
    ``taskmeter.metric.target`` and ``host.name``.  Ending task spans
    (:class:`taskmeter.Task`) are recorded on the per-task histograms of
    :data:`taskmeter.measure.TASK_METRICS`, by task label and status.

    Args:
        specs: The metric specs.  Those of the file named by
            ``TASKMETER_METRIC_SPECS`` (TOML, YAML or JSON) are added.
        meter_provider: Where to record (default: the global meter provider,
            also when it is set after this processor is made).
        task_metrics: Whether to record the per-task histograms.
        log_interval: Seconds between log lines about the same kind of error.
        unrecorded: Whether to record, too, the tasks and timed calls whose
            spans are not recorded (a sampler dropped them, or no SDK tracer
            provider is set), which reach no span processor.  Metrics then
            count every task, whatever the trace sampling, as OpenTelemetry's
            own instrumentations do.  Every processor made with it (and not
            shut down) records them: make one per process that counts.

    The processor never raises into the application: a span whose keys give
    no value (:class:`MetricComputationError`) or any other failure is counted
    on ``taskmeter.processor.errors`` and logged at most once per
    ``log_interval``.  A span without the target's keys is no work (not an
    error).  Bad arguments raise ``TypeError``/``ValueError`` here, at
    construction; a bad spec file named by the environment is logged as a
    warning and ignored.
    """

    def __init__(
        self,
        specs: Iterable[MetricSpec] = (),
        *,
        meter_provider: MeterProvider | None = None,
        task_metrics: bool = True,
        log_interval: float = 60.0,
        unrecorded: bool = True,
    ) -> None:
        if isinstance(specs, MetricSpec):
            specs = (specs,)
        if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
            raise TypeError(
                f"specs must be MetricSpec objects (an iterable of them), not {specs!r}"
            )
        spec_list = list(specs)
        for spec in spec_list:
            if not isinstance(spec, MetricSpec):
                raise TypeError(f"not a metric spec: {spec!r}")
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise TypeError(f"expected an OpenTelemetry MeterProvider, got {meter_provider!r}")
        if not isinstance(task_metrics, bool):
            raise TypeError(f"task_metrics must be a bool, not {task_metrics!r}")
        if not isinstance(unrecorded, bool):
            raise TypeError(f"unrecorded must be a bool, not {unrecorded!r}")
        if isinstance(log_interval, bool) or not isinstance(log_interval, int | float):
            raise TypeError(f"log_interval must be a number of seconds, not {log_interval!r}")
        if not log_interval >= 0:
            raise ValueError(f"log_interval must be >= 0 seconds, not {log_interval!r}")
        check_metrics_agree(spec_list)
        spec_list.extend(_specs_from_environment(spec_list))
        # One instrument per name without case (the SDK lowercases them): a
        # spec differing from another only in the case of its metric would
        # record every call twice on it.
        unique: dict[tuple[Any, ...], MetricSpec] = {}
        for spec in spec_list:
            unique.setdefault((type(spec), spec.target, spec.metric_name.lower()), spec)

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("taskmeter", __about__.__version__)
        self.specs: tuple[MetricSpec, ...] = tuple(unique.values())
        """The metric specs in use (from the code and the environment)."""
        instruments: dict[str, Histogram] = {}
        targets: list[_Target] = []
        for spec in self.specs:
            name = spec.metric_name
            instrument = instruments.get(name.lower())
            if instrument is None:
                instrument = meter.create_histogram(
                    name,
                    unit=spec.unit,
                    description=f"{spec.kind} of the target methods, from their timer keys",
                    explicit_bucket_boundaries_advisory=BUCKETS_BY_UNIT[spec.unit],
                )
                instruments[name.lower()] = instrument
            targets.append(_Target(spec, instrument))
        self._targets = tuple(targets)
        self._task_instruments: tuple[tuple[str, Histogram], ...] = ()
        if task_metrics:
            self._task_instruments = tuple(
                (
                    metric.source,
                    meter.create_histogram(
                        metric.name,
                        unit=metric.unit,
                        description=metric.description,
                        explicit_bucket_boundaries_advisory=BUCKETS_BY_UNIT[metric.unit],
                    ),
                )
                for metric in TASK_METRICS
            )
        self._errors = meter.create_counter(
            PROCESSOR_ERRORS,
            unit="{error}",
            description="Errors absorbed by taskmeter's measurement span processor",
        )
        self._log_interval = float(log_interval)
        self._matches: dict[tuple[str | None, str], tuple[_Target, ...]] = {}
        self._task_attributes: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._measurement_attributes: dict[tuple[Any, ...], dict[str, Any]] = {}
        if unrecorded and (self._targets or self._task_instruments):
            _unrecorded.add(self)

    # ------------------------------------------------------------ SpanProcessor

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Record the Measurements of a timer span, or the figures of a task span."""
        try:
            raw = _raw_attributes(span)
            if not raw:
                return
            bounded = getattr(span, "_attributes", None)
            if getattr(bounded, "dropped", 0):
                _report_dropped(span, raw)
            value_limit = getattr(bounded, "max_value_len", None)
            if value_limit is not None:
                _report_value_length_limit(span, raw, value_limit)
            method = raw.get(attr.TIMER_METHOD)
            if method is not None:
                if self._targets:
                    self._measure(raw, method)
            elif self._task_instruments and attr.TASK_ID in raw:
                self._record_task(span.name, raw)
        except Exception as exc:
            self._fail("span", exc)

    def unrecorded_task(self, name: str, attributes: Mapping[str, Any]) -> None:
        """Record the figures of a task named ``name`` whose span was not recorded."""
        try:
            if self._task_instruments:
                self._record_task(name, attributes)
        except Exception as exc:
            self._fail("span", exc)

    def unrecorded_timer(self, attributes: Mapping[str, Any]) -> None:
        """Record the Measurements of a timed call whose span was not recorded."""
        try:
            method = attributes.get(attr.TIMER_METHOD)
            if method is not None and self._targets:
                self._measure(attributes, method)
        except Exception as exc:
            self._fail("span", exc)

    def shutdown(self) -> None:
        """Stop recording the tasks and timed calls of spans that are not recorded.

        The meter provider belongs to the application: nothing else to release.
        """
        _unrecorded.remove(self)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here (the meter provider's readers export)."""
        return True

    # ------------------------------------------------------------ internals

    def _targets_for(self, task_path: str | None, method: str) -> tuple[_Target, ...]:
        key = (task_path, method)
        found = self._matches.get(key)
        if found is None:
            found = tuple(t for t in self._targets if t.spec.matches(method, task_path))
            if len(self._matches) >= _MATCH_CACHE_SIZE:
                self._matches.clear()
            self._matches[key] = found
        return found

    def _measure(self, raw: Mapping[str, Any], method: Any) -> None:
        task_path = raw.get(attr.TIMER_TASK)
        if not isinstance(method, str) or not (task_path is None or isinstance(task_path, str)):
            raise TypeError(f"timer span with a bad method or task: {method!r}, {task_path!r}")
        targets = self._targets_for(task_path, method)
        if not targets:
            return
        get = _span_getter(raw)
        label = raw.get(attr.TASK_LABEL)
        host = raw.get(attr.HOST_NAME)
        for target in targets:
            spec = target.spec
            try:
                value, _ = spec.compute(get)
            except NoWorkFound as exc:
                debug_once(f"measure.nowork.{spec.metric_name}", "%s: %s", spec.metric_name, exc)
                continue
            except MetricComputationError as exc:
                self._fail(spec.metric_name, exc)
                continue
            target.instrument.record(value, self._point_attributes(target, label, host))

    def _point_attributes(self, target: _Target, label: Any, host: Any) -> dict[str, Any]:
        key = (target.spec.target, label, host)
        point = self._measurement_attributes.get(key)
        if point is None:
            point = dict(target.attributes)
            if label is not None:
                point[attr.TASK_LABEL] = label
            if host is not None:
                point[attr.HOST_NAME] = host
            if len(self._measurement_attributes) >= _ATTRIBUTE_CACHE_SIZE:
                self._measurement_attributes.clear()
            self._measurement_attributes[key] = point
        return point

    def _record_task(self, name: str, raw: Mapping[str, Any]) -> None:
        key = (name, raw.get(attr.TASK_STATUS), raw.get(attr.HOST_NAME), raw.get(attr.MACHINE))
        point = self._task_attributes.get(key)
        if point is None:
            point = {attr.TASK_LABEL: name}
            for name, value in zip(
                (attr.TASK_STATUS, attr.HOST_NAME, attr.MACHINE), key[1:], strict=True
            ):
                if value is not None:
                    point[name] = value
            if len(self._task_attributes) >= _ATTRIBUTE_CACHE_SIZE:
                self._task_attributes.clear()
            self._task_attributes[key] = point
        for source, instrument in self._task_instruments:
            value = raw.get(source)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                # A histogram fed one NaN or string would be wrong (or raise) for good.
                self._fail("task", ValueError(f"{source} is {_short(value)}, not a figure"))
                continue
            instrument.record(value, point)

    def _fail(self, where: str, exc: BaseException) -> None:
        kind = type(exc).__name__
        swallowed(f"measure.{where}.{kind}", exc, interval=self._log_interval)
        try:
            self._errors.add(1, {ERROR_TYPE: kind})
        except Exception as inner:  # pragma: no cover - the SDK's counters do not raise
            swallowed("measure.errors", inner, interval=self._log_interval)


ATTRIBUTE_COUNT_NEEDED: Final = 32
"""A span attribute count limit that keeps every attribute of taskmeter's spans (a timer
span carries 28, a task span at most 20)."""


def _report_dropped(span: ReadableSpan, raw: Mapping[str, Any]) -> None:
    """Say once that the SDK dropped attributes of one of taskmeter's spans.

    The SDK drops the oldest attributes first, and taskmeter sets a span's ids
    and timer method first: a task or timer span over the limit loses what
    makes it one, and its task metrics and Measurements are then not recorded.
    """
    if not any(key.startswith("taskmeter.") for key in raw):
        return  # not a span of taskmeter's
    limit = getattr(getattr(span, "_attributes", None), "maxlen", None)
    config_warning(
        "env.OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "span %r lost %d attribute(s) to the span attribute count limit (%s; "
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_COUNT_LIMIT or the tracer "
        "provider's SpanLimits): the oldest go first, a task's ids and a timer's method "
        "among them, so task metrics and Measurements of such spans are missing or "
        "incomplete; a limit of at least %d keeps every attribute of taskmeter's spans",
        span.name,
        span.dropped_attributes,
        limit,
        ATTRIBUTE_COUNT_NEEDED,
    )


VALUE_LENGTH_NEEDED: Final = 36
"""A span attribute value-length limit that keeps the ids (UUIDs, 36 characters) and the
timestamps (``2026-11-22T09:59:12.123456+00:00``, 32) of taskmeter's spans whole."""

_TASKMETER_SPAN_KEYS = (attr.TASK_ID, attr.TIMER_METHOD, attr.TASK_LABEL)
"""One of these is on every span taskmeter writes (tasks, timers)."""

_MAY_BE_LONG = (attr.TASK_LABEL, attr.TIMER_METHOD, attr.TIMER_TASK, attr.MACHINE)
"""taskmeter's string attributes that may be longer than :data:`VALUE_LENGTH_NEEDED`
(the others are ids, timestamps, statuses and source names, all shorter)."""


def _report_value_length_limit(span: ReadableSpan, raw: Mapping[str, Any], limit: int) -> None:
    """Say once that a value-length limit cuts, or may have cut, one of taskmeter's spans.

    The SDK cuts strings to the limit without counting them.  Below
    :data:`VALUE_LENGTH_NEEDED` it cuts ids or timestamps; above, a value as
    long as the limit (a label, say) is taken as cut; the standard attributes
    (``code.function.name``) are not looked at.  Cut timestamps give no
    Measurement (an error of each); cut labels and ids no longer match those
    of other spans and metrics.  This runs for every span under a limit: it
    looks up a few keys, never walks the attributes.
    """
    if not any(key in raw for key in _TASKMETER_SPAN_KEYS):
        return  # not a span of taskmeter's
    if limit >= VALUE_LENGTH_NEEDED and not any(
        _at_least(raw.get(key), limit) for key in _MAY_BE_LONG
    ):
        return
    config_warning(
        "env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "span %r has attribute values cut to the span attribute value-length limit (%s; "
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT or the "
        "tracer provider's SpanLimits): a timer's cut timestamps give no Measurement, and "
        "cut task ids and labels no longer join spans and metrics; a limit of at least %d "
        "keeps taskmeter's ids and timestamps whole (labels must be shorter than it)",
        span.name,
        limit,
        VALUE_LENGTH_NEEDED,
    )


def _at_least(value: object, length: int) -> bool:
    """Whether ``value`` is a string (or holds one) of ``length`` characters or more."""
    if isinstance(value, str):
        return len(value) >= length
    if isinstance(value, tuple | list):
        return any(isinstance(item, str) and len(item) >= length for item in value)
    return False


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _specs_from_environment(given: list[MetricSpec]) -> tuple[MetricSpec, ...]:
    """The specs of the file ``TASKMETER_METRIC_SPECS`` names; none if it is bad.

    A file whose specs give a metric of ``given`` another unit or kind is bad too:
    the environment must not stop the program that made the processor.
    """
    path = settings.metric_specs_file()
    if path is None:
        return ()
    try:
        specs = load_specs(path)
        try:
            check_metrics_agree((*given, *specs))
        except ValueError as exc:
            raise SpecError(f"{path}: {exc}") from exc
        return specs
    except SpecError as exc:
        config_warning(
            f"env.{settings.ENV_METRIC_SPECS}",
            "ignoring %s=%r: %s; using no metric specs from it",
            settings.ENV_METRIC_SPECS,
            path,
            exc,
        )
        return ()
