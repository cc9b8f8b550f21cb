"""Configure the OpenTelemetry SDK from the standard ``OTEL_*`` variables, when nothing else did.

``opentelemetry-instrument`` configures no SDK by itself: a *configurator*
(an ``opentelemetry_configurator`` entry point, which ``opentelemetry-distro``
provides) does.  taskmeter registers no configurator of its own, because
``opentelemetry-instrument`` runs only the first one it finds and warns about
the others: with the distro also installed, which one ran would depend on
the order of installation.  Instead, taskmeter's instrumentor (which runs
after the configurators) checks whether a tracer provider was set, and if
none was, sets up tracing and metrics here, as the distro would:

* the resource from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
  (``Resource.create``), plus ``telemetry.auto.version``;
* span exporters named by ``OTEL_TRACES_EXPORTER`` and metric exporters (or
  readers, such as ``prometheus``) named by ``OTEL_METRICS_EXPORTER``, by
  their entry points; both default to ``otlp``, whose transport is chosen by
  ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL`` (``grpc``, the default,
  or ``http/protobuf``), as the SDK does;
* everything else (endpoints, headers, timeouts, sampler, export intervals)
  is read by the SDK's classes themselves from their ``OTEL_*`` variables.

**Durable export.**  With ``TASKMETER_SPOOL_DIR`` set, the ``otlp``
exporters are taskmeter's durable ones (:class:`~taskmeter.export.DurableSpanExporter`
behind a :class:`~taskmeter.export.DurableSpanProcessor`, and
:class:`~taskmeter.export.DurableMetricExporter`), with the same protocol,
endpoint and headers: what the collector cannot take waits in the spool.
The ``taskmeter`` span exporter (``OTEL_TRACES_EXPORTER=taskmeter``) is
always put behind a ``DurableSpanProcessor``, which spools what its queue
cannot hold instead of dropping it.

Logs are left alone (``OTEL_LOGS_EXPORTER`` needs the distro).  Only public
SDK classes and the exporters' entry points are used.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .. import settings
from .._log import config_warning, swallowed
from ._hidden import blank_otlp_variables, hidden_from_environment
from ._otlp_headers import checked_headers, headers_variables
from .otlp_grpc import make_grpc_exporter

__all__ = [
    "SdkSetup",
    "batch_arguments",
    "build_from_environment",
    "configure_from_environment",
    "exporter_names",
    "reader_intervals",
    "span_processor_for",
]

TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
PROMETHEUS_PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"
DEFAULT_PROMETHEUS_PORT = 9464
"""The port the SDK's Prometheus reader serves on when the variable is unset."""
_SIGNAL_PROTOCOL = {
    "traces": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
}
_ENTRY_POINT_GROUP = {
    "traces": "opentelemetry_traces_exporter",
    "metrics": "opentelemetry_metrics_exporter",
}
_INSTALL_HINT = {"prometheus": "pip install 'taskmeter[prometheus]'"}
"""Exporter name -> how to install it, for the names a taskmeter extra provides."""
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_PROTOCOL_OF_OTLP = {name: protocol for protocol, name in _OTLP_BY_PROTOCOL.items()}


WORKER_EXIT_TIMEOUT_S = 3.0
"""The longest a worker process's exit waits for the providers taskmeter built to shut down."""


def _shut_down(providers: list[Any]) -> None:
    for provider in providers:
        try:
            provider.shutdown()
        except Exception as exc:
            swallowed("instrument.shutdown", exc)


def _take_exit(provider: Any) -> bool:
    """Unregister the SDK's exit hook of ``provider``; whether it still had one (it has
    none once the program shut the provider down)."""
    handler = getattr(provider, "_atexit_handler", provider.shutdown)
    if handler is None:
        return False
    atexit.unregister(handler)
    return True


