"""OTEL_TRACES_EXPORTER=taskmeter (and METRICS) select the durable exporters."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmeter.export import DurableMetricExporter, DurableSpanExporter


def test_the_sdk_configurator_finds_the_durable_exporters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's own lookup (what opentelemetry-instrument does with the variables) returns
    them, and built without arguments they take the spool from TASKMETER_SPOOL_DIR."""
    from opentelemetry.sdk._configuration import _import_exporters

    traces, metrics, _ = _import_exporters(["taskmeter"], ["taskmeter"], [])
    assert traces == {"taskmeter": DurableSpanExporter}
    assert metrics == {"taskmeter": DurableMetricExporter}
    monkeypatch.setenv("TASKMETER_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    exporter = traces["taskmeter"]()
    assert exporter.spool is not None and exporter.spool.directory == tmp_path
    exporter.shutdown()
