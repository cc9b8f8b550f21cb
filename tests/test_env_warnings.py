"""Every environment variable taskmeter reads: a bad value gives one warning that names
the variable, shows its value (never a header's: it holds credentials) and says what is
used instead.

One row per variable and code path that reads it.  The last test scans ``src/`` for the
variable names it mentions, so that a new variable is added here (or to the short list of
variables with no bad value) before it ships.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskmeter import propagation, settings

SRC = Path(__file__).resolve().parents[1] / "src" / "taskmeter"
PARENT_ID = "6f1c1d0e-8a36-4c47-9b51-0d7f4b1e2a3c"
SECRET = "s3cret-token"


def _inherited() -> None:
    import os

    propagation.Inherited.from_environment(os.environ)


def _machine() -> None:
    settings.reload()
    settings.machine()


def _energy_selection() -> None:
    from taskmeter.probes.selection import selection_from_environment

    selection_from_environment()


def _energy_config() -> None:
    from taskmeter.probes.selection import energy_probes, selection_from_environment

    energy_probes(selection_from_environment(), strict=False)


def _metric_specs() -> None:
    from taskmeter.measure import MeasurementSpanProcessor

    MeasurementSpanProcessor()


def _enrich() -> None:
    from taskmeter.enrich import EnrichingSpanProcessor

    EnrichingSpanProcessor()


def _spool() -> None:
    from taskmeter.export import spool_from_environment

    assert spool_from_environment() is None


def _sender(signal: str = "traces", protocol: str | None = None) -> Callable[[], None]:
    def send() -> None:
        from taskmeter.export.config import sender_for

        sender_for(signal, protocol=protocol)

    return send


def _sdk_setup() -> None:
    from taskmeter.instrumentation.sdk import build_from_environment

    build_from_environment().shutdown()


def _batch() -> None:
    from taskmeter.instrumentation.sdk import batch_arguments

    batch_arguments()


def _durable_batch() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from taskmeter.export import DurableSpanProcessor

    DurableSpanProcessor.from_environment(InMemorySpanExporter()).shutdown()  # type: ignore[arg-type]


def _reader() -> None:
    from taskmeter.instrumentation.sdk import reader_intervals

    reader_intervals()


def _temporality() -> None:
    from taskmeter.export.exporters import temporality_from_environment

    temporality_from_environment()


def _prometheus_port() -> None:
    from taskmeter.instrumentation.sdk import _prometheus_port_unusable

    assert _prometheus_port_unusable()


@dataclass(frozen=True)
class Row:
    variable: str
    value: str
    instead: str
    """A fragment of the warning saying what applies instead."""
    read: Callable[[], None]
    path: str = ""
    shown: str | None = None
    """How the value appears in the warning (default: its repr); ``""``: must not appear."""
    env: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.variable}-{self.path}" if self.path else self.variable


_GRPC = (("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_METRICS_EXPORTER", "none"))
_HTTP_SDK = (("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_METRICS_EXPORTER", "none"))
_NO_SDK_EXPORT = (("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none"))
_HEADERS = f"Authorization=Bearer {SECRET},api-key {SECRET}"

ROWS = [
    Row("TASKMETER_MACHINE", "gpu\t01", "recording no machine label", _machine),
    Row("TASKMETER_MONITOR_INTERVAL", "soon", "using 10.0", settings.monitor_interval),
    Row("TASKMETER_ENERGY", "bogus", "using 'auto'", _energy_selection),
    Row(
        "TASKMETER_ENERGY_CONFIG",
        "/nonexistent/energy.toml",
        "no Prometheus energy queries",
        _energy_config,
    ),
    Row("TASKMETER_DISABLE_TIMER", "maybe", "using False", settings.timers_disabled),
    Row(
        "TASKMETER_METRIC_SPECS", "/nonexistent/specs.toml", "using no metric specs", _metric_specs
    ),
    Row("TASKMETER_ENRICH", "bogus", "using 'root,marked'", _enrich),
    Row("TASKMETER_CONFIGURE_SDK", "maybe", "using True", settings.configure_sdk),
    Row("TASKMETER_SPOOL_DIR", "/etc/hostname/spool", "exporting without a spool", _spool),
    Row(
        "TASKMETER_SPOOL_DIR",
        "/etc/hostname/spool",
        "exporting without a spool",
        _sdk_setup,
        path="sdk",
        env=_NO_SDK_EXPORT,
    ),
    Row("TASKMETER_SPOOL_MAX_BYTES", "lots", "using 268435456", settings.spool_max_bytes),
    Row("TASKMETER_RECORD_COMMAND", "maybe", "using False", settings.record_command),
    Row("TASKMETER_PARENT_TASK", "task-7", "have no parent", _inherited),
    Row(
        "TASKMETER_SUBTASK_DIR",
        "/nonexistent/subtasks",
        "do not reach their parent task",
        _inherited,
        env=(("TASKMETER_PARENT_TASK", PARENT_ID),),
    ),
    Row(
        "TRACEPARENT",
        "00-garbage",
        "start traces of their own",
        _inherited,
        env=(("TASKMETER_PARENT_TASK", PARENT_ID),),
    ),
    Row("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "using http/protobuf", _sender()),
    Row("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "using grpc", _sdk_setup, path="sdk"),
    Row("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "using http/protobuf", _sdk_setup, path="json"),
    Row("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", "using http/protobuf", _sender()),
    Row("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift", "using http/protobuf", _sender("metrics")),
    Row(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://127.0.0.1:99999",
        "using http://localhost:4318",
        _sender(),
        shown="http://127.0.0.1:99999",
    ),
    Row(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://127.0.0.1:99999/v1/traces",
        "using http://localhost:4318",
        _sender(),
        shown="http://127.0.0.1:99999/v1/traces",
    ),
    Row("OTEL_EXPORTER_OTLP_HEADERS", _HEADERS, "using the other 1", _sender(), shown=""),
    Row(
        "OTEL_EXPORTER_OTLP_HEADERS",
        _HEADERS,
        "using the other 1",
        _sdk_setup,
        path="grpc",
        shown="",
        env=_GRPC,
    ),
    Row(
        "OTEL_EXPORTER_OTLP_HEADERS",
        _HEADERS,
        "using the other 1",
        _sdk_setup,
        path="http",
        shown="",
        env=_HTTP_SDK,
    ),
    Row("OTEL_EXPORTER_OTLP_TRACES_HEADERS", _HEADERS, "using the other 1", _sender(), shown=""),
    Row(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        _HEADERS,
        "using the other 1",
        _sender("metrics"),
        shown="",
    ),
    Row("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "using 10 s", _sender()),
    Row("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "using 10 s", _sdk_setup, path="grpc", env=_GRPC),
    Row("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon", "using 10 s", _sender()),
    Row(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "soon",
        "using 10 s",
        _sdk_setup,
        path="grpc",
        env=_GRPC,
    ),
    Row("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "soon", "using 10 s", _sender("metrics")),
    Row("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "using none", _sender()),
    Row(
        "OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "using none", _sdk_setup, path="grpc", env=_GRPC
    ),
    Row("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "brotli", "using none", _sender()),
    Row("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "brotli", "using none", _sender("metrics")),
    Row(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "/nonexistent/ca.pem",
        "using the system's trusted certificates",
        _sender(),
    ),
    Row(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "/nonexistent/client.pem",
        "using no client certificate",
        _sender(),
    ),
    Row(
        "OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/client.key", "using no client key", _sender()
    ),
    Row(
        "OTEL_EXPORTER_OTLP_INSECURE",
        "maybe",
        "using false",
        _sender(protocol="grpc"),
        env=(("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317"),),
    ),
    *(
        row
        for signal in ("traces", "metrics")
        for row in (
            Row(
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_CERTIFICATE",
                "/nonexistent/ca.pem",
                "using the system's trusted certificates",
                _sender(signal),
            ),
            Row(
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_CLIENT_CERTIFICATE",
                "/nonexistent/client.pem",
                "using no client certificate",
                _sender(signal),
            ),
            Row(
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_CLIENT_KEY",
                "/nonexistent/client.key",
                "using no client key",
                _sender(signal),
            ),
            Row(
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_INSECURE",
                "maybe",
                "using false",
                _sender(signal, protocol="grpc"),
                env=(("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317"),),
            ),
        )
    ),
    Row(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://127.0.0.1:99999/v1/metrics",
        "using http://localhost:4318",
        _sender("metrics"),
        shown="http://127.0.0.1:99999/v1/metrics",
    ),
    Row(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://127.0.0.1:99999",
        "using http://localhost:4317",
        _sdk_setup,
        path="grpc",
        shown="http://127.0.0.1:99999",
        env=_GRPC,
    ),
    Row(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://127.0.0.1:99999",
        "using http://localhost:4318",
        _sdk_setup,
        path="http",
        shown="http://127.0.0.1:99999",
        env=_HTTP_SDK,
    ),
    # Waits too long for a thread to wait on, sizes too large for a C size: each made an
    # export thread die or an exporter be left out.
    Row("OTEL_EXPORTER_OTLP_TIMEOUT", "1e13", "using 10 s", _sender(), path="too-long"),
    Row(
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "1e10",
        "using 10 s",
        _sdk_setup,
        path="grpc-too-long",
        env=_GRPC,
    ),
    Row("OTEL_BSP_SCHEDULE_DELAY", "99999999999999", "using 5000", _batch, path="too-long"),
    Row(
        "OTEL_BSP_SCHEDULE_DELAY",
        "99999999999999",
        "using 1000",
        _durable_batch,
        path="durable-too-long",
    ),
    Row("OTEL_BSP_EXPORT_TIMEOUT", "1e13", "using 30000", _batch, path="too-long"),
    Row("OTEL_METRIC_EXPORT_INTERVAL", "1e13", "using 60000", _reader, path="too-long"),
    Row("OTEL_METRIC_EXPORT_TIMEOUT", "1e13", "using 30000", _reader, path="too-long"),
    Row("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999999999999", "using 2048", _batch, path="too-large"),
    Row(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "99999999999999999999",
        "using 2048",
        _durable_batch,
        path="durable-too-large",
    ),
    Row("OTEL_BSP_SCHEDULE_DELAY", "0", "using 5000", _batch),
    Row("OTEL_BSP_SCHEDULE_DELAY", "0", "using 1000", _durable_batch, path="durable"),
    Row("OTEL_BSP_MAX_QUEUE_SIZE", "many", "using 2048", _batch),
    Row("OTEL_BSP_MAX_QUEUE_SIZE", "many", "using 2048", _durable_batch, path="durable"),
    Row("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1", "using 512", _batch),
    Row("OTEL_BSP_EXPORT_TIMEOUT", "soon", "using 30000", _batch),
    Row("OTEL_METRIC_EXPORT_INTERVAL", "0", "using 60000", _reader),
    Row("OTEL_METRIC_EXPORT_TIMEOUT", "soon", "using 30000", _reader),
    Row(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "sometimes",
        "using cumulative",
        _temporality,
    ),
    Row(
        "OTEL_TRACES_EXPORTER",
        "zipkin2",
        "it is left out",
        _sdk_setup,
        shown="=zipkin2",
        env=(("OTEL_METRICS_EXPORTER", "none"),),
    ),
    Row(
        "OTEL_METRICS_EXPORTER",
        "zipkin2",
        "it is left out",
        _sdk_setup,
        shown="=zipkin2",
        env=(("OTEL_TRACES_EXPORTER", "none"),),
    ),
    Row("OTEL_EXPORTER_PROMETHEUS_PORT", "ninety", "using 9464", _prometheus_port),
]

NO_BAD_VALUE = {
    "LSST_UTILS_DISABLE_TIMER": "set to anything disables the timers, as in lsst.utils",
    "TRACESTATE": "passed on as it is, with the TRACEPARENT it belongs to",
    "OTEL_SDK_DISABLED": "read as the SDK reads it: only true disables",
    "OTEL_EXPORTER_PROMETHEUS_HOST": "a host name; a bind that fails is the exporter's error",
    "OTEL_SERVICE_NAME": "any text is a service name",
    "CUDA_VISIBLE_DEVICES": "read as CUDA reads it (an invalid entry ends the list)",
    "CUDA_DEVICE_ORDER": "read as CUDA reads it (anything but PCI_BUS_ID is the default)",
}
"""Variables taskmeter reads for which no value is wrong, and why."""


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_value_gives_one_warning_naming_the_variable_its_value_and_the_default(
    row: Row, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning (however often the variable is read) names the variable, shows the
    value (a header's is never shown, by taskmeter or the SDK) and what is used instead."""
    for name, value in (*row.env, (row.variable, row.value)):
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.DEBUG):
        row.read()
        row.read()
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and row.variable in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    (message,) = warnings
    assert row.instead in message, message
    shown = repr(row.value) if row.shown is None else row.shown
    if shown:
        assert shown in message, message
    else:
        everything = "\n".join(r.getMessage() for r in caplog.records)
        assert SECRET not in everything and "value not shown" in message


