"""``taskmeter run`` sends its task as an OTLP span when an endpoint is configured."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from .otlp_receiver import attributes, otlp_receiver
from .runner import clean_environment, program, run_command

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def test_span_is_exported_to_the_endpoint_in_the_environment(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT: one span, the task's ids, figures and exit code."""
    with otlp_receiver() as (url, received):
        env = clean_environment(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "nightly-train"}
        )
        result, doc = run_command(tmp_path, program("burn.py", 0.2), "-l", "burn", env=env)
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert received.paths == ["/v1/traces"]
    [(resource, span)] = received.spans
    assert resource["service.name"] == "nightly-train"
    assert span.name == "burn"
    assert span.trace_id.hex() == doc["trace_id"]
    assert span.span_id.hex() == doc["span_id"]
    values = attributes(span.attributes)
    assert values["taskmeter.task.id"] == doc["task_id"]
    assert values["taskmeter.cpu.total"] >= 0.2
    assert values["taskmeter.duration"] == pytest.approx(doc["duration"])
    assert values["process.exit.code"] == 0
    assert values["process.pid"] == doc["pid"]  # the command's process, not taskmeter's
    # The arguments may hold secrets: only the program's name is recorded by default.
    assert values["process.executable.name"] == Path(sys.executable).name
    assert "process.command_args" not in values
    assert "command" not in doc and doc["executable"] == Path(sys.executable).name
    assert span.status.code == 0  # unset: the command succeeded


def test_record_command_records_the_arguments(tmp_path: Path) -> None:
    """--record-command: the arguments in the span, the task file and the default label."""
    with otlp_receiver() as (url, received):
        env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": url})
        result, doc = run_command(tmp_path, ["sh", "-c", "exit 0"], "--record-command", env=env)
    assert result.returncode == 0, result.stderr
    assert doc is not None and doc["command"] == ["sh", "-c", "exit 0"]
    assert doc["label"] == "sh -c 'exit 0'"
    [(_, span)] = received.spans
    assert attributes(span.attributes)["process.command_args"] == ["sh", "-c", "exit 0"]


def test_default_label_is_the_program_name_only(tmp_path: Path) -> None:
    """Without --record-command the label is the program's name, not its arguments."""
    result, doc = run_command(tmp_path, ["sh", "-c", "exit 0 # password=hunter2"])
    assert result.returncode == 0, result.stderr
    assert doc is not None and doc["label"] == "sh"
    assert "hunter2" not in json.dumps(doc)


def test_failed_command_span_has_error_status_and_option_endpoint(tmp_path: Path) -> None:
    """--otlp-endpoint works without variables; a failing command gives an ERROR span."""
    with otlp_receiver() as (url, received):
        result, _ = run_command(tmp_path, ["sh", "-c", "exit 4"], "--otlp-endpoint", url)
    assert result.returncode == 4
    [(_, span)] = received.spans
    assert span.status.code == 2  # STATUS_CODE_ERROR
    assert "status 4" in span.status.message


def test_command_killed_by_a_signal_has_the_shells_exit_code_on_its_span(tmp_path: Path) -> None:
    """process.exit.code is the status a shell reports: 128 + the signal's number; with no
    service named in the environment the resource's service.name is taskmeter."""
    with otlp_receiver() as (url, received):
        result, _ = run_command(tmp_path, ["sh", "-c", "kill -KILL $$"], "--otlp-endpoint", url)
    assert result.returncode == -9  # taskmeter ends as the command did
    [(resource, span)] = received.spans
    assert attributes(span.attributes)["process.exit.code"] == 128 + 9
    assert resource["service.name"] == "taskmeter"  # no OTEL_SERVICE_NAME: taskmeter's own


def test_no_export_option_wins_over_the_environment(tmp_path: Path) -> None:
    """--no-export sends nothing even with an endpoint in the environment."""
    with otlp_receiver() as (url, received):
        env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": url})
        result, _ = run_command(tmp_path, ["true"], "--no-export", env=env)
    assert result.returncode == 0
    assert received.spans == []


