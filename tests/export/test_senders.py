"""Senders: one bounded attempt, classified (delivered, retry, rejected); no secret said."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from taskmeter import _log
from taskmeter.export import GrpcSender, HttpSender, Outcome, redact_url, sender_for
from taskmeter.export.config import endpoint_variable_problem
from tests.collector import CollectorUnderTest

from .servers import Answer, closed_port, scripted_endpoint, silent_endpoint

PAYLOAD = ExportTraceServiceRequest().SerializeToString() or b"\n\x00"


def test_http_2xx_is_delivered_with_the_payload_and_headers() -> None:
    """The request carries the bytes, protobuf content type and the configured headers."""
    with scripted_endpoint() as endpoint:
        sender = HttpSender(
            "traces", endpoint.url + "/v1/traces", headers={"authorization": "Bearer xyz"}
        )
        result = sender.send(b"payload-bytes")
    assert result.outcome is Outcome.DELIVERED
    [request] = endpoint.requests
    assert request.path == "/v1/traces"
    assert request.body == b"payload-bytes"
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert request.headers["authorization"] == "Bearer xyz"


def test_gzip_compression_sends_a_gzip_body() -> None:
    """compression='gzip' compresses the body and says so in Content-Encoding."""
    with scripted_endpoint() as endpoint:
        HttpSender("traces", endpoint.url + "/v1/traces", compression="gzip").send(b"abc" * 100)
    [request] = endpoint.requests
    assert request.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(request.body) == b"abc" * 100


def test_partial_success_counts_the_rejected_items() -> None:
    """A 200 whose body reports rejected spans is delivered, with the count kept."""
    body = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too old")
    ).SerializeToString()
    with scripted_endpoint(Answer(200, body=body)) as endpoint:
        result = HttpSender("traces", endpoint.url + "/v1/traces").send(PAYLOAD)
    assert result.outcome is Outcome.DELIVERED
    assert result.rejected_items == 3


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (400, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (401, Outcome.RETRY),
        (403, Outcome.RETRY),
        (404, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (302, Outcome.RETRY),
    ],
)
def test_http_status_classification(status: int, outcome: Outcome) -> None:
    """Only a refusal of the data itself drops it; auth, routing and server errors keep it."""
    with scripted_endpoint(Answer(status)) as endpoint:
        result = HttpSender("traces", endpoint.url + "/v1/traces").send(PAYLOAD)
    assert result.outcome is outcome
    assert result.detail == f"HTTP {status}"
    assert not result.unreachable  # an answer of this signal's service, not of the endpoint


def test_retry_after_is_read() -> None:
    """503 with Retry-After: 7 asks the caller to wait 7 s."""
    with scripted_endpoint(Answer(503, headers={"Retry-After": "7"})) as endpoint:
        result = HttpSender("traces", endpoint.url + "/v1/traces").send(PAYLOAD)
    assert result.retry_after_s == 7.0


def test_refused_connection_is_retry() -> None:
    """Nothing listening: RETRY, 'connection refused', quickly."""
    began = time.monotonic()
    result = HttpSender("traces", f"http://127.0.0.1:{closed_port()}/v1/traces").send(PAYLOAD)
    assert result.outcome is Outcome.RETRY
    assert result.detail == "connection refused"
    assert result.unreachable
    assert time.monotonic() - began < 2


def test_silent_endpoint_times_out_within_the_timeout() -> None:
    """An endpoint that never answers costs one timeout, then RETRY."""
    with silent_endpoint() as endpoint:
        sender = HttpSender("traces", endpoint.url + "/v1/traces", timeout_s=0.3)
        began = time.monotonic()
        result = sender.send(PAYLOAD)
    assert result.outcome is Outcome.RETRY
    assert "no answer within 0.3 s" in result.detail
    assert result.unreachable
    assert time.monotonic() - began < 2


def test_redact_url_drops_credentials_query_and_fragment() -> None:
    """User information, query strings (tokens) and fragments never reach a message."""
    assert (
        redact_url("https://user:hunter2@collector.example:4318/v1/traces?token=abc#x")
        == "https://collector.example:4318/v1/traces"
    )
    assert redact_url("http://[::1]:4318/v1/traces") == "http://[::1]:4318/v1/traces"
    assert redact_url("https://u:pw@host:99999/x?t=1") == "https://host:99999/x"
    assert redact_url("http://[::1") == "(an unparsable endpoint)"


def test_redact_url_without_a_scheme_drops_credentials_too() -> None:
    """A value missing its ``http://`` (``user:pw@host:port``) is shown as host and port:
    parsed as it was, the user name read as a scheme and the password was shown."""
    assert redact_url("user:s3cret@collector.example:4318") == "collector.example:4318"
    assert redact_url("collector.example:4318/v1?token=abc") == "collector.example:4318"
    assert redact_url("nope") == "nope"  # shown, not an anonymous "(endpoint)"


def test_bad_endpoint_variable_message_has_no_credentials() -> None:
    """The message naming a malformed variable keeps its password out (it reaches CI logs)."""
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "user:s3cret@collector.example:4318"}
    problem = endpoint_variable_problem("traces", environ, protocol="http/protobuf")
    assert problem is not None and "s3cret" not in problem
    assert problem.startswith("OTEL_EXPORTER_OTLP_ENDPOINT: collector.example:4318: ")


def test_endpoint_with_credentials_is_shown_without_them() -> None:
    """An endpoint URL with user:password is used, but `where` never shows the password."""
    with scripted_endpoint() as endpoint:
        url = endpoint.url.replace("http://", "http://alice:s3cr3t-pw@") + "/v1/traces"
        sender = HttpSender("traces", url)
        assert sender.send(PAYLOAD).outcome is Outcome.DELIVERED
    assert "s3cr3t-pw" not in sender.where
    assert endpoint.requests[0].headers["Authorization"].startswith("Basic ")


def test_sender_for_reads_the_standard_variables() -> None:
    """Signal-specific variables win; headers are parsed; the timeout is in milliseconds."""
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics-only:9000/custom",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=t1",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    traces = sender_for("traces", environ)
    metrics = sender_for("metrics", environ)
    assert isinstance(traces, HttpSender) and isinstance(metrics, HttpSender)
    assert traces.url == "http://general:4318/v1/traces"
    assert metrics.url == "http://metrics-only:9000/custom"
    assert traces.timeout_s == 2.5
    assert traces.compression == "gzip"
    assert traces._headers["authorization"] == "Bearer abc"
    grpc_sender = sender_for("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert isinstance(grpc_sender, GrpcSender)
    assert grpc_sender.target == "localhost:4317" and grpc_sender.insecure


def test_explicit_arguments_are_checked() -> None:
    """A bad protocol or a non-URL endpoint given in code is a ValueError naming it."""
    with pytest.raises(ValueError, match="protocol"):
        sender_for("traces", {}, protocol="http/json")
    with pytest.raises(ValueError, match="signal"):
        HttpSender("spans", "http://127.0.0.1:1/v1/traces")
    with pytest.raises(ValueError, match="timeout_s"):
        HttpSender("traces", "http://127.0.0.1:1/v1/traces", timeout_s=0)
    for too_long in (3600.5, 1e10, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"timeout_s .* up to 3600"):
            HttpSender("traces", "http://127.0.0.1:1/v1/traces", timeout_s=too_long)
        with pytest.raises(ValueError, match=r"timeout_s .* up to 3600"):
            GrpcSender("traces", "127.0.0.1:1", insecure=True, timeout_s=too_long)


def test_bad_variables_fall_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A malformed timeout or protocol variable never stops the program: default and warn."""
    sender = sender_for(
        "traces", {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier"}
    )
    assert isinstance(sender, HttpSender)
    assert sender.timeout_s == 10.0
    assert "OTEL_EXPORTER_OTLP_TIMEOUT" in caplog.text
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in caplog.text


def test_a_timeout_meant_in_seconds_is_used_as_milliseconds_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTEL_EXPORTER_OTLP_TIMEOUT=5 is 5 s to the SDK's exporters and 5 ms to taskmeter's (the
    specification's unit): the value is used as the specification says, and a warning names
    the variable and the value meaning 5 s, once; 100 ms and more are taken silently."""
    environ = {"OTEL_EXPORTER_OTLP_TIMEOUT": "5"}
    for signal in ("traces", "metrics", "traces"):
        assert sender_for(signal, environ).timeout_s == 0.005
    warnings = [
        r.getMessage() for r in caplog.records if "OTEL_EXPORTER_OTLP_TIMEOUT" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "read as 5 ms" in warnings[0] and "for 5 s, give 5000" in warnings[0]
    assert _log.error_counts["env.OTEL_EXPORTER_OTLP_TIMEOUT"] == 3
    caplog.clear()
    assert sender_for("traces", {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "100"}).timeout_s == 0.1
    assert sender_for("traces", {"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}).timeout_s == 2.5
    assert not caplog.records


def test_compression_variables_take_every_specification_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """none, gzip and deflate in any case are used; another value is named with the three."""
    for value in ("none", "GZIP", "Deflate"):
        sender = sender_for("metrics", {"OTEL_EXPORTER_OTLP_COMPRESSION": value})
        assert sender.compression == value.lower()
    assert not caplog.records
    sender = sender_for("metrics", {"OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "br"})
    assert sender.compression == "none"
    (record,) = caplog.records
    assert "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION='br'" in record.getMessage()
    assert "none, gzip or deflate" in record.getMessage()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://bad host:4318/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "h:70000"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ],
)
def test_malformed_endpoint_variable_falls_back_with_a_warning_naming_it(
    caplog: pytest.LogCaptureFixture, environ: dict[str, str], variable: str
) -> None:
    """The library never raises for a variable: a malformed endpoint (a port out of range,
    no scheme for HTTP, white space) is the default endpoint and one warning naming the
    variable, at construction rather than a failure at every send."""
    assert endpoint_variable_problem("traces", environ) is not None
    sender = sender_for("traces", environ)
    assert sender.where in ("http://localhost:4318/v1/traces", "http://localhost:4317")
    assert variable in caplog.text


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318/base/"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://[::1]:4318/v1/traces"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
        {},
    ],
)
def test_usable_endpoint_variables_have_no_problem(environ: dict[str, str]) -> None:
    """Valid endpoints, a gRPC host:port among them, are not reported (nor replaced)."""
    assert endpoint_variable_problem("traces", environ) is None
    assert "localhost" not in sender_for("traces", environ).where or not environ


def test_grpc_delivers_to_a_real_collector(rotel_collector: CollectorUnderTest) -> None:
    """The request bytes go through rotel's gRPC receiver to the sink unchanged."""
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    span = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), name="over grpc", kind=1)
    span.start_time_unix_nano = 1
    span.end_time_unix_nano = 2
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="t"), spans=[span])]
            )
        ]
    )
    sender = sender_for("traces", {}, endpoint=rotel_collector.grpc_endpoint, protocol="grpc")
    try:
        result = sender.send(request.SerializeToString())
    finally:
        sender.close()
    assert result.outcome is Outcome.DELIVERED, result.detail
    from tests.collector import wait_until

    assert wait_until(lambda: bool(rotel_collector.sink.spans("over grpc")), 10)


