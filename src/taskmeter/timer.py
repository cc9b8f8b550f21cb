"""lsst.utils.timer's ``timeMethod``, ``logInfo`` and ``time_this``, with a span per call.

:func:`duration_from_time_method` (lsst's ``duration_from_timeMethod``, also
under that name) reads a method's duration back from the keys written.

:func:`time_method` writes exactly the keys lsst.utils writes (``runStartUtc``,
``runStartCpuTime``, ... ``runEndInvoluntaryContextSwitches``, ``nodeName``,
``__version__ = 1``), in the same units, into the ``metadata`` of the
call's first positional argument (appended as lists, or through its ``add``
method), so a metadata object written by either is the same key by key.
lsst's argument names (``logLevel``, ``stacklevel``, ``kwargs``, ``mem_*``)
are taken as they are.  Each call is also a span, child of
the current task or span, carrying that call's keys as ``taskmeter.timer.*``
attributes; :class:`taskmeter.measure.MeasurementSpanProcessor` turns them
into lsst.verify-style Measurements.

The telemetry never raises into the timed code: a metadata object that
refuses a value, or a failing logger, is counted and logged (rate-limited).
"""

from __future__ import annotations

import datetime
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import _process, _unrecorded, settings
from . import attributes as attr
from ._log import debug_once, swallowed
from ._rusage import USAGE_SUFFIXES, node_name, read_usage
from ._text import valid_text
from ._timer_duration import duration_from_time_method
from ._timer_report import enabled_for, is_structlog, memory_now, memory_unit, report
from .task import Task
from .tracing import get_tracer, record_failure

__all__ = [
    "TimerResult",
    "duration_from_timeMethod",
    "duration_from_time_method",
    "log_info",
    "time_method",
    "time_this",
]

_F = TypeVar("_F", bound=Callable[..., Any])

duration_from_timeMethod = duration_from_time_method  # lsst.utils' spelling

METADATA_VERSION = 1
"""The ``__version__`` written into metadata: ``MaxResidentSetSize`` is in bytes."""

_UTC = datetime.UTC
_START_NAMES = tuple(attr.TIMER_ATTRIBUTES["Start" + s] for s in ("Utc", *USAGE_SUFFIXES))
_END_NAMES = tuple(attr.TIMER_ATTRIBUTES["End" + s] for s in ("Utc", *USAGE_SUFFIXES))


def _utc_now() -> str:
    return datetime.datetime.now(_UTC).isoformat()


def _check_metadata(metadata: object) -> None:
    """Raise ``TypeError`` unless ``metadata`` is ``None``, a mutable mapping, or has
    ``add()`` and item assignment (TaskMetadata, PropertySet), as lsst.utils writes both."""
    if metadata is not None and not _is_metadata(metadata):
        raise TypeError(
            "metadata must be a mutable mapping, or have add() and item assignment "
            f"(as TaskMetadata and PropertySet do), not {metadata!r}"
        )


def _check_logger(logger: object, argument: str = "logger") -> None:
    """Raise ``TypeError`` unless ``logger`` is ``None`` or a logger (named: its lines go to
    ``timer.<name>``)."""
    if logger is not None and not (
        callable(getattr(logger, "log", None)) and isinstance(getattr(logger, "name", None), str)
    ):
        raise TypeError(f"{argument} must be a logging.Logger or LoggerAdapter, not {logger!r}")


def _level(log_level: int | None, lsst_level: int | None, names: tuple[str, str]) -> int:
    """The logging level given as ``log_level`` or by lsst.utils' spelling (``logLevel``).

    Both may be given only with the same value: two different levels for one
    option is a ``TypeError``, as Python reports a keyword given twice.
    """
    ours, theirs = names
    if log_level is not None and lsst_level is not None and log_level != lsst_level:
        raise TypeError(
            f"{ours}={log_level!r} and {theirs}={lsst_level!r} are one option "
            f"({theirs} is lsst.utils' spelling): pass one of them"
        )
    level, name = (log_level, ours) if log_level is not None else (lsst_level, theirs)
    if level is None:
        return logging.DEBUG
    if not isinstance(level, int) or isinstance(level, bool):
        raise TypeError(f"{name} must be a logging level (int), not {level!r}")
    return level