def test_unreachable_endpoint_is_reported_quickly_and_keeps_the_status(tmp_path: Path) -> None:
    """A dead collector: a message, the command's status, and a bounded wait."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    env = clean_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        }
    )
    began = time.monotonic()
    result, doc = run_command(tmp_path, ["sh", "-c", "exit 5"], env=env, timeout=30)
    assert time.monotonic() - began < 8
    assert result.returncode == 5
    assert doc is not None and doc["status"] == "failed"
    assert "taskmeter: error:" in result.stderr and str(port) in result.stderr


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://bad host/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "unix:///s"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
            },
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "json",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (  # longer than a thread can wait: the export's join raised OverflowError
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1e13",
            },
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
    ],
)
def test_malformed_export_variable_is_a_usage_error_naming_it_before_running(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    """A malformed OTLP variable is what a malformed --otlp-endpoint is: exit 2 before the
    command starts, one line naming the variable; not a fallback to localhost, nor an error
    found after the command ran."""
    marker = tmp_path / "ran"
    result, doc = run_command(tmp_path, ["touch", str(marker)], env=clean_environment(variables))
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"taskmeter: error: {named}")
    assert "localhost" not in result.stderr
    assert not marker.exists()
    assert doc is None


def test_flag_endpoint_wins_over_a_malformed_variable(tmp_path: Path) -> None:
    """--otlp-endpoint replaces the variable, which is then neither used nor checked."""
    with otlp_receiver() as (url, received):
        env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"})
        result, _ = run_command(tmp_path, ["true"], "--otlp-endpoint", url, env=env)
    assert result.returncode == 0, result.stderr
    assert len(received.spans) == 1


def test_grpc_host_port_variable_is_not_a_usage_error(tmp_path: Path) -> None:
    """host:port is a valid OTLP/gRPC endpoint: the command runs, and the unreachable
    collector is reported after it, with the command's status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_environment(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        }
    )
    result, doc = run_command(tmp_path, ["sh", "-c", "exit 4"], env=env, timeout=30)
    assert result.returncode == 4, result.stderr
    assert doc is not None
    assert str(port) in result.stderr


def test_spool_keeps_the_span_of_a_run_and_the_next_run_delivers_it(tmp_path: Path) -> None:
    """TASKMETER_SPOOL_DIR: a run whose collector is down keeps its span in the spool (one
    line says so, the status is the command's); the next run, with the collector back,
    delivers its own span and the kept one."""
    spool = tmp_path / "spool"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "TASKMETER_SPOOL_DIR": str(spool),
        }
    )
    first, first_doc = run_command(tmp_path, ["sh", "-c", "exit 3"], "-l", "first", env=env)
    assert first.returncode == 3
    assert "waits in the spool" in first.stderr
    assert first_doc is not None
    assert len(list(spool.glob("*.traces.otlp"))) == 1
    with otlp_receiver() as (url, received):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        second, second_doc = run_command(tmp_path, ["true"], "-l", "second", env=env)
    assert second.returncode == 0, second.stderr
    assert second_doc is not None
    assert sorted(span.name for _, span in received.spans) == ["first", "second"]
    assert {span.span_id.hex() for _, span in received.spans} == {
        first_doc["span_id"],
        second_doc["span_id"],
    }
    assert list(spool.glob("*.otlp")) == []


@pytest.mark.parametrize("written", ["GRPC", "gRPC", "HTTP/Protobuf"])
def test_protocol_variable_is_read_in_any_case_as_the_library_reads_it(written: str) -> None:
    """``OTEL_EXPORTER_OTLP_PROTOCOL=GRPC`` is gRPC for ``taskmeter run`` as for the
    library's exporters, not a usage error."""
    from taskmeter.cli._export import export_config

    config = export_config(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": written,
        }
    )
    assert config is not None
    assert config.protocol == written.lower()
