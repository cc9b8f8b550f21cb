"""The taskmeter instrumentor: what instrument() installs and uninstrument() takes out."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskmeter
from taskmeter import _unrecorded
from taskmeter import attributes as attr
from taskmeter.enrich import EnrichingSpanProcessor
from taskmeter.figures import Figures
from taskmeter.instrumentation import TaskmeterInstrumentor
from taskmeter.instrumentation.sdk import exporter_names
from taskmeter.measure import MeasurementSpanProcessor
from taskmeter.probes import SampledProbe

from ..helpers import burn_cpu
from .runner import run_instrumented_program


def test_instrument_wraps_existing_processors_and_uninstrument_restores_them() -> None:
    """Registered exporters receive enriched spans; after undo the provider is as before,
    and the Measurement processor no longer counts tasks whose spans are not recorded."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    exporting = SimpleSpanProcessor(exporter)
    provider.add_span_processor(exporting)
    before = provider._active_span_processor._span_processors
    reader = InMemoryMetricReader()
    instrumentor = TaskmeterInstrumentor()
    instrumentor.instrument(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        (wrapper,) = provider._active_span_processor._span_processors
        assert isinstance(wrapper, EnrichingSpanProcessor)
        assert exporting in wrapper.processors
        (measurement,) = [p for p in wrapper.processors if isinstance(p, MeasurementSpanProcessor)]
        assert any(ref() is measurement for ref in _unrecorded.sinks)
        with provider.get_tracer("app").start_as_current_span("request"):
            burn_cpu(0.05)
        later = SimpleSpanProcessor(InMemorySpanExporter())
        provider.add_span_processor(later)
    finally:
        instrumentor.uninstrument()
    assert provider._active_span_processor._span_processors == (*before, later)
    assert all(ref() is not measurement for ref in _unrecorded.sinks)
    (enriched,) = exporter.get_finished_spans()
    assert (enriched.attributes or {})[attr.CPU_TIME] >= 0.05
    exporter.clear()
    with provider.get_tracer("app").start_as_current_span("request"):
        pass
    (plain,) = exporter.get_finished_spans()
    assert attr.CPU_TIME not in (plain.attributes or {})


def test_uninstrument_releases_the_readings_of_spans_still_open() -> None:
    """A selected span open when the wrapper is taken out ends without it: the probes
    it began (a sampled probe keeps the monitor sampling while it is open) are ended."""
    sampled = SampledCpuProbe()
    taskmeter.set_probes([sampled])
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    instrumentor = TaskmeterInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    try:
        span = provider.get_tracer("app").start_span("request")
        assert sampled.open_tasks == 1
    finally:
        instrumentor.uninstrument()
    assert sampled.open_tasks == 0
    span.end()
    assert sampled.open_tasks == 0


class SampledCpuProbe(SampledProbe):
    """A probe that asks for periodic samples while a span or task is open."""

    name = "sampled-cpu"
    sample_interval = 60.0

    def begin(self, *, reset_peak: bool = True) -> int:
        return self._task_opened()

    def read(self, state: int, figures: Figures) -> None:
        figures.duration_s = 0.0

    def end(self, state: int) -> None:
        self._task_closed(state)


def test_exporter_names_follow_the_sdk_rules() -> None:
    assert exporter_names("traces", {}) == ["otlp_proto_grpc"]
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "otlp,console"}
    assert exporter_names("metrics", env) == ["otlp_proto_http", "console"]
    env = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    assert exporter_names("traces", env) == ["otlp_proto_grpc"]
    assert exporter_names("traces", {"OTEL_TRACES_EXPORTER": "none"}) == []
    # A protocol no SDK exporter speaks: named once, and the nearest one is used.
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    assert exporter_names("metrics", env) == ["otlp_proto_http"]
    env = {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "thrift"}
    assert exporter_names("metrics", env) == ["otlp_proto_grpc"]