def _is_metadata(value: object) -> bool:
    """Whether ``value`` takes timer keys: a mutable mapping, or ``add()`` and item
    assignment (TaskMetadata, PropertySet)."""
    return type(value) is dict or (
        isinstance(value, MutableMapping)
        or (hasattr(value, "add") and hasattr(value, "__setitem__"))
    )


def _metadata_adder(metadata: Any) -> Callable[[str, Any], None]:
    """How to append a value to ``metadata``, the way lsst.utils does.

    ``addLongLong`` (a PropertySet; integers), else ``add`` (TaskMetadata,
    PropertySet), else a list kept in the mapping and appended to.  Looked up
    once per set of keys: a failed ``getattr`` costs as much as the append.
    """
    add_long_long = getattr(metadata, "addLongLong", None)
    add = getattr(metadata, "add", None)
    if add_long_long is not None:

        def add_value(name: str, value: Any) -> None:
            try:
                add_long_long(name, value)
            except TypeError:
                if add is None:
                    raise
                add(name, value)

        return add_value
    if add is not None:
        return cast("Callable[[str, Any], None]", add)

    def append(name: str, value: Any) -> None:
        if name not in metadata:
            metadata[name] = []
        metadata[name].append(value)

    return append


def _write_metadata(metadata: Any, prefix: str, utc: str, usage: tuple[Any, ...]) -> None:
    add = _metadata_adder(metadata)
    add(prefix + "Utc", utc)
    metadata["__version__"] = METADATA_VERSION
    metadata["nodeName"] = node_name()
    for suffix, value in zip(USAGE_SUFFIXES, usage, strict=True):
        add(prefix + suffix, value)


def _log_usage(log: Any, level: int, prefix: str, usage: tuple[Any, ...], stacklevel: int) -> None:
    """Log the usage pairs to ``timer.<logger name>``, as lsst.utils does."""
    name = getattr(log, "name", None)
    if not isinstance(name, str):
        return
    timer_logger = logging.getLogger("timer." + name)
    if timer_logger.isEnabledFor(level):
        message = "; ".join(
            f"{prefix}{suffix}={value}" for suffix, value in zip(USAGE_SUFFIXES, usage, strict=True)
        )
        timer_logger.log(level, message, stacklevel=stacklevel)


def _object_metadata(obj: Any, metadata: Any) -> Any:
    """``metadata`` (``obj.metadata``) if it is task metadata, else ``None`` (``None``,
    or an attribute of another kind, such as a data frame's column: left alone).

    Task metadata here is a mutable mapping, or what has ``add()``, item
    assignment and ``paramNames()`` (a TaskMetadata, a PropertySet): ``add()``
    and item assignment alone are also a pandas Series' arithmetic and cells.
    """
    if metadata is None or type(metadata) is dict:
        return metadata
    if isinstance(metadata, MutableMapping) or (
        _is_metadata(metadata) and hasattr(metadata, "paramNames")
    ):
        return metadata
    kind = type(metadata)
    debug_once(
        f"timer.metadata.kind:{kind.__module__}.{kind.__qualname__}",
        "timer keys not written to the metadata of a %s: a %s is neither a mutable mapping "
        "nor a TaskMetadata or PropertySet",
        type(obj).__qualname__,
        kind.__qualname__,
    )
    return None


