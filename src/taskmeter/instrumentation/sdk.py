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

Logs are left alone (``OTEL_LOGS_EXPORTER`` needs the distro).  Only public
SDK classes and the exporters' entry points are used.
"""

from __future__ import annotations

import os
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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .._log import warn_once

__all__ = ["SdkSetup", "configure_from_environment", "exporter_names"]

TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
_SIGNAL_PROTOCOL = {
    "traces": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
}
_ENTRY_POINT_GROUP = {
    "traces": "opentelemetry_traces_exporter",
    "metrics": "opentelemetry_metrics_exporter",
}
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


class SdkSetup:
    """The providers taskmeter configured (to flush or shut down)."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider


def exporter_names(signal: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The entry-point names of the exporters ``OTEL_<SIGNAL>_EXPORTER`` asks for (default otlp).

    ``otlp`` becomes ``otlp_proto_grpc`` or ``otlp_proto_http`` by the OTLP
    protocol variables; ``none`` gives no exporter.  Raises ``ValueError``
    for an unsupported OTLP protocol.
    """
    env = os.environ if environ is None else environ
    variable = TRACES_EXPORTER if signal == "traces" else METRICS_EXPORTER
    text = (env.get(variable) or "otlp").strip()
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name or name == "none":
            continue
        if name == "otlp":
            protocol = (
                env.get(_SIGNAL_PROTOCOL[signal]) or env.get(OTLP_PROTOCOL) or "grpc"
            ).strip()
            mapped = _OTLP_BY_PROTOCOL.get(protocol)
            if mapped is None:
                raise ValueError(
                    f"unsupported OTLP protocol {protocol!r} "
                    f"(expected one of {', '.join(_OTLP_BY_PROTOCOL)})"
                )
            name = mapped
        if name not in names:
            names.append(name)
    return names


def _load(signal: str, name: str) -> Any:
    found = entry_points(group=_ENTRY_POINT_GROUP[signal], name=name)
    for entry_point in found:
        return entry_point.load()
    raise LookupError(
        f"no {signal} exporter named {name!r} is installed "
        f"(entry point group {_ENTRY_POINT_GROUP[signal]})"
    )


def _span_exporters(environ: Mapping[str, str] | None) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _names_or_warn("traces", environ):
        try:
            exporter = _load("traces", name)()
        except Exception as exc:
            warn_once(f"sdk.traces.{name}", "%s=%s: %s", TRACES_EXPORTER, name, exc)
            continue
        exporters.append(exporter)
    return exporters


def _metric_readers(environ: Mapping[str, str] | None) -> list[MetricReader]:
    readers: list[MetricReader] = []
    for name in _names_or_warn("metrics", environ):
        try:
            made = _load("metrics", name)()
            if isinstance(made, MetricExporter):
                made = PeriodicExportingMetricReader(made)
            if not isinstance(made, MetricReader):
                raise TypeError(f"{made!r} is neither a metric exporter nor a reader")
        except Exception as exc:
            warn_once(f"sdk.metrics.{name}", "%s=%s: %s", METRICS_EXPORTER, name, exc)
            continue
        readers.append(made)
    return readers


def _names_or_warn(signal: str, environ: Mapping[str, str] | None) -> list[str]:
    try:
        return exporter_names(signal, environ)
    except ValueError as exc:
        warn_once(f"sdk.{signal}.protocol", "no %s exported: %s", signal, exc)
        return []


def configure_from_environment(
    auto_version: str | None = None, environ: Mapping[str, str] | None = None
) -> SdkSetup:
    """Create tracer and meter providers with the exporters ``OTEL_*`` names; set them global.

    Unknown or broken exporters are reported as warnings and left out: the
    program is never stopped by its telemetry configuration.
    """
    extra: dict[str, str] = {}
    if auto_version:
        extra["telemetry.auto.version"] = auto_version
    resource = Resource.create(extra)
    tracer_provider = TracerProvider(resource=resource)
    for exporter in _span_exporters(environ):
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(resource=resource, metric_readers=_metric_readers(environ))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return SdkSetup(tracer_provider, meter_provider)
