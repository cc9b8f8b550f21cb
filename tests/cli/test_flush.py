"""``taskmeter flush``: delivers a spool, lists it, and says clearly what is left."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskmeter.export import DurableSpanExporter, DurableSpanProcessor, Spool
from tests.collector import OtlpSink
from tests.export.servers import closed_port

from .runner import clean_environment, taskmeter


def spool_spans(directory: Path, count: int) -> set[bytes]:
    """Spans exported while nothing listens: they end up in the spool at ``directory``."""
    exporter = DurableSpanExporter(
        directory, endpoint=f"http://127.0.0.1:{closed_port()}", replay=False
    )
    provider = TracerProvider()
    provider.add_span_processor(DurableSpanProcessor(exporter, max_export_batch_size=100))
    tracer = provider.get_tracer("flush")
    ids = set()
    for index in range(count):
        with tracer.start_as_current_span(f"waiting {index}") as span:
            ids.add(span.get_span_context().span_id.to_bytes(8, "big"))
    provider.shutdown()
    assert exporter.stats.spooled_items == count
    return ids


def test_flush_delivers_everything_and_empties_the_spool(
    tmp_path: Path, otlp_sink: OtlpSink
) -> None:
    """Every spooled span reaches the endpoint; exit 0; a line says how many."""
    ids = spool_spans(tmp_path / "spool", 350)
    result = taskmeter(
        "flush",
        str(tmp_path / "spool"),
        env=clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.endpoint}),
    )
    assert result.returncode == 0, result.stderr
    assert "traces: delivered 4 batch(es) (350 span(s))" in result.stdout
    assert "0 batch(es) left" in result.stdout
    assert {span.span_id for span in otlp_sink.spans()} == ids
    assert Spool(tmp_path / "spool").entries() == []


def test_flush_reads_the_spool_from_the_environment(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """Without DIR, TASKMETER_SPOOL_DIR names the spool; --otlp-endpoint names the endpoint."""
    spool_spans(tmp_path / "spool", 10)
    env = clean_environment({"TASKMETER_SPOOL_DIR": str(tmp_path / "spool")})
    result = taskmeter("flush", "--otlp-endpoint", otlp_sink.endpoint, env=env)
    assert result.returncode == 0, result.stderr
    assert len(otlp_sink.spans()) == 10


def test_unreachable_endpoint_leaves_the_spool_and_exits_1(tmp_path: Path) -> None:
    """Nothing listens: nothing is removed, exit 1, and the line says what is left."""
    spool_spans(tmp_path, 20)
    before = Spool(tmp_path).entries()
    result = taskmeter(
        "flush", str(tmp_path), "--otlp-endpoint", f"http://127.0.0.1:{closed_port()}"
    )
    assert result.returncode == 1
    assert f"{len(before)} batch(es) left" in result.stdout
    assert Spool(tmp_path).entries() == before


def test_every_line_on_standard_error_begins_with_taskmeter(tmp_path: Path) -> None:
    """The warning logged when the endpoint refuses (why nothing was delivered) is one of
    taskmeter's lines like the others: ``taskmeter: export.traces.unavailable: ...``; it
    came out bare, through Python's last-resort handler."""
    spool_spans(tmp_path, 5)
    result = taskmeter(
        "flush", str(tmp_path), "--otlp-endpoint", f"http://127.0.0.1:{closed_port()}"
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("connection refused" in line for line in lines), result.stderr
    assert all(line.startswith("taskmeter: ") for line in lines), result.stderr


def test_list_shows_what_waits_without_sending(tmp_path: Path) -> None:
    """--list counts batches and spans by signal; nothing is sent or removed."""
    spool_spans(tmp_path, 30)
    result = taskmeter("flush", str(tmp_path), "--list")
    assert result.returncode == 1
    assert result.stdout.startswith("traces: 1 batch(es), 30 span(s), ")
    assert "old" in result.stdout
    assert len(Spool(tmp_path).entries()) == 1
    (tmp_path / "none").mkdir()
    empty = taskmeter("flush", str(tmp_path / "none"), "--list")
    assert empty.returncode == 0 and "empty" in empty.stdout


def test_no_spool_named_is_a_usage_error() -> None:
    """Neither DIR nor TASKMETER_SPOOL_DIR: exit 2 and a one-line reason."""
    result = taskmeter("flush")
    assert result.returncode == 2
    assert "give DIR or set TASKMETER_SPOOL_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_instead_of_a_directory_is_exit_3(tmp_path: Path) -> None:
    """DIR that is a regular file: exit 3, no traceback."""
    (tmp_path / "file").write_text("x")
    result = taskmeter("flush", str(tmp_path / "file"))
    assert result.returncode == 3
    assert "not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_damaged_batches_are_removed_and_reported(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """A truncated batch file is removed with a message; the whole ones are delivered."""
    spool_spans(tmp_path, 5)
    spool_spans(tmp_path, 7)
    first = Spool(tmp_path).entries()[0]
    with open(first.path, "r+b") as handle:
        handle.truncate(first.size - 3)
    result = taskmeter("flush", str(tmp_path), "--otlp-endpoint", otlp_sink.endpoint)
    assert result.returncode == 0, result.stderr
    assert "removed 1 damaged spool file(s)" in result.stderr
    assert len(otlp_sink.spans()) == 7


@pytest.mark.parametrize("how", ["flush", "list", "environment"])
def test_a_spool_that_does_not_exist_is_exit_3(tmp_path: Path, how: str) -> None:
    """A mistyped DIR or TASKMETER_SPOOL_DIR is not an empty spool: exit 3, one line."""
    missing = tmp_path / "no-such-spool"
    if how == "environment":
        env = clean_environment({"TASKMETER_SPOOL_DIR": str(missing)})
        result = taskmeter("flush", env=env)
    else:
        result = taskmeter("flush", str(missing), *(["--list"] if how == "list" else []))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert f"no spool at {missing}: the directory does not exist" in result.stderr
    assert result.stdout == ""
    assert not missing.exists()


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("http://127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
        ("ftp://x", "must be an http:// or https:// URL"),
        ("http://:4318", "no host"),
        ("http://[::1", "not a URL"),
    ],
)
def test_a_malformed_endpoint_is_a_usage_error(tmp_path: Path, endpoint: str, message: str) -> None:
    """A bad port, scheme or host in --otlp-endpoint: exit 2 before anything is sent."""
    spool_spans(tmp_path, 3)
    before = Spool(tmp_path).entries()
    result = taskmeter("flush", str(tmp_path), "--otlp-endpoint", endpoint)
    assert result.returncode == 2
    assert "--otlp-endpoint" in result.stderr and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert Spool(tmp_path).entries() == before


def test_a_malformed_endpoint_variable_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT with a bad port: exit 2 naming the variable, nothing sent,
    as for --otlp-endpoint (not a delivery to localhost instead); credentials not shown."""
    spool_spans(tmp_path, 3)
    before = Spool(tmp_path).entries()
    env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://u:secret@127.0.0.1:99999"})
    result = taskmeter("flush", str(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("taskmeter: error: OTEL_EXPORTER_OTLP_ENDPOINT: ")
    assert "the port must be a number from 1 to 65535" in result.stderr
    assert "secret" not in result.stderr and "localhost" not in result.stderr
    assert Spool(tmp_path).entries() == before


def test_the_endpoint_message_keeps_credentials_out(tmp_path: Path) -> None:
    """User information and query of a malformed endpoint are not printed."""
    result = taskmeter(
        "flush", str(tmp_path), "--otlp-endpoint", "https://user:secret@host:99999/x?key=k2"
    )
    assert result.returncode == 2
    assert "https://host:99999/x" in result.stderr
    assert "secret" not in result.stderr and "k2" not in result.stderr


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        (["--otlp-endpoint", "http://127.0.0.1:4317"], "--otlp-protocol grpc"),
        (
            ["--otlp-protocol", "grpc", "--otlp-endpoint", "http://127.0.0.1:4318"],
            "--otlp-protocol http/protobuf",
        ),
    ],
)
def test_a_port_of_the_other_protocol_gets_a_hint(
    tmp_path: Path, options: list[str], hint: str
) -> None:
    """An application under opentelemetry-instrument spools for gRPC's port 4317, while
    flush speaks http/protobuf by default: when nothing is delivered there, flush says
    which option to pass."""
    spool_spans(tmp_path, 5)
    result = taskmeter("flush", str(tmp_path), "--timeout", "5", *options)
    assert result.returncode == 1
    assert hint in result.stderr
    assert "opentelemetry-instrument" in result.stderr


def test_no_protocol_hint_for_other_ports(tmp_path: Path) -> None:
    spool_spans(tmp_path, 5)
    result = taskmeter(
        "flush", str(tmp_path), "--otlp-endpoint", f"http://127.0.0.1:{closed_port()}"
    )
    assert result.returncode == 1
    assert "--otlp-protocol" not in result.stderr


def test_a_directory_named_like_a_batch_is_not_a_batch(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """A directory in the spool named like the oldest batch is left alone and named once
    ("not a file: ..."): the batches are delivered, nothing is "left", and the status is 0
    (it read as a damaged batch that blocked every flush with status 1)."""
    spool = tmp_path / "spool"
    ids = spool_spans(spool, 5)
    stranger = spool / "01795361104874751902-7950-000004.traces.otlp"
    stranger.mkdir()
    listed = taskmeter("flush", "--list", str(spool))
    assert listed.returncode == 1, listed.stderr
    assert listed.stdout.startswith("traces: 1 batch(es), 5 span(s), ")
    assert "damaged" not in listed.stdout
    assert listed.stderr.count(f"taskmeter: not a file: {stranger}") == 1, listed.stderr
    flushed = taskmeter("flush", str(spool), "--otlp-endpoint", otlp_sink.endpoint)
    assert flushed.returncode == 0, flushed.stderr
    assert "traces: delivered 1 batch(es) (5 span(s))" in flushed.stdout
    assert "; 0 batch(es) left" in flushed.stdout
    assert flushed.stderr.count(f"taskmeter: not a file: {stranger}") == 1, flushed.stderr
    assert {span.span_id for span in otlp_sink.spans()} == ids
    assert stranger.is_dir()
    again = taskmeter("flush", str(spool), "--otlp-endpoint", otlp_sink.endpoint)
    assert again.returncode == 0, again.stderr
    assert stranger.is_dir()