def log_info(
    obj: Any,
    prefix: str,
    log_level: int | None = None,
    metadata: MutableMapping[str, Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    stacklevel: int | None = None,
    *,
    logLevel: int | None = None,  # lsst.utils' spelling
) -> dict[str, Any]:
    """Record the current time and resource usage under keys starting with ``prefix``.

    lsst.utils' ``logInfo``, with its parameters in its order: into
    ``metadata`` (default ``obj.metadata``, when the object has one that is
    a mutable mapping, a TaskMetadata or a PropertySet) go
    ``<prefix>Utc`` (ISO 8601 with offset), ``<prefix>CpuTime``,
    ``UserTime``, ``SystemTime`` (s), ``MaxResidentSetSize`` (bytes),
    ``MinorPageFaults``, ``MajorPageFaults``, ``BlockInputs``,
    ``BlockOutputs``, ``VoluntaryContextSwitches`` and
    ``InvoluntaryContextSwitches``, each appended to a list, and the scalars
    ``__version__ = 1`` and ``nodeName``.  The usage pairs are also logged at
    ``log_level`` (``logging.DEBUG`` unless given; ``logLevel=`` is the
    same option in lsst's spelling) to ``timer.<name>`` of ``logger``
    (default ``obj.log``), attributed to the caller of ``log_info``, or with
    ``stacklevel=N`` to the frame ``N`` levels up from that caller's
    (``stacklevel=1`` is the caller itself), as lsst's ``stacklevel`` counts.

    Returns the keys and values recorded (whether or not there was metadata).
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    level = _level(log_level, logLevel, ("log_level", "logLevel"))
    if stacklevel is not None:
        if not isinstance(stacklevel, int) or isinstance(stacklevel, bool):
            raise TypeError(f"stacklevel must be an int, not {stacklevel!r}")
        if stacklevel < 1:
            raise ValueError(f"stacklevel must be at least 1 (log_info's caller), not {stacklevel}")
    _check_metadata(metadata)
    _check_logger(logger)
    if metadata is None and obj is not None:
        metadata = _object_metadata(obj, getattr(obj, "metadata", None))
    if logger is None and obj is not None:
        logger = getattr(obj, "log", None)
    utc = _utc_now()
    usage = read_usage()
    if metadata is not None:
        _write_metadata(metadata, prefix, utc, usage)
    if logger is not None:
        # Past _log_usage and log_info: 3 is log_info's caller, lsst's stacklevel=1.
        _log_usage(logger, level, prefix, usage, stacklevel=2 + (stacklevel or 1))
    values: dict[str, Any] = {prefix + "Utc": utc}
    values.update(zip((prefix + s for s in USAGE_SUFFIXES), usage, strict=True))
    return values


# ---------------------------------------------------------------- one timed call


@dataclass(frozen=True, slots=True)
class _Site:
    """What is fixed for one decorated function (or one ``time_this`` block)."""

    span_name: str
    prefix: str | None
    """The key prefix (method name), or ``None`` to record no timer keys."""
    code_function: str | None
    metadata: Any
    logger: Any
    log_level: int


def _task_path(obj: Any) -> str | None:
    """The LSST task path of ``obj`` as ``getFullMetadata()`` spells it (``top:sub``).

    A class (the ``cls`` of a timed classmethod) has none: ``getFullName`` is an
    instance method there, not a failure of the user's object.
    """
    if isinstance(obj, type):
        return None
    try:
        get_full_name = getattr(obj, "getFullName", None)
        name = get_full_name() if callable(get_full_name) else None
    except Exception as exc:
        # The object's own failure: the span keeps its other attributes.
        swallowed("timer.task_path", exc)
        return None
    if isinstance(name, str) and name:
        return name.replace(".", ":")
    return None


def _enclosing_task_label() -> str | None:
    task = Task.current()
    return None if task is None else task.label


class _TimedCall:
    """The readings, metadata entries, log lines and span of one call."""

    __slots__ = ("log", "metadata", "obj", "site", "span", "token", "unrecorded")

    def __init__(self, site: _Site, obj: Any) -> None:
        self.site = site
        self.obj = obj
        metadata = site.metadata
        log = site.logger
        if obj is not None and (metadata is None or log is None):
            # Properties of the user's object may raise anything: the call
            # must run all the same, without the metadata or log it lacks.
            try:
                if metadata is None:
                    metadata = getattr(obj, "metadata", None)
                    if metadata is not None and type(metadata) is not dict:
                        metadata = _object_metadata(obj, metadata)
                if log is None:
                    log = getattr(obj, "log", None)
            except Exception as exc:
                swallowed("timer.attributes", exc)
        self.metadata = metadata
        self.log = log
        self.span: trace.Span = trace.INVALID_SPAN
        self.token: object | None = None
        self.unrecorded: dict[str, Any] | None = None
        """The attributes a span that is not recorded would carry, gathered for the
        Measurements (see :mod:`taskmeter._unrecorded`) when something takes them."""

    def start(self) -> None:
        site = self.site
        try:
            span = get_tracer().start_span(site.span_name)
            self.span = span
            if span.get_span_context().is_valid:
                self.token = otel_context.attach(trace.set_span_in_context(span))
            if span.is_recording():
                span.set_attributes(self._static_attributes())
            elif site.prefix is not None and _unrecorded.sinks:
                self.unrecorded = self._static_attributes()
        except Exception as exc:
            swallowed("timer.span.start", exc)
        prefix = site.prefix
        if prefix is not None:
            self._record(prefix + "Start", _START_NAMES)

    def finish(self, error: BaseException | None) -> None:
        prefix = self.site.prefix
        if prefix is not None:
            self._record(prefix + "End", _END_NAMES)
        span = self.span
        if prefix == "__init__" and error is None and self.obj is not None:
            self._late_task_path()
        try:
            if error is not None and span.is_recording():
                record_failure(span, error)
            span.end()
        except Exception as exc:
            swallowed("timer.span.end", exc)
        token = self.token
        if token is not None:
            self.token = None
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception as exc:
                swallowed("timer.context", exc)
        unrecorded = self.unrecorded
        if unrecorded is not None:
            self.unrecorded = None
            _unrecorded.timer_ended(unrecorded)

    def _late_task_path(self) -> None:
        """The task path of an object a timed ``__init__`` has just set up."""
        path = _task_path(self.obj)
        if path is None:
            return
        text = valid_text(path)
        try:
            if self.span.is_recording():
                self.span.set_attribute(attr.TIMER_TASK, text)
        except Exception as exc:
            swallowed("timer.span.start", exc)
        if self.unrecorded is not None:
            self.unrecorded[attr.TIMER_TASK] = text

    def _static_attributes(self) -> dict[str, Any]:
        # Names the program chose (a function's, an LSST task's, a label) may hold
        # undecodable bytes, which exporters refuse: valid_text writes them as \xNN.
        site = self.site
        attributes: dict[str, Any] = {attr.HOST_NAME: valid_text(_process.hostname)}
        if site.code_function is not None:
            attributes[attr.CODE_FUNCTION_NAME] = valid_text(site.code_function)
        if site.prefix is not None:
            attributes[attr.TIMER_METHOD] = valid_text(site.prefix)
            attributes[attr.TIMER_VERSION] = METADATA_VERSION
            # An object being built (a timed __init__) has no name yet: it is
            # asked when the call ends (see _late_task_path).
            if self.obj is not None and site.prefix != "__init__":
                path = _task_path(self.obj)
                if path is not None:
                    attributes[attr.TIMER_TASK] = valid_text(path)
        label = _enclosing_task_label()
        if label is not None:
            attributes[attr.TASK_LABEL] = valid_text(label)
        return attributes

    def _record(self, prefix: str, names: tuple[str, ...]) -> None:
        utc = _utc_now()
        usage = read_usage()
        metadata = self.metadata
        if metadata is not None:
            try:
                _write_metadata(metadata, prefix, utc, usage)
            except Exception as exc:
                swallowed("timer.metadata", exc)
        if self.log is not None:
            try:
                # 5: past _log_usage, _record, start/finish and the wrapper, to
                # the caller of the timed method, as lsst.utils attributes it.
                _log_usage(self.log, self.site.log_level, prefix, usage, stacklevel=5)
            except Exception as exc:
                swallowed("timer.log", exc)
        span = self.span
        if span.is_recording():
            try:
                span.set_attributes(dict(zip(names, (utc, *usage), strict=True)))
            except Exception as exc:
                swallowed("timer.span.attributes", exc)
        elif self.unrecorded is not None:
            self.unrecorded.update(zip(names, (utc, *usage), strict=True))


def _decorate(func: _F, metadata: Any, logger: Any, log_level: int) -> _F:
    if not callable(func):
        raise TypeError(f"time_method decorates a function or method, not {func!r}")
    name = getattr(func, "__name__", None) or type(func).__name__
    qualname = getattr(func, "__qualname__", name)
    module = getattr(func, "__module__", None)
    site = _Site(
        span_name=valid_text(qualname),
        prefix=name,
        code_function=f"{module}.{qualname}" if module else qualname,
        metadata=metadata,
        logger=logger,
        log_level=log_level,
    )

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            timed = _TimedCall(site, args[0] if args else None)
            timed.start()
            try:
                result = await func(*args, **kwargs)
            except BaseException as error:
                timed.finish(error)
                raise
            timed.finish(None)
            return result

        return cast(_F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        timed = _TimedCall(site, args[0] if args else None)
        timed.start()
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            timed.finish(error)
            raise
        timed.finish(None)
        return result

    return cast(_F, wrapper)


@overload
def time_method(_func: _F) -> _F: ...


@overload
def time_method(
    *,
    metadata: MutableMapping[str, Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    log_level: int | None = None,
    logLevel: int | None = None,  # lsst.utils' spelling
) -> Callable[[_F], _F]: ...


def time_method(
    _func: Any = None,
    *,
    metadata: MutableMapping[str, Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    log_level: int | None = None,
    logLevel: int | None = None,  # lsst.utils' spelling
) -> Any:
    """Time each call of a method or function, as lsst.utils' ``timeMethod`` does.

    Use it bare (``@time_method``) or with options (``@time_method(metadata=md)``).
    Every call of ``run`` appends ``runStart*`` keys before and ``runEnd*``
    keys after it (also when it raises), exactly as :func:`log_info`
    describes, and logs the usage to ``timer.<name>`` of a logger at
    ``log_level`` (``logging.DEBUG`` unless given; ``logLevel=`` is the same
    option in lsst.utils' spelling, and giving both with different values
    is a ``TypeError``).

    The object of a call is its first positional argument, whatever the
    parameter is named (``self``, ``cls``, ``task``, ...), as lsst.utils
    takes it.  Its ``metadata`` receives the keys when it is a mutable
    mapping, a TaskMetadata or a PropertySet (``add()``, item assignment and
    ``paramNames()``); its ``log``, when it is a logger, gets the lines.  Given
    ``metadata=`` or ``logger=`` take their place.  A call without a
    positional argument, or whose object has neither, writes its keys only
    to its span; an attribute of another kind (or one whose lookup raises)
    is left alone.  So a plain function ``f(dataset)`` writes into
    ``dataset.metadata`` if that is a dict, as lsst.utils would: pass
    ``metadata=`` to send the keys elsewhere.  ``time_method`` also goes
    on either side of ``@staticmethod`` and ``@classmethod``.

    Each call is a span named by the function's qualified name, child of the
    current task or span, with attributes ``taskmeter.timer.method``,
    ``taskmeter.timer.task`` (the object's ``getFullName()`` with dots as
    colons, as LSST's ``getFullMetadata()`` keys it), ``taskmeter.task.label``
    (the enclosing task), ``code.function.name`` and the call's keys as
    ``taskmeter.timer.start.*`` / ``taskmeter.timer.end.*``.  A call that
    raises ends its span with status ERROR and the exception recorded.

    If ``LSST_UTILS_DISABLE_TIMER`` is set (to anything), or
    ``TASKMETER_DISABLE_TIMER`` is true, when the decorator is applied, the
    function is returned undecorated.  Coroutine functions are timed from
    the first step to completion.  Generator functions are timed as
    lsst.utils times them: the call that creates the generator, not its
    iteration (time the loop with :func:`time_this`).
    """
    level = _level(log_level, logLevel, ("log_level", "logLevel"))
    _check_metadata(metadata)
    _check_logger(logger)
    disabled = settings.timers_disabled()

    def decorate(func: _F) -> _F:
        if disabled:
            return func
        if isinstance(func, staticmethod | classmethod):
            # The descriptor stays outermost, so the class binds as it would.
            return cast(_F, type(func)(_decorate(func.__func__, metadata, logger, level)))
        return _decorate(func, metadata, logger, level)

    if _func is None:
        return decorate
    return decorate(_func)


# ---------------------------------------------------------------- time_this


@dataclass(slots=True)
class TimerResult:
    """What :func:`time_this` measured (filled in when the block ends)."""

    duration: float = 0.0
    """Duration of the block in seconds."""
    mem_current_usage: float | None = None
    """RSS at the end of the block, in ``mem_unit``."""
    mem_peak_delta: float | None = None
    """Rise of the peak RSS over the block, in ``mem_unit``."""
    mem_current_delta: float | None = None
    """Change of the RSS over the block, in ``mem_unit``."""


@contextmanager
def time_this(
    log: Any = None,  # a logging.Logger or LoggerAdapter, or a structlog logger
    msg: str | None = None,
    level: int = logging.DEBUG,
    prefix: str | None = "timer",
    args: Iterable[Any] = (),
    kwargs: dict[str, Any] | None = None,
    mem_usage: bool = False,
    mem_child: bool = False,
    mem_unit: Any = "byte",
    mem_fmt: str = ".0f",
    force_mem_usage: bool = False,
    *,
    name: str | None = None,
    metadata: MutableMapping[str, Any] | None = None,
) -> Iterator[TimerResult]:
    """Time the enclosed block, log how long it took, and record it as a span.

    lsst.utils' ``time_this``, with its parameters in its order: logs
    ``"<msg>: Took <s> seconds"`` (plus, if the block raised, ``(timed code
    triggered exception of "<repr> @ <file>:<line>")``, and the memory
    figures when ``mem_usage``) at ``level`` to ``<prefix>.<log name>``,
    and yields a :class:`TimerResult` filled in when the block ends.
    ``mem_unit`` is an astropy unit of information (``u.byte``, the
    default's name, ``u.MiB``, ``u.kbyte``, ...; printed as astropy names
    it: ``Mibyte``) or a unit name (``B``, ``KiB``, ``MiB``, ``GiB``,
    ``TiB``, ``kB``, ``MB``, ``GB``, ``TB``); another unit is warned about
    and bytes used, as lsst.utils does.  A structlog logger gets the message
    unprefixed, with ``duration``, the memory figures and ``kwargs`` as
    key-value pairs, as lsst.utils logs to it.

    The block is a span named ``name`` (or ``msg``), child of the current
    task or span.  With ``name`` the block is also timed like a method called
    ``name``: ``<name>Start*`` / ``<name>End*`` keys on the span, and in
    ``metadata`` if given, so metric specs can target it.  ``metadata``
    without ``name`` is a ``ValueError``: it would receive nothing.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if name == "":
        raise ValueError("name must be a method-like name for the timer keys, not ''")
    _check_metadata(metadata)
    if metadata is not None and name is None:
        raise ValueError("metadata= is written only for a named block: pass name= too")
    if log is not None and not callable(getattr(log, "log", None)):
        raise TypeError(
            f"log must be a logging.Logger, LoggerAdapter or structlog logger, not {log!r}"
        )
    if log is None:
        log = logging.getLogger()
    structured = is_structlog(log)
    log_name = getattr(log, "name", None)
    if prefix and not structured and isinstance(log_name, str):
        log = logging.getLogger(
            f"{prefix}.{log_name}" if not isinstance(log, logging.RootLogger) else prefix
        )
    if mem_usage and not enabled_for(log, level):
        mem_usage = False
    if force_mem_usage:
        mem_usage = True
    unit = memory_unit(mem_unit) if mem_usage else ("byte", 1.0)

    site = _Site(
        span_name=valid_text(name or msg or "time_this"),
        prefix=name,
        code_function=None,
        metadata=metadata,
        logger=None,
        log_level=level,
    )
    timed = _TimedCall(site, None)
    memory_start = memory_now() if mem_usage else None
    result = TimerResult()
    timed.start()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        yield result
    except BaseException as exc:
        error = exc
        raise
    finally:
        result.duration = time.perf_counter() - start
        timed.finish(error)
        report(
            log,
            structured,
            level,
            msg,
            args,
            kwargs,
            result,
            error,
            memory_start,
            mem_child,
            mem_fmt,
            unit,
        )
