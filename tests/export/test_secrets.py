"""OTLP headers and credentials never appear in anything taskmeter logs or prints."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskmeter.export import DurableSpanExporter, DurableSpanProcessor
from tests.cli.runner import clean_environment, taskmeter

from .servers import Answer, closed_port, scripted_endpoint, silent_endpoint

SECRET = "s3cr3t-T0ken-4f9a"
PASSWORD = "pa55-W0rd-77c1"


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The text of every record, with its traceback, at every level."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def export_some_spans(exporter: DurableSpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(exporter))
    tracer = provider.get_tracer("secrets")
    for index in range(5):
        with tracer.start_as_current_span(f"span {index}"):
            pass
    provider.shutdown()


@pytest.mark.parametrize(
    "failure", ["refused", "401", "403", "503", "400", "timeout", "credentials in the URL"]
)
def test_failed_exports_never_log_the_headers(
    failure: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS=authorization=<secret>, and the export fails in each way:
    neither the log records (tracebacks included, debug level included) nor the terminal
    show the secret."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {SECRET}")
    status = {"401": 401, "403": 403, "503": 503, "400": 400}.get(failure, 200)
    with scripted_endpoint(*[Answer(status, reason=f"echo {SECRET}")] * 20) as endpoint:
        if failure == "refused":
            url = f"http://127.0.0.1:{closed_port()}"
        elif failure == "credentials in the URL":
            url = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}/?token={SECRET}"
        else:
            url = endpoint.url
        if failure == "timeout":
            with silent_endpoint() as silent:
                export_some_spans(DurableSpanExporter(tmp_path, endpoint=silent.url, timeout_s=0.3))
        else:
            export_some_spans(DurableSpanExporter(tmp_path, endpoint=url, timeout_s=1.0))
        if status != 200:
            assert endpoint.requests, "the failure was really exercised"
            assert endpoint.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    text = everything_logged(caplog)
    assert text, "something was logged about the failure"
    out, err = capfd.readouterr()
    for shown in (text, out, err):
        assert SECRET not in shown
        assert PASSWORD not in shown
    for spooled in tmp_path.glob("*.otlp"):
        assert SECRET.encode() not in spooled.read_bytes()


def test_taskmeter_run_never_prints_the_headers(tmp_path: Path) -> None:
    """`taskmeter run` exporting to a refusing endpoint (401, and an unreachable one with
    credentials in its URL): its message names the endpoint, not the secret."""
    with scripted_endpoint(Answer(401, reason=f"echo {SECRET}")) as endpoint:
        env = clean_environment(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.url,
                "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET}",
            }
        )
        result = taskmeter("run", "--", "true", env=env)
    assert endpoint.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "HTTP 401" in result.stderr
    assert SECRET not in result.stderr + result.stdout

    env = clean_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://bob:{PASSWORD}@127.0.0.1:{closed_port()}",
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={SECRET}",
            "TASKMETER_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )
    result = taskmeter("run", "--", "true", env=env)
    assert result.returncode == 0
    assert "waits in the spool" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout

    flushed = taskmeter("flush", str(tmp_path / "spool"), env=env)
    assert flushed.returncode == 1  # still unreachable
    assert PASSWORD not in flushed.stderr + flushed.stdout
    assert SECRET not in flushed.stderr + flushed.stdout


def test_debug_logging_of_a_failing_flush_shows_no_secret(tmp_path: Path) -> None:
    """Even with every logger at DEBUG, a failing `taskmeter flush` prints no header value."""
    from taskmeter.export import Spool

    Spool(tmp_path).put("traces", b"\n\x00", 1)
    program = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
        "from taskmeter.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = clean_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={SECRET},x-api-key={PASSWORD}",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "flush", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout
