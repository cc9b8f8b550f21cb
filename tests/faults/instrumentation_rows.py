"""Fault rows of auto-instrumentation (:class:`~taskmeter.instrumentation.TaskmeterInstrumentor`
and the SDK set-up it makes from ``OTEL_*``).

The instrumentor is given the tracer provider explicitly (the global one can be set only once
per process); the application serves one ``request`` (a local root, enriched by default) in
which it runs its task.  An in-memory exporter registered before instrumentation is wrapped
with the others, so it shows what an exporter received.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskmeter
from taskmeter import Task, _log
from taskmeter import attributes as attr
from taskmeter.instrumentation import TaskmeterInstrumentor
from taskmeter.instrumentation.sdk import build_from_environment
from tests.export.servers import closed_port
from tests.instrumentation.broken_exporter import install_broken_exporter

from .catalogue import Outcome, application, cpu_survives, not_applicable, scenario
from .worker_rows import spooled_span_names

COMPONENT = "instrumentation"


def _instrumented_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: TracerProvider,
    env: Mapping[str, str] = {},
) -> Outcome:
    """Instrument ``provider`` (with ``env`` set), serve one request, take everything out."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = TaskmeterInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=meter_provider)
    taskmeter.use_tracer_provider(provider)
    path = tmp_path / "app.json"
    try:
        tracer = provider.get_tracer("web")
        with tracer.start_as_current_span("request"), Task("app", file=path) as task:
            result = application()
    finally:
        instrumentor.uninstrument()
        taskmeter.use_tracer_provider(None)
    provider.force_flush()
    outcome = Outcome(result, task, list(exporter.get_finished_spans()), path)
    data = reader.get_metrics_data()
    outcome.extra["metrics"] = {
        metric.name
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    provider.shutdown()
    meter_provider.shutdown()
    return outcome


def _enriched_and_measured(outcome: Outcome) -> None:
    cpu_survives(outcome)
    request = outcome.span("request").attributes or {}
    assert request[attr.CPU_TIME] >= outcome.task.cpu_time  # type: ignore[operator]
    assert "taskmeter.task.duration" in outcome.extra["metrics"]


def _garbage_reported(outcome: Outcome) -> None:
    _enriched_and_measured(outcome)
    # Exported durably all the same: the spool took the spans (the collector is away).
    assert {"request", "app"} <= set(outcome.extra["spooled"])
    for name in ("OTEL_BSP_MAX_QUEUE_SIZE", "TASKMETER_SPOOL_MAX_BYTES"):
        assert _log.error_counts[f"env.{name}"] >= 1, name


@scenario(COMPONENT, "garbage", counted="env.", check=_garbage_reported, logged="TASKMETER_ENRICH=")
def _bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    spool = tmp_path / "spool"
    setup = build_from_environment(
        environ={
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BSP_MAX_QUEUE_SIZE": "many",
            "TASKMETER_SPOOL_DIR": str(spool),
            "TASKMETER_SPOOL_MAX_BYTES": "lots",
        }
    )
    env = {"TASKMETER_ENRICH": "kind:sideways", "TASKMETER_MONITOR_INTERVAL": "-1"}
    outcome = _instrumented_run(tmp_path, monkeypatch, setup.tracer_provider, env)
    setup.meter_provider.shutdown()
    outcome.extra["spooled"] = spooled_span_names(spool)
    return outcome


def _the_others_export(outcome: Outcome) -> None:
    _enriched_and_measured(outcome)
    assert {"request", "app"} <= set(outcome.extra["spooled"])


@scenario(
    COMPONENT,
    "error",
    counted="instrument.exporter.traces.broken",
    check=_the_others_export,
)
def _exporter_entry_point_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    install_broken_exporter(tmp_path, monkeypatch)
    spool = tmp_path / "spool"
    # The taskmeter exporter, made by its entry point, reads the process's environment.
    monkeypatch.setenv("TASKMETER_SPOOL_DIR", str(spool))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    setup = build_from_environment(
        environ={"OTEL_TRACES_EXPORTER": "broken,taskmeter", "OTEL_METRICS_EXPORTER": "none"}
    )
    outcome = _instrumented_run(tmp_path, monkeypatch, setup.tracer_provider)
    setup.meter_provider.shutdown()
    outcome.extra["spooled"] = spooled_span_names(spool)
    return outcome


class _OtherFanOut(SpanProcessor):
    """The active processor of a provider built differently (another SDK, a vendor's): it
    takes processors, but not in the SDK's private tuple taskmeter wraps."""

    def __init__(self) -> None:
        self.processors: list[SpanProcessor] = []

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.processors.append(processor)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.processors)


def _measured_not_enriched(outcome: Outcome) -> None:
    cpu_survives(outcome)  # the task's own span carries its figures
    assert attr.CPU_TIME not in (outcome.span("request").attributes or {})
    assert "taskmeter.task.duration" in outcome.extra["metrics"]


@scenario(COMPONENT, "refused", counted="instrument.provider", check=_measured_not_enriched)
def _provider_of_another_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    provider = TracerProvider(active_span_processor=_OtherFanOut())  # type: ignore[arg-type]
    return _instrumented_run(tmp_path, monkeypatch, provider)


@scenario(
    COMPONENT,
    "unreadable",
    counted="env.TASKMETER_METRIC_SPECS",
    check=_enriched_and_measured,
    logged="TASKMETER_METRIC_SPECS=",
)
def _metric_specs_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    env = {"TASKMETER_METRIC_SPECS": str(tmp_path / "no-such-specs.toml")}
    return _instrumented_run(tmp_path, monkeypatch, TracerProvider(), env)


not_applicable(
    COMPONENT,
    "the instrumentor runs once, at start-up, and waits on nothing: the exporters it "
    "configures are the span-exporter and metric-exporter rows",
    "timeout",
)
not_applicable(
    COMPONENT,
    "the instrumentor writes nothing itself; the spool it configures is the span-exporter row",
    "disk-full",
    "permission",
)