def test_exporter_names_and_protocols_are_read_whatever_their_case() -> None:
    """A protocol written in capitals or with spaces is the protocol, not a reason to
    export nothing (exporter names were already read that way)."""
    env = {
        "OTEL_TRACES_EXPORTER": " OTLP , Console ",
        "OTEL_EXPORTER_OTLP_PROTOCOL": " HTTP/Protobuf ",
    }
    assert exporter_names("traces", env) == ["otlp_proto_http", "console"]
    env = {
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "GRPC",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    assert exporter_names("metrics", env) == ["otlp_proto_grpc"]


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_exporter_and_protocol_variables_are_read_as_unset(
    blank: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As the specification asks, an empty value is an unset one: OTEL_TRACES_EXPORTER of
    spaces exported nothing at all, and a blank signal protocol hid the general one
    (grpc, with a warning, instead of OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)."""
    assert exporter_names("traces", {"OTEL_TRACES_EXPORTER": blank}) == ["otlp_proto_grpc"]
    assert exporter_names("metrics", {"OTEL_METRICS_EXPORTER": blank}) == ["otlp_proto_grpc"]
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": blank,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        assert exporter_names("traces", env) == ["otlp_proto_http"]
        assert exporter_names("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": blank}) == [
            "otlp_proto_grpc"
        ]
    assert "PROTOCOL" not in caplog.text


PROBE = """
import json
from opentelemetry import metrics, trace
provider = trace.get_tracer_provider()
processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
wrapped = [type(p).__name__ for w in processors for p in getattr(w, "processors", ())]
readers = [type(r).__name__ for r in getattr(metrics.get_meter_provider(), "_metric_readers", ())]
print(json.dumps({"provider": type(provider).__name__,
                  "top": [type(p).__name__ for p in processors],
                  "wrapped": wrapped, "readers": readers,
                  "service": getattr(getattr(provider, "resource", None), "attributes", {})
                             .get("service.name")}))
"""


def run_instrumented(env: dict[str, str]) -> dict[str, object]:
    ran = run_instrumented_program(["-c", PROBE], env)
    return {**ran.found, "stderr": ran.stderr}


QUIET = {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}


def test_opentelemetry_instrument_configures_the_sdk_when_nothing_else_did() -> None:
    """Without a distro, taskmeter sets up the providers from OTEL_* and wraps the exporter."""
    found = run_instrumented({**QUIET, "OTEL_SERVICE_NAME": "probe-app"})
    assert found["provider"] == "TracerProvider"
    assert found["top"] == ["EnrichingSpanProcessor"]
    assert found["wrapped"] == ["MeasurementSpanProcessor", "BatchSpanProcessor"]
    assert found["readers"] == ["PeriodicExportingMetricReader"]
    assert found["service"] == "probe-app"


def test_disabling_the_taskmeter_instrumentation_leaves_everything_off() -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=taskmeter: no SDK, no wrapper."""
    found = run_instrumented(
        {**QUIET, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "fastapi,taskmeter"}
    )
    assert found["provider"] == "ProxyTracerProvider"
    assert found["top"] == []


def test_other_instrumentations_disabled_keep_taskmeter_on() -> None:
    found = run_instrumented({**QUIET, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "fastapi"})
    assert found["top"] == ["EnrichingSpanProcessor"]


def test_configure_sdk_false_leaves_the_sdk_to_the_application() -> None:
    found = run_instrumented({**QUIET, "TASKMETER_CONFIGURE_SDK": "false"})
    assert found["provider"] == "ProxyTracerProvider"
    assert "TASKMETER_CONFIGURE_SDK is false" in str(found["stderr"])


def test_otel_sdk_disabled_configures_nothing() -> None:
    found = run_instrumented({**QUIET, "OTEL_SDK_DISABLED": "true"})
    assert found["provider"] == "ProxyTracerProvider"


def test_unknown_exporter_is_a_warning_not_a_crash() -> None:
    """A misspelt exporter name is reported; the program runs and the rest is configured."""
    found = run_instrumented({"OTEL_TRACES_EXPORTER": "jaegr", "OTEL_METRICS_EXPORTER": "none"})
    assert found["provider"] == "TracerProvider"
    assert found["wrapped"] == ["MeasurementSpanProcessor"]
    assert "no traces exporter named 'jaegr'" in str(found["stderr"])