def test_grpc_unreachable_is_retry() -> None:
    """No gRPC server: UNAVAILABLE is RETRY, within the timeout."""
    sender = GrpcSender("traces", f"127.0.0.1:{closed_port()}", insecure=True, timeout_s=1.0)
    try:
        result = sender.send(PAYLOAD)
    finally:
        sender.close()
    assert result.outcome is Outcome.RETRY
    assert "UNAVAILABLE" in result.detail or "no answer" in result.detail
    assert result.unreachable


def test_grpc_silent_endpoint_is_unreachable() -> None:
    """A gRPC endpoint that never answers: DEADLINE_EXCEEDED, the endpoint's failure."""
    with silent_endpoint() as endpoint:
        target = endpoint.url.removeprefix("http://")
        sender = GrpcSender("metrics", target, insecure=True, timeout_s=0.3)
        try:
            result = sender.send(PAYLOAD)
        finally:
            sender.close()
    assert result.outcome is Outcome.RETRY
    assert result.detail == "no answer within 0.3 s"
    assert result.unreachable


@pytest.mark.parametrize(
    ("sender", "address"),
    [
        (HttpSender("traces", "http://Collector.example:4318/v1/traces"), "collector.example:4318"),
        (HttpSender("metrics", "http://u:p@collector.example/v1/metrics"), "collector.example:80"),
        (HttpSender("logs", "https://collector.example/v1/logs"), "collector.example:443"),
        (HttpSender("traces", "http://[::1]:4318/v1/traces"), "[::1]:4318"),
        (GrpcSender("traces", "Collector.example:4317", insecure=True), "collector.example:4317"),
    ],
)
def test_every_signal_sent_to_one_host_and_port_shares_its_address(
    sender: HttpSender | GrpcSender, address: str
) -> None:
    """The address that a failure is shared under: host and port, no credentials."""
    assert sender.address == address


