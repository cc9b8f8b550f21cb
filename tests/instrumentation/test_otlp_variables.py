"""The exporters taskmeter sets up under ``opentelemetry-instrument`` survive the
variables the SDK's own classes cannot use.

The SDK's gRPC exporters raise when made with ``OTEL_EXPORTER_OTLP_COMPRESSION=none``
(a value the specification defines) or a timeout that is not a number, and its
``BatchSpanProcessor`` raises on ``OTEL_BSP_*`` sizes it parses but refuses (a delay
of 0, a batch larger than the queue); an exporter that cannot be set up exports
nothing.  These tests run a program as a user would,
against a real collector, and read back what reached it.
"""

from __future__ import annotations

import logging
import os

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from taskmeter import _log
from taskmeter.instrumentation.otlp_grpc import grpc_exporter_arguments
from taskmeter.instrumentation.sdk import (
    batch_arguments,
    build_from_environment,
    reader_intervals,
)
from tests.collector import CollectorUnderTest, wait_until

from .runner import run_instrumented_program

PROGRAM = """
import json
from taskmeter import Task
with Task("compressed job"):
    sum(range(10000))
print(json.dumps({"ok": True}))
"""


@pytest.mark.parametrize(
    ("variable", "value", "warned"),
    [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none", False),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP", False),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", True),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", True),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon", True),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "soon", True),
        ("OTEL_BSP_SCHEDULE_DELAY", "0", True),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", True),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", True),
        # Longer than a thread can wait (the export threads died), larger than a C size
        # (the exporter was left out), or a gRPC deadline past any clock (sends failed).
        ("OTEL_BSP_SCHEDULE_DELAY", "99999999999999", True),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999999999999", True),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1e13", True),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1e10", True),
    ],
)
def test_spans_and_metrics_reach_the_collector_whatever_the_otlp_variables(
    rotel_collector: CollectorUnderTest, variable: str, value: str, warned: bool
) -> None:
    """A spec value (none, any case) is used; a malformed one is said once, naming the
    variable, and the default applies: the task's span and metrics arrive either way."""
    ran = run_instrumented_program(
        ["-c", PROGRAM],
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.grpc_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "otlp-variables",
            variable: value,
        },
    )
    sink = rotel_collector.sink
    arrived = wait_until(
        lambda: (
            bool(sink.spans("compressed job"))
            and bool(sink.metric_points("taskmeter.task.duration"))
        ),
        10.0,
    )
    assert arrived, f"nothing arrived; program stderr: {ran.stderr}"
    assert "OTEL_TRACES_EXPORTER" not in ran.stderr
    assert "OTEL_METRICS_EXPORTER" not in ran.stderr
    if warned:
        lines = [line for line in ran.stderr.splitlines() if variable in line]
        assert len(lines) == 1, ran.stderr
        assert value in lines[0] and "using" in lines[0]
    else:
        assert variable not in ran.stderr


def test_signal_timeout_that_is_no_number_is_named_and_both_signals_still_export(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=soon: the SDK's own exporter (which converts that
    variable whatever it is given) is made all the same, with the default timeout; one
    warning names the variable and its value, and the variable is left in the environment."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(ValueError):
        OTLPSpanExporter()
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        setup = build_from_environment()
    try:
        (processor,) = setup.tracer_provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter  # type: ignore[attr-defined]
        assert isinstance(exporter, OTLPSpanExporter)
        assert exporter._timeout == 10.0
        readers = setup.meter_provider._metric_readers
        assert [type(r._exporter) for r in readers] == [OTLPMetricExporter]  # type: ignore[attr-defined]
    finally:
        setup.shutdown()
    messages = [r.getMessage() for r in caplog.records]
    named = [m for m in messages if "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" in m]
    assert len(named) == 1, messages
    assert "'soon'" in named[0] and "using 10 s" in named[0]
    assert not any("OTEL_TRACES_EXPORTER" in m for m in messages), messages
    assert _log.error_counts["env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] == 1
    assert os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] == "soon"


