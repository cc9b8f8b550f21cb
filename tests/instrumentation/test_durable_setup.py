"""Durable export on the auto-instrumentation paths: taskmeter's own SDK set-up with
``TASKMETER_SPOOL_DIR``, ``OTEL_TRACES_EXPORTER=taskmeter``, and a configurator's provider."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from taskmeter import _log
from taskmeter.export import (
    DurableMetricExporter,
    DurableSpanExporter,
    DurableSpanProcessor,
    GrpcSender,
    HttpSender,
)
from taskmeter.instrumentation.provider import wrap_provider
from taskmeter.instrumentation.sdk import SdkSetup, build_from_environment
from tests.collector import OtlpSink, wait_until
from tests.export.servers import closed_port

from .broken_exporter import install_broken_exporter
from .test_instrumentor import run_instrumented


def processors_of(setup: SdkSetup) -> tuple[Any, ...]:
    return tuple(setup.tracer_provider._active_span_processor._span_processors)


def readers_of(setup: SdkSetup) -> list[Any]:
    return list(setup.meter_provider._metric_readers)


def shut(setup: SdkSetup) -> None:
    setup.tracer_provider.shutdown()
    setup.meter_provider.shutdown()


def test_without_a_spool_the_otlp_exporters_are_the_sdks(tmp_path: Path) -> None:
    setup = build_from_environment(environ={"OTEL_METRICS_EXPORTER": "none"})
    try:
        (processor,) = processors_of(setup)
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor.span_exporter, OTLPSpanExporter)
    finally:
        shut(setup)


@pytest.mark.parametrize(
    ("protocol", "sender_type", "where"),
    [
        (
            None,
            GrpcSender,
            "http://127.0.0.1:4999",
        ),  # OTLP's default protocol is gRPC, as the SDK's
        ("http/protobuf", HttpSender, "http://127.0.0.1:4999/v1/traces"),
    ],
)
def test_a_spool_makes_the_otlp_exporters_durable(
    tmp_path: Path, protocol: str | None, sender_type: type, where: str
) -> None:
    """TASKMETER_SPOOL_DIR: spans go through DurableSpanProcessor + DurableSpanExporter and
    metrics through DurableMetricExporter, to the same endpoint with the same protocol, both
    spooling to the one directory; other exporters (console) are left as they were."""
    environ = {
        "TASKMETER_SPOOL_DIR": str(tmp_path / "spool"),
        "TASKMETER_SPOOL_MAX_BYTES": "3MiB",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4999",
        "OTEL_TRACES_EXPORTER": "otlp,console",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_BSP_SCHEDULE_DELAY": "250",
    }
    if protocol is not None:
        environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    setup = build_from_environment(environ=environ)
    try:
        durable, console = processors_of(setup)
        assert isinstance(durable, DurableSpanProcessor)
        assert isinstance(console, BatchSpanProcessor)
        assert (durable.max_queue_size, durable.max_export_batch_size) == (100, 10)
        assert durable.schedule_delay_s == 0.25
        exporter = durable.exporter
        assert isinstance(exporter, DurableSpanExporter)
        assert isinstance(exporter.delivery.sender, sender_type)
        assert exporter.delivery.sender.where == where
        assert exporter.spool is not None
        assert exporter.spool.directory == tmp_path / "spool"
        assert exporter.spool.max_bytes == 3 * 1024 * 1024
        (reader,) = readers_of(setup)
        assert isinstance(reader, PeriodicExportingMetricReader)
        metric_exporter = reader._exporter
        assert isinstance(metric_exporter, DurableMetricExporter)
        assert metric_exporter.spool is exporter.spool
    finally:
        shut(setup)


def test_the_taskmeter_exporter_goes_behind_the_durable_processor(tmp_path: Path) -> None:
    """OTEL_TRACES_EXPORTER=taskmeter in taskmeter's own set-up: DurableSpanProcessor, not the
    SDK's batch processor that drops what overflows its queue."""
    setup = build_from_environment(
        environ={"OTEL_TRACES_EXPORTER": "taskmeter", "OTEL_METRICS_EXPORTER": "taskmeter"}
    )
    try:
        (processor,) = processors_of(setup)
        assert isinstance(processor, DurableSpanProcessor)
        assert isinstance(processor.exporter, DurableSpanExporter)
        (reader,) = readers_of(setup)
        assert isinstance(reader._exporter, DurableMetricExporter)
    finally:
        shut(setup)


def test_spans_of_the_durable_set_up_wait_in_the_spool_and_arrive(tmp_path: Path) -> None:
    """With the collector away the set-up's spans land in the spool; when it answers, a flush
    delivers every one."""
    port = closed_port()
    setup = build_from_environment(
        environ={
            "TASKMETER_SPOOL_DIR": str(tmp_path),
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_METRICS_EXPORTER": "none",
        }
    )
    sink = OtlpSink()
    try:
        tracer = setup.tracer_provider.get_tracer("app")
        ids = set()
        for i in range(50):
            with tracer.start_as_current_span(f"request {i}") as span:
                ids.add(span.get_span_context().span_id)
        (processor,) = processors_of(setup)
        assert not processor.force_flush(2_000)  # the collector is away: nothing delivered
        assert list(tmp_path.glob("*.traces.otlp"))
        sink.start(port)
        assert setup.tracer_provider.force_flush(10_000)
        assert wait_until(lambda: {int(s.span_id.hex(), 16) for s in sink.spans()} >= ids, 10)
        assert not list(tmp_path.glob("*.otlp"))
    finally:
        shut(setup)
        sink.stop()