def test_an_endpoint_that_is_not_a_string_is_a_clear_type_error(tmp_path: object) -> None:
    from taskmeter.export import DurableSpanExporter

    with pytest.raises(TypeError, match="endpoint must be a URL string, not 5"):
        sender_for("traces", endpoint=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint must be a URL string"):
        DurableSpanExporter(endpoint=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "gRPC", "OTEL_EXPORTER_OTLP_PROTOCOL": "bad"},
    ],
)
def test_the_protocol_variables_are_read_in_any_case(
    caplog: pytest.LogCaptureFixture, environ: dict[str, str]
) -> None:
    """GRPC is grpc, as the SDK's exporter selection reads it: no warning, a gRPC sender."""
    sender = sender_for("traces", environ)
    assert isinstance(sender, GrpcSender)
    assert sender.target == "localhost:4317"
    assert not caplog.records
    assert sender_for("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/Protobuf"}).where == (
        "http://localhost:4318/v1/traces"
    )
    assert not caplog.records


def test_an_upper_case_grpc_variable_delivers_to_a_real_collector(
    rotel_collector: CollectorUnderTest,
) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=GRPC sends gRPC to the gRPC port, which takes it."""
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC",
        "OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.grpc_endpoint,
    }
    sender = sender_for("traces", environ)
    try:
        result = sender.send(PAYLOAD)
    finally:
        sender.close()
    assert result.outcome is Outcome.DELIVERED, result.detail


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_malformed_endpoint_variable_keeps_the_other_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    """Only the endpoint falls back to the default: the timeout, compression, headers and
    certificate files of the variables still apply."""
    files = {}
    for suffix in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"):
        path = tmp_path / f"{suffix.lower()}.pem"
        path.write_text("not used here\n")
        files[f"OTEL_EXPORTER_OTLP_{suffix}"] = str(path)
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=t1",
        **files,
    }
    sender = sender_for("traces", environ)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in caplog.text
    assert sender.where in ("http://localhost:4318/v1/traces", "http://localhost:4317")
    assert sender.timeout_s == 0.5
    assert sender.compression == "gzip"
    certificate, client_certificate, client_key = (
        files[f"OTEL_EXPORTER_OTLP_{suffix}"]
        for suffix in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    )
    if isinstance(sender, HttpSender):
        assert sender._headers["x-tenant"] == "t1"
        assert sender._verify == certificate
        assert sender._cert == (client_certificate, client_key)
    else:
        assert isinstance(sender, GrpcSender)
        assert sender._files == (certificate, client_certificate, client_key)


def _oversized_request(name: str, size: int) -> bytes:
    """A trace request of one span carrying ``size`` bytes (over gRPC's 4 MiB default)."""
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    span = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), name=name, kind=1)
    span.start_time_unix_nano = 1
    span.end_time_unix_nano = 2
    span.attributes.add(key="pad").value.string_value = "x" * size
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    return request.SerializeToString()