def test_grpc_arguments_follow_the_specification_values() -> None:
    """none / gzip / deflate in any case, the signal's variable first; seconds as the SDK
    reads them; nothing passed when nothing is set."""
    assert grpc_exporter_arguments("traces", {}) == {}
    env = {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": " Deflate ",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
    }
    assert grpc_exporter_arguments("metrics", env) == {
        "timeout": 2.5,
        "compression": grpc.Compression.Deflate,
    }
    assert grpc_exporter_arguments("traces", env) == {
        "timeout": 2.5,
        "compression": grpc.Compression.Gzip,
    }
    env = {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-1", "OTEL_EXPORTER_OTLP_TIMEOUT": "3"}
    assert grpc_exporter_arguments("traces", env) == {"timeout": 10.0}
    assert grpc_exporter_arguments("metrics", env) == {"timeout": 3.0}
    env = {"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_TIMEOUT": "3"}
    assert grpc_exporter_arguments("metrics", env) == {"timeout": 10.0}


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_grpc_timeout_and_compression_variables_are_read_as_unset(
    blank: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty signal variable leaves the general one in force (it gave 10 s and no
    compression, with a warning, instead of OTEL_EXPORTER_OTLP_TIMEOUT=7 and gzip); an
    empty one alone is the default, quietly."""
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": blank,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "7",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": blank,
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        assert grpc_exporter_arguments("traces", env) == {
            "timeout": 7.0,
            "compression": grpc.Compression.Gzip,
        }
        env = {"OTEL_EXPORTER_OTLP_TIMEOUT": blank, "OTEL_EXPORTER_OTLP_COMPRESSION": blank}
        assert grpc_exporter_arguments("traces", env) == {
            "timeout": 10.0,
            "compression": grpc.Compression.NoCompression,
        }
    assert "OTEL_EXPORTER_OTLP" not in caplog.text


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"]
)
def test_the_sdk_s_grpc_exporter_is_made_beside_an_empty_signal_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's exporter refuses an empty signal variable; taskmeter makes it with the
    general variable's value, and says nothing."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv(variable, "")
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        setup = build_from_environment()
    try:
        (processor,) = setup.tracer_provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter
        assert isinstance(exporter, OTLPSpanExporter)
        assert exporter._timeout == 7.0
        assert exporter._compression == grpc.Compression.Gzip
        assert variable not in caplog.text
    finally:
        setup.shutdown()


def test_the_exporter_made_with_those_arguments_is_the_sdk_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With OTEL_EXPORTER_OTLP_COMPRESSION=none the SDK's own gRPC exporter is behind the
    batch processor (the very class that raises when made from that variable alone)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with pytest.raises(Exception, match="none"):
        OTLPSpanExporter()
    setup = build_from_environment()
    try:
        (processor,) = setup.tracer_provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor._batch_processor._exporter, OTLPSpanExporter)
    finally:
        setup.shutdown()


def test_batch_sizes_are_checked_as_the_sdk_would_and_default_when_refused() -> None:
    """Values the SDK accepts pass through; refused ones give the SDK's defaults."""
    assert batch_arguments({}) == {
        "max_queue_size": 2048,
        "max_export_batch_size": 512,
        "schedule_delay_millis": 5000,
        "export_timeout_millis": 30000,
    }
    env = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "50",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_EXPORT_TIMEOUT": "1000",
    }
    assert batch_arguments(env) == {
        "max_queue_size": 100,
        "max_export_batch_size": 50,
        "schedule_delay_millis": 200,
        "export_timeout_millis": 1000,
    }
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "-1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"}
    assert batch_arguments(env)["max_queue_size"] == 2048
    assert batch_arguments(env)["max_export_batch_size"] == 2048
    assert _log.error_counts["env.OTEL_BSP_MAX_QUEUE_SIZE"] == 2