class SdkSetup:
    """The providers taskmeter configured (to flush or shut down).

    Built by :func:`build_from_environment`, they are shut down at exit by
    the SDK's own exit hooks, except in a ``multiprocessing`` worker, where
    :meth:`shutdown_at_exit` takes over and bounds that shutdown: a collector
    that accepts connections and never answers cannot hold every worker (and
    the pool that joins them) for the exporters' timeouts.  (The SDK's hook
    is found as the provider's ``_atexit_handler``, or as its bound
    ``shutdown`` method, which is what the SDK registers.)

    The bounded shutdown is also one of ``multiprocessing``'s exit
    finalizers, and whichever of the two runs first does it: Python 3.12 lets no
    exit hook start a thread (``RuntimeError: can't create new thread at
    interpreter shutdown``), and without a thread the wait has no bound, but
    there a worker runs its finalizers before the interpreter finalizes.
    (Python 3.11 and 3.13 run the exit hook's thread; 3.13 runs a worker's
    finalizers from an exit hook.)
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        *,
        durable: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.durable = durable
        """Whether every exporter keeps what it cannot deliver in the spool."""
        self._exit_pid = 0
        self._exit_done = False

    def shutdown(self) -> None:
        """Shut the tracer provider down, then the meter provider (which holds the
        metrics recorded from the spans); never raises."""
        _shut_down([self.tracer_provider, self.meter_provider])

    def register_exit(self) -> None:
        """Take over the providers' exit shutdown in ``multiprocessing`` workers
        (:meth:`shutdown_at_exit`, run before the SDK's own exit hooks)."""
        from .. import _workers

        atexit.register(self.shutdown_at_exit)
        self._exit_pid = os.getpid()
        self._exit_done = False
        _workers.shut_down_at_exit(self.tracer_provider, self.meter_provider)
        mp_util = _multiprocessing_util()
        if mp_util is not None:
            mp_util.Finalize(None, self.shutdown_at_exit, exitpriority=_workers.EXIT_PRIORITY)

    def shutdown_at_exit(self, timeout_s: float | None = None) -> bool:
        """At exit, in a ``multiprocessing`` worker: the SDK's shutdown of the providers
        (those the program has not shut down), waiting at most ``timeout_s``
        (:data:`WORKER_EXIT_TIMEOUT_S`).  Elsewhere nothing: the SDK's hooks do it.

        Returns whether the shutdown ended.  One that did not is said in a
        warning: what the exporters had not delivered waits in the spool
        (:attr:`durable`), or is lost.
        """
        from ..export.processor import in_worker_process

        if os.getpid() != self._exit_pid or not in_worker_process():
            # The main process (or a forked child of the one that built them):
            # the SDK's exit hooks shut the providers down, as everywhere else.
            return True
        if self._exit_done:
            return True  # done by multiprocessing's finalizers, before this exit hook
        self._exit_done = True
        providers = [p for p in (self.tracer_provider, self.meter_provider) if _take_exit(p)]
        if not providers:
            return True  # shut down already, by the program
        limit_s = WORKER_EXIT_TIMEOUT_S if timeout_s is None else timeout_s
        thread = threading.Thread(
            target=_shut_down, args=(providers,), name="taskmeter-shutdown", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # no new thread at this point of the exit: unbounded, as before
            _shut_down(providers)
            return True
        thread.join(limit_s)
        if not thread.is_alive():
            return True
        from .._log import warn_once

        if self.durable:
            fate = "what they had not delivered waits in the spool (TASKMETER_SPOOL_DIR)"
        else:
            fate = (
                "spans and metrics they had not delivered are lost "
                "(TASKMETER_SPOOL_DIR keeps them for a later delivery)"
            )
        warn_once(
            "instrument.exit.timeout",
            "worker process %d: the OpenTelemetry exporters did not finish within %.0f s "
            "of its exit (a collector that does not answer?); not waiting for them: %s",
            os.getpid(),
            limit_s,
            fate,
        )
        return False


def _multiprocessing_util() -> Any:
    """``multiprocessing.util`` if this process is, or may become, a ``multiprocessing``
    worker: imported already, or this is the start of a spawned worker (whose
    arguments hold ``--multiprocessing-fork``); else ``None``."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None and "--multiprocessing-fork" in sys.argv:
        import multiprocessing.util as mp_util
    return mp_util


def exporter_names(signal: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The entry-point names of the exporters ``OTEL_<SIGNAL>_EXPORTER`` asks for (default otlp).

    ``otlp`` becomes ``otlp_proto_grpc`` or ``otlp_proto_http`` by the OTLP
    protocol variables; ``none`` gives no exporter.  Names and protocols are
    read without regard to case or surrounding spaces.  An unsupported OTLP
    protocol is reported once, naming its variable: ``http/json`` gives
    ``otlp_proto_http`` (the same endpoints take it), anything else
    ``otlp_proto_grpc`` (the default).  A variable that is empty or blank is
    read as unset.
    """
    env = os.environ if environ is None else environ
    variable = TRACES_EXPORTER if signal == "traces" else METRICS_EXPORTER
    text = (env.get(variable) or "").strip() or "otlp"
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name or name == "none":
            continue
        if name == "otlp":
            specific = _SIGNAL_PROTOCOL[signal]
            variable = specific if (env.get(specific) or "").strip() else OTLP_PROTOCOL
            text = env.get(variable) or ""
            # As the exporter names: "HTTP/Protobuf" is http/protobuf.
            protocol = text.strip().lower() or "grpc"
            mapped = _OTLP_BY_PROTOCOL.get(protocol)
            if mapped is None:
                # http/json (no SDK exporter speaks it): the same endpoints take
                # http/protobuf; anything else: the default.
                instead = "http/protobuf" if protocol.startswith("http") else "grpc"
                config_warning(
                    f"env.{variable}",
                    "ignoring %s=%r: expected one of %s; using %s",
                    variable,
                    text,
                    ", ".join(_OTLP_BY_PROTOCOL),
                    instead,
                )
                mapped = _OTLP_BY_PROTOCOL[instead]
            name = mapped
        if name not in names:
            names.append(name)
    return names


def _load(signal: str, name: str) -> Any:
    found = entry_points(group=_ENTRY_POINT_GROUP[signal], name=name)
    for entry_point in found:
        return entry_point.load()
    hint = _INSTALL_HINT.get(name)
    raise LookupError(
        f"no {signal} exporter named {name!r} is installed "
        f"(entry point group {_ENTRY_POINT_GROUP[signal]})" + (f"; {hint}" if hint else "")
    )


def span_processor_for(
    exporter: SpanExporter, environ: Mapping[str, str] | None = None
) -> SpanProcessor:
    """The processor an exporter made from the environment goes behind.

    A :class:`~taskmeter.export.DurableSpanExporter` goes behind a
    :class:`~taskmeter.export.DurableSpanProcessor` (which spools its
    overflow), any other behind the SDK's ``BatchSpanProcessor``; both are
    sized by the ``OTEL_BSP_*`` variables.
    """
    from ..export import DurableSpanExporter, DurableSpanProcessor

    if isinstance(exporter, DurableSpanExporter):
        return DurableSpanProcessor.from_environment(exporter, environ)
    sizes = batch_arguments(environ)
    return BatchSpanProcessor(
        exporter,
        max_queue_size=sizes["max_queue_size"],
        schedule_delay_millis=sizes["schedule_delay_millis"],
        max_export_batch_size=sizes["max_export_batch_size"],
        export_timeout_millis=sizes["export_timeout_millis"],
    )


def reader_intervals(environ: Mapping[str, str] | None = None) -> tuple[float, float]:
    """``OTEL_METRIC_EXPORT_INTERVAL`` and ``_TIMEOUT`` (ms) for a periodic metric reader.

    The SDK's ``PeriodicExportingMetricReader`` raises on an interval of 0 or
    less, which left the metric exporter out altogether, and its export thread
    dies on one too long to wait for; here such a value (over an hour) is
    reported once, naming the variable, and the SDK's default applies.
    """
    wait_ms = settings.export_wait_ms
    interval_ms = settings.env_value("OTEL_METRIC_EXPORT_INTERVAL", wait_ms, 60000.0, environ)
    timeout_ms = settings.env_value("OTEL_METRIC_EXPORT_TIMEOUT", wait_ms, 30000.0, environ)
    return interval_ms, timeout_ms


def batch_arguments(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The ``BatchSpanProcessor`` sizes the ``OTEL_BSP_*`` variables ask for, checked here.

    The SDK's ``BatchSpanProcessor`` reads them itself, but raises on values it
    parses and cannot use (a delay of 0, a batch larger than the queue, a queue
    too large for a C size), which left the exporter out altogether, and its
    export thread dies on a delay too long to wait for; here such a value (a
    wait over an hour, a size over 2**31 - 1) is reported once,
    naming the variable: the SDK's default applies, and a batch larger than
    the queue is cut to the queue's size.
    """
    queue = settings.env_value("OTEL_BSP_MAX_QUEUE_SIZE", settings.positive_int, 2048, environ)
    batch = settings.env_value(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", settings.positive_int, 512, environ
    )
    wait_ms = settings.export_wait_ms_int
    delay_ms = settings.env_value("OTEL_BSP_SCHEDULE_DELAY", wait_ms, 5000, environ)
    timeout_ms = settings.env_value("OTEL_BSP_EXPORT_TIMEOUT", wait_ms, 30000, environ)
    if batch > queue:
        config_warning(
            "env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "ignoring OTEL_BSP_MAX_EXPORT_BATCH_SIZE=%d: it exceeds OTEL_BSP_MAX_QUEUE_SIZE=%d; "
            "using %d",
            batch,
            queue,
            queue,
        )
        batch = queue
    return {
        "max_queue_size": queue,
        "max_export_batch_size": batch,
        "schedule_delay_millis": delay_ms,
        "export_timeout_millis": timeout_ms,
    }


class _Durable:
    """The spool of ``TASKMETER_SPOOL_DIR``, shared by the exporters of one set-up."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.directory = settings.usable_spool_dir(environ)
        self._spool: Any = None
        self.all_durable = self.directory is not None
        """Whether every exporter made so far is a durable one (keeps what it cannot send)."""

    def spool(self) -> Any:
        from ..export import Spool

        if self._spool is None:
            self._spool = Spool(
                self.directory or "", max_bytes=settings.spool_max_bytes(self.environ)
            )
        return self._spool

    def exporter(self, signal: str, name: str) -> Any:
        """The durable exporter standing for the OTLP exporter ``name``, or ``None``."""
        protocol = _PROTOCOL_OF_OTLP.get(name)
        if self.directory is None or protocol is None:
            return None
        from ..export import DurableMetricExporter, DurableSpanExporter, sender_for

        sender = sender_for(signal, self.environ, protocol=protocol)
        if signal == "traces":
            return DurableSpanExporter(self.spool(), sender=sender)
        return DurableMetricExporter(self.spool(), sender=sender)


def _made(signal: str, name: str, durable: _Durable) -> Any:
    """The exporter ``name`` of ``signal``."""
    made = durable.exporter(signal, name)
    if made is None:
        durable.all_durable = False
        factory = _load(signal, name)
        if name == _OTLP_BY_PROTOCOL["grpc"]:
            # The SDK's gRPC exporters raise on timeout and compression values
            # they cannot use (``none`` among them): read them here instead.
            made = make_grpc_exporter(factory, signal, durable.environ)
        elif name == _OTLP_BY_PROTOCOL["http/protobuf"]:
            from ..export.config import fallback_endpoint

            arguments: dict[str, Any] = {}
            endpoint = fallback_endpoint(signal, durable.environ, protocol="http/protobuf")
            if endpoint is not None:
                arguments["endpoint"] = endpoint
            hidden = blank_otlp_variables(signal)  # read as unset, as the spec asks
            headers, hide = checked_headers(signal, durable.environ)
            if hide:
                arguments["headers"] = headers
                hidden.extend(headers_variables(signal))
            with hidden_from_environment(*hidden):
                made = factory(**arguments)
        elif name == "prometheus" and _prometheus_port_unusable():
            with hidden_from_environment(PROMETHEUS_PORT):
                made = factory()
        else:
            made = factory()
    return made


def _prometheus_port_unusable() -> bool:
    """Whether ``OTEL_EXPORTER_PROMETHEUS_PORT`` is set to what the SDK's Prometheus reader
    cannot use (it raises, and exports nothing); reported once if so."""
    text = os.environ.get(PROMETHEUS_PORT)
    if text is None:
        return False
    try:
        port = int(text)
    except ValueError:
        port = -1
    if 0 <= port <= 65535:
        return False
    config_warning(
        f"env.{PROMETHEUS_PORT}",
        "ignoring %s=%r: expected a port number from 0 to 65535; using %d",
        PROMETHEUS_PORT,
        text,
        DEFAULT_PROMETHEUS_PORT,
    )
    return True


def _span_processors(environ: Mapping[str, str], durable: _Durable) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    for name in exporter_names("traces", environ):
        try:
            exporter = _made("traces", name, durable)
            if not isinstance(exporter, SpanExporter):
                raise TypeError(f"{exporter!r} is not a span exporter")
            processors.append(span_processor_for(exporter, environ))
        except Exception as exc:
            swallowed(
                f"instrument.exporter.traces.{name}", _ExporterError(TRACES_EXPORTER, name, exc)
            )
    return processors


def _metric_readers(environ: Mapping[str, str], durable: _Durable) -> list[MetricReader]:
    readers: list[MetricReader] = []
    for name in exporter_names("metrics", environ):
        try:
            made = _made("metrics", name, durable)
            if isinstance(made, MetricExporter):
                interval_ms, timeout_ms = reader_intervals(environ)
                made = PeriodicExportingMetricReader(
                    made, export_interval_millis=interval_ms, export_timeout_millis=timeout_ms
                )
            if not isinstance(made, MetricReader):
                raise TypeError(f"{made!r} is neither a metric exporter nor a reader")
        except Exception as exc:
            swallowed(
                f"instrument.exporter.metrics.{name}", _ExporterError(METRICS_EXPORTER, name, exc)
            )
            continue
        readers.append(made)
    return readers


class _ExporterError(Exception):
    """An exporter named by ``OTEL_<SIGNAL>_EXPORTER`` could not be made."""

    def __init__(self, variable: str, name: str, cause: BaseException) -> None:
        super().__init__(f"{variable}={name}: {type(cause).__name__}: {cause}; it is left out")


def build_from_environment(
    auto_version: str | None = None, environ: Mapping[str, str] | None = None
) -> SdkSetup:
    """Tracer and meter providers with the exporters ``OTEL_*`` names (not made global).

    Unknown or broken exporters are counted, reported as warnings and left
    out: the program is never stopped by its telemetry configuration.
    """
    env = os.environ if environ is None else environ
    extra: dict[str, str] = {}
    if auto_version:
        extra["telemetry.auto.version"] = auto_version
    resource = Resource.create(extra)
    durable = _Durable(env)
    tracer_provider = TracerProvider(resource=resource)
    for processor in _span_processors(env, durable):
        tracer_provider.add_span_processor(processor)
    readers = _metric_readers(env, durable)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    setup = SdkSetup(tracer_provider, meter_provider, durable=durable.all_durable)
    setup.register_exit()  # after the SDK's exit hooks, so that it runs before them
    return setup


def configure_from_environment(
    auto_version: str | None = None, environ: Mapping[str, str] | None = None
) -> SdkSetup:
    """:func:`build_from_environment`, with the providers set as the global ones."""
    setup = build_from_environment(auto_version, environ)
    trace.set_tracer_provider(setup.tracer_provider)
    metrics.set_meter_provider(setup.meter_provider)
    return setup