def test_a_grpc_request_over_the_message_size_limit_is_rejected_not_retried(
    rotel_collector: CollectorUnderTest, tmp_path: Path
) -> None:
    """The collector never takes a request over its gRPC message limit (rotel answers
    OUT_OF_RANGE, gRPC C core and Go RESOURCE_EXHAUSTED): it is dropped like an HTTP
    413, and the batches spooled after it are delivered instead of waiting for ever."""
    from taskmeter.export import Delivery, Spool

    spool = Spool(tmp_path / "spool")
    assert spool.put("traces", _oversized_request("too large", 5 << 20), 1)
    assert spool.put("traces", _oversized_request("small", 10), 1)
    sender = sender_for("traces", {}, endpoint=rotel_collector.grpc_endpoint, protocol="grpc")
    delivery = Delivery("traces", sender, spool, replay=False)
    try:
        assert delivery.flush(10.0)
    finally:
        sender.close()
    assert delivery.stats.rejected_items == 1
    assert delivery.stats.replayed_items == 1
    assert spool.pending() == 0
    from tests.collector import wait_until

    assert wait_until(lambda: bool(rotel_collector.sink.spans("small")), 10)


def test_a_grpc_resource_exhausted_for_a_too_large_message_is_rejected() -> None:
    """gRPC's own size limit (RESOURCE_EXHAUSTED "larger than max") is the data's fault;
    a RESOURCE_EXHAUSTED for anything else (a busy collector) is tried again."""
    from concurrent import futures

    import grpc  # type: ignore[import-untyped]

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy, try later")

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sender = GrpcSender("traces", f"127.0.0.1:{port}", insecure=True, timeout_s=5.0)
    try:
        too_large = sender.send(_oversized_request("too large", 5 << 20))
        busy = sender.send(PAYLOAD)
    finally:
        sender.close()
        server.stop(0)
    assert too_large.outcome is Outcome.REJECTED, too_large.detail
    assert "RESOURCE_EXHAUSTED" in too_large.detail
    assert busy.outcome is Outcome.RETRY, busy.detail


@pytest.mark.parametrize("part", ["status line", "body"])
def test_an_answer_trickling_past_the_timeout_ends_the_attempt_at_the_timeout(
    part: str,
) -> None:
    """An endpoint sending its answer a byte at a time (each within the timeout) is cut at
    the timeout, as one that never answers is: the attempt does not hold an exit for long."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            if part == "body":
                connection.sendall(head)
            for byte in head if part == "status line" else b"x" * 40:
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    sender = HttpSender("traces", f"http://127.0.0.1:{port}/v1/traces", timeout_s=0.5)
    try:
        started = time.monotonic()
        result = sender.send(PAYLOAD)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sender.close()
        server.join(5)
        listener.close()
    assert elapsed < 2.0
    assert result.outcome is Outcome.RETRY
    assert result.detail == "no answer within 0.5 s"
    assert result.unreachable