def test_an_exporter_that_cannot_be_made_is_counted_and_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An installed exporter entry point that raises: counted, logged once, the others work."""
    install_broken_exporter(tmp_path, monkeypatch)
    caplog.set_level(logging.WARNING, logger="taskmeter")
    setup = build_from_environment(
        environ={"OTEL_TRACES_EXPORTER": "broken,console", "OTEL_METRICS_EXPORTER": "none"}
    )
    try:
        (processor,) = processors_of(setup)
        assert isinstance(processor, BatchSpanProcessor)
        assert _log.error_counts["instrument.exporter.traces.broken"] == 1
        lines = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
        assert len(lines) == 1 and "the exporter's credentials are missing" in lines[0]
    finally:
        shut(setup)


def test_opentelemetry_instrument_with_a_spool_exports_durably(tmp_path: Path) -> None:
    """Under opentelemetry-instrument, TASKMETER_SPOOL_DIR alone puts the durable processor
    inside the enriching wrapper, and the durable metric exporter in the reader."""
    found = run_instrumented(
        {"TASKMETER_SPOOL_DIR": str(tmp_path), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    )
    assert found["top"] == ["EnrichingSpanProcessor"]
    assert found["wrapped"] == ["MeasurementSpanProcessor", "DurableSpanProcessor"]
    assert found["readers"] == ["PeriodicExportingMetricReader"]


def test_a_configurators_batch_processor_of_the_durable_exporter_is_replaced(
    tmp_path: Path,
) -> None:
    """A configurator made BatchSpanProcessor(DurableSpanExporter) (OTEL_TRACES_EXPORTER=
    taskmeter): wrapping puts a DurableSpanProcessor around the same exporter; undo puts the
    batch processor back, and spans the durable one still held are exported, not lost."""
    sink = OtlpSink().start()
    exporter = DurableSpanExporter(tmp_path, endpoint=sink.endpoint)
    batch = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(batch)
    try:
        wrapped = wrap_provider(provider, select="none")
        assert wrapped is not None
        (durable,) = wrapped.wrapper.processors
        assert isinstance(durable, DurableSpanProcessor) and durable.exporter is exporter
        tracer = provider.get_tracer("app")
        for i in range(5):
            with tracer.start_as_current_span(f"queued {i}"):
                pass
        wrapped.undo()
        assert provider._active_span_processor._span_processors == (batch,)
        assert sorted(s.name for s in sink.spans()) == [f"queued {i}" for i in range(5)]
        with tracer.start_as_current_span("after undo"):
            pass
        provider.shutdown()  # the batch processor exports and shuts the exporter down
        assert "after undo" in {s.name for s in sink.spans()}
    finally:
        sink.stop()


def test_a_spool_the_configured_exporters_do_not_use_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """TASKMETER_SPOOL_DIR with a configurator's OTLPSpanExporter: a warning says what to set."""
    monkeypatch.setenv("TASKMETER_SPOOL_DIR", str(tmp_path))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint="127.0.0.1:9")))
    wrapped = wrap_provider(provider, select="none")
    assert wrapped is not None
    wrapped.undo()
    provider.shutdown()
    assert "OTEL_TRACES_EXPORTER=taskmeter" in caplog.text
    assert _log.error_counts["env.TASKMETER_SPOOL_DIR.unused"] == 1


@pytest.mark.parametrize(
    ("preference", "counter", "histogram", "up_down"),
    [
        (None, "CUMULATIVE", "CUMULATIVE", "CUMULATIVE"),
        ("delta", "DELTA", "DELTA", "CUMULATIVE"),
        ("LowMemory", "DELTA", "DELTA", "CUMULATIVE"),
        ("sideways", "CUMULATIVE", "CUMULATIVE", "CUMULATIVE"),
    ],
)
def test_the_durable_metric_exporter_honours_the_temporality_preference(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    preference: str | None,
    counter: str,
    histogram: str,
    up_down: str,
) -> None:
    """OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the OTLP exporters read it."""
    if preference is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    exporter = DurableMetricExporter(tmp_path, endpoint="http://127.0.0.1:9", replay=False)
    exported: list[Any] = []
    monkeypatch.setattr(exporter, "export", lambda data, **kwargs: exported.append(data))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_counter("counter").add(1)
    meter.create_histogram("histogram").record(1.0)
    meter.create_up_down_counter("up_down").add(1)
    reader.collect()
    temporality = {
        metric.name: metric.data.aggregation_temporality.name
        for resource in exported[0].resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert temporality == {"counter": counter, "histogram": histogram, "up_down": up_down}
    expected_errors = 1 if preference == "sideways" else 0
    key = "env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    assert _log.error_counts[key] == expected_errors
    provider.shutdown()


def test_bad_batch_variables_are_counted_and_defaults_used(tmp_path: Path) -> None:
    exporter = DurableSpanExporter(tmp_path, endpoint="http://127.0.0.1:9", replay=False)
    processor = DurableSpanProcessor.from_environment(
        exporter,
        {
            "OTEL_BSP_MAX_QUEUE_SIZE": "lots",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096",
            "OTEL_BSP_SCHEDULE_DELAY": "-5",
        },
    )
    try:
        assert processor.max_queue_size == 2048
        assert processor.max_export_batch_size == 2048  # no larger than the queue
        assert processor.schedule_delay_s == 1.0
        for name in ("MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE", "SCHEDULE_DELAY"):
            assert _log.error_counts[f"env.OTEL_BSP_{name}"] == 1
    finally:
        processor.shutdown()