def test_metric_reader_intervals_default_when_the_sdk_would_refuse_them() -> None:
    """A positive interval and timeout pass through; 0, negative or no number: defaults."""
    assert reader_intervals({}) == (60000.0, 30000.0)
    env = {"OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_METRIC_EXPORT_TIMEOUT": "250.5"}
    assert reader_intervals(env) == (500.0, 250.5)
    env = {"OTEL_METRIC_EXPORT_INTERVAL": "0", "OTEL_METRIC_EXPORT_TIMEOUT": "soon"}
    assert reader_intervals(env) == (60000.0, 30000.0)
    assert _log.error_counts["env.OTEL_METRIC_EXPORT_INTERVAL"] == 1
    assert _log.error_counts["env.OTEL_METRIC_EXPORT_TIMEOUT"] == 1


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_headers_variable_with_a_malformed_entry_still_sends_the_others(
    protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS with an entry that is not name=value: the SDK's exporter
    gets the usable headers (the SDK, left to read the variable, would log the whole value,
    credentials and all), and the variable is left in the environment."""
    headers = "Authorization=Bearer s3cret,api-token s3cret-too"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", headers)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with caplog.at_level(logging.DEBUG):
        setup = build_from_environment()
    try:
        (processor,) = setup.tracer_provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter  # type: ignore[attr-defined]
        sent = dict(exporter._headers if protocol == "grpc" else exporter._client._headers)
    finally:
        setup.shutdown()
    assert sent.get("authorization") == "Bearer s3cret"
    assert set(sent) & {"api-token", "api-token s3cret-too"} == set()
    assert os.environ["OTEL_EXPORTER_OTLP_HEADERS"] == headers
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


def test_prometheus_port_that_is_no_number_serves_on_the_default_port() -> None:
    """OTEL_EXPORTER_PROMETHEUS_PORT=ninety: the SDK's Prometheus reader (which raises on it,
    and then serves nothing) is made with the default port 9464, where the task's metrics
    are scraped; one warning names the variable and its value."""
    program = """
import json, time, urllib.request
from taskmeter import Task
with Task("scraped job"):
    sum(range(10000))
body = ""
for _ in range(50):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=2).read().decode()
    except OSError:
        time.sleep(0.1)
        continue
    if "taskmeter" in body:
        break
    time.sleep(0.1)
print(json.dumps({"scraped": "taskmeter_task_duration" in body}))
"""
    ran = run_instrumented_program(
        ["-c", program],
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "ninety",
            "no_proxy": "127.0.0.1",
            "NO_PROXY": "127.0.0.1",
        },
    )
    assert ran.found == {"scraped": True}, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if "OTEL_EXPORTER_PROMETHEUS_PORT" in line]
    assert len(lines) == 1 and "'ninety'" in lines[0] and "using 9464" in lines[0], ran.stderr


def test_the_sdk_set_up_puts_the_instrumentation_version_on_the_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The providers taskmeter sets up under opentelemetry-instrument carry
    telemetry.auto.version, as the distro's set-up does."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    setup = build_from_environment("0.66b2")
    try:
        assert setup.tracer_provider.resource.attributes["telemetry.auto.version"] == "0.66b2"
    finally:
        setup.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_blank_signal_variables_leave_the_general_ones_in_force_for_the_sdk_s_exporters(
    protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A blank OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or _COMPRESSION, _CERTIFICATE) is
    unset: the exporter sends to the general endpoint, compressed as the general
    variable says; it was made with an endpoint of spaces (every export failed, the
    spans were lost), and the certificate file named by spaces was looked for."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4999")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    for setting in ("ENDPOINT", "COMPRESSION", "CERTIFICATE", "CLIENT_KEY", "HEADERS"):
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_TRACES_{setting}", "  ")
    with caplog.at_level(logging.WARNING):
        setup = build_from_environment()
    try:
        (processor,) = setup.tracer_provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter
        if protocol == "grpc":
            assert isinstance(exporter, OTLPSpanExporter)
            assert exporter._endpoint == "127.0.0.1:4999"
            assert exporter._compression == grpc.Compression.Gzip
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpSpanExporter,
            )

            assert isinstance(exporter, HttpSpanExporter)
            assert exporter._endpoint == "https://127.0.0.1:4999/v1/traces"
            assert exporter._compression.value == "gzip"
        assert "FileNotFoundError" not in caplog.text and "  " not in caplog.text
    finally:
        setup.shutdown()