def _names_in_source() -> set[str]:
    pattern = re.compile(
        r"\b((?:TASKMETER|OTEL|LSST_UTILS|CUDA)_[A-Z0-9_]*[A-Z0-9]|TRACE(?:PARENT|STATE))\b"
    )
    names: set[str] = set()
    for file in SRC.rglob("*.py"):
        names.update(pattern.findall(file.read_text()))
    return names


def test_every_variable_in_the_source_has_a_row_or_a_reason() -> None:
    """A variable named in ``src/`` that has no row above (and no reason to have none)
    fails here, so that a new one gets a clear warning and a test."""
    covered = {row.variable for row in ROWS} | set(NO_BAD_VALUE)
    missing = sorted(_names_in_source() - covered - _NOT_READ)
    assert not missing, f"variables read in src/ without a row in ROWS: {missing}"


_NOT_READ = {
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",  # read by opentelemetry-instrument, named in docs
    "OTEL_LOGS_EXPORTER",  # named in docs: taskmeter leaves logs alone
    "OTEL_TRACES_SAMPLER",  # read by the SDK's own classes
    "OTEL_RESOURCE_ATTRIBUTES",  # read by the SDK's Resource
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",  # read by the SDK's SpanLimits
    "OTEL_ATTRIBUTE_COUNT_LIMIT",  # read by the SDK's SpanLimits
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",  # read by the SDK's SpanLimits
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",  # read by the SDK's SpanLimits
    "OTEL_PYTHON_CONTEXT",  # read by OpenTelemetry's context API, named in a docstring
}
"""Variables src/ names (in docstrings, messages) without reading them itself."""


def test_variables_read_at_import_warn_there_too(tmp_path: Path) -> None:
    """The parent variables are read when taskmeter is imported: a bad subtask directory is
    said there (once, on standard error), and the program runs on."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKMETER_", "OTEL_"))}
    env.update(TASKMETER_PARENT_TASK=PARENT_ID, TASKMETER_SUBTASK_DIR=str(tmp_path / "gone"))
    code = "import taskmeter\nwith taskmeter.Task('job'):\n    pass\nprint('ran')"
    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "ran", ran.stderr
    lines = [line for line in ran.stderr.splitlines() if "TASKMETER_SUBTASK_DIR" in line]
    assert len(lines) == 1 and repr(str(tmp_path / "gone")) in lines[0], ran.stderr
