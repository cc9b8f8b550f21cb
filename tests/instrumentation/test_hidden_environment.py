"""hidden_from_environment hides variables from Python's view only, for the block."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from taskmeter.instrumentation._hidden import hidden_from_environment


def test_hidden_from_python_and_the_sdk_modules_but_not_from_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside the block ``os.environ``, ``os.getenv`` and an SDK module's own ``environ``
    lack the variable, while the process environment keeps it (a child started in the
    block gets it); writes in the block reach the real environment; all is as before
    after it."""
    from opentelemetry.exporter.otlp.proto.grpc import trace_exporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "abc")
    real = os.environ
    with hidden_from_environment("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "NOT_SET_ANYWHERE"):
        assert "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" not in os.environ
        assert os.getenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") is None
        assert trace_exporter.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") is None
        assert "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" not in dict(os.environ)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os; print(os.environ['OTEL_EXPORTER_OTLP_TRACES_TIMEOUT'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == "abc"
        os.environ["TASKMETER_TEST_WRITTEN_IN_BLOCK"] = "kept"
    monkeypatch.delenv("TASKMETER_TEST_WRITTEN_IN_BLOCK")  # also proves it reached the real one
    assert os.environ is real and trace_exporter.environ is real
    assert os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] == "abc"


def test_the_sdk_exporter_is_made_with_a_bad_per_signal_timeout_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's gRPC span exporter, which converts the per-signal timeout itself and
    raises on ``abc``, is made inside the block with the timeout given instead."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "abc")
    with pytest.raises(ValueError):
        OTLPSpanExporter()
    with hidden_from_environment("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"):
        exporter = OTLPSpanExporter(timeout=7.0)
    try:
        assert exporter._timeout == 7.0
    finally:
        exporter.shutdown()
