"""A real OpenTelemetry collector for tests: rotel (from PyPI), on 127.0.0.1.

The collector receives OTLP (gRPC and HTTP) from the code under test and
forwards it over OTLP/HTTP to where the test says: by default an
:class:`OtlpSink` the test runs, which decodes and keeps every request, so
the test reads back exactly what the collector sent on; or any other OTLP
receiver (Prometheus's ``/api/v1/otlp``, say).

Fixtures (registered in ``tests/conftest.py``):

* ``otlp_sink``: a started :class:`OtlpSink`;
* ``rotel_collector``: a started :class:`RotelCollector` forwarding to
  ``otlp_sink`` (``rotel_collector.sink``).

Everything binds 127.0.0.1, every wait is bounded, and both are stopped at
teardown whatever the test did.
"""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

IN_CI = bool(os.environ.get("CI"))
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0

_ROUTES: dict[str, tuple[type[Message], type[Message], str]] = {
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "metrics"),
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "traces"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "logs"),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def value_of(any_value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def attributes_of(key_values: Any) -> dict[str, Any]:
    """The attributes of an OTLP message as a dict."""
    return {kv.key: value_of(kv.value) for kv in key_values}


@dataclass(frozen=True)
class MetricPoint:
    """One data point the sink received, with where it came from."""

    name: str
    unit: str
    kind: str
    """``histogram``, ``sum``, ``gauge``, ``exponential_histogram`` or ``summary``."""
    point: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


class OtlpSink:
    """An OTLP/HTTP receiver (protobuf or JSON bodies, gzip or not) that keeps every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, list[Any]] = {"metrics": [], "traces": [], "logs": []}
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``); signals go to ``/v1/<signal>``."""
        assert self._server is not None, "the sink is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> OtlpSink:
        """Listen on ``port`` of 127.0.0.1 (0: any free port; a port again after a stop)."""
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                route = _ROUTES.get(self.path.split("?", 1)[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if route is None:
                    self.send_error(404)
                    return
                request_type, response_type, signal = route
                try:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = request_type()
                    if "json" in (self.headers.get("Content-Type") or ""):
                        json_format.Parse(body.decode("utf-8"), request)
                    else:
                        request.ParseFromString(body)
                except (DecodeError, json_format.ParseError, OSError, UnicodeDecodeError):
                    self.send_error(400)
                    return
                sink._keep(signal, request)
                payload = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "the sink is not started"
        return int(self._server.server_address[1])

    def _keep(self, signal: str, request: Any) -> None:
        with self._lock:
            self._requests[signal].append(request)

    def requests(self, signal: str) -> list[Any]:
        """The decoded requests received for ``metrics``, ``traces`` or ``logs``."""
        with self._lock:
            return list(self._requests[signal])

    def metric_points(self, name: str | None = None) -> list[MetricPoint]:
        """Every metric data point received (of metric ``name``, if given), oldest first."""
        points = []
        for request in self.requests("metrics"):
            for resource_metrics in request.resource_metrics:
                resource = attributes_of(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if name is not None and metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            points.append(
                                MetricPoint(
                                    metric.name,
                                    metric.unit,
                                    kind,
                                    point,
                                    attributes_of(point.attributes),
                                    resource,
                                    scope_metrics.scope.name,
                                )
                            )
        return points

    def spans(self, name: str | None = None) -> list[Any]:
        """Every span received (called ``name``, if given)."""
        found = []
        for request in self.requests("traces"):
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    found.extend(s for s in scope_spans.spans if name is None or s.name == name)
        return found


def rotel_executable() -> str:
    """The collector binary shipped in the ``rotel`` wheel; skip locally / fail in CI if absent."""
    try:
        import rotel
    except ImportError:
        path = None
    else:
        candidate = Path(rotel.__file__).with_name("rotel-agent")
        path = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    path = path or shutil.which("rotel-agent")
    if path is None:
        message = (
            "the rotel collector is not installed (pip install rotel; it is in the test extra)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _add_libpython_dir(env: dict[str, str]) -> None:
    """Let rotel's agent find the ``libpython`` of the interpreter running the tests.

    The agent links ``libpython3.X.so``; an interpreter installed outside the
    system library path (pyenv, a custom prefix) keeps it in its own LIBDIR.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        paths = [libdir, *filter(None, env.get("LD_LIBRARY_PATH", "").split(os.pathsep))]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(paths)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RotelCollector:
    """A rotel collector on 127.0.0.1 that forwards everything over OTLP/HTTP to ``forward_to``."""

    def __init__(self, forward_to: str, workdir: Path, *, batch_timeout: str = "50ms") -> None:
        self.forward_to = forward_to
        self.workdir = workdir
        self.batch_timeout = batch_timeout
        self.grpc_port = 0
        self.http_port = 0
        self.log_path = workdir / "rotel.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        """Where OTLP/gRPC exporters send (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Where OTLP/HTTP exporters send (append ``/v1/metrics`` etc.)."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(
        self, timeout: float = START_TIMEOUT_S, *, same_ports: bool = False
    ) -> RotelCollector:
        """Start the collector; ``same_ports``: on the ports of its previous run (a restart)."""
        executable = rotel_executable()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (same_ports and self.grpc_port and self.http_port):
            self.grpc_port, self.http_port = free_port(), free_port()
        command = [
            executable,
            "start",
            "--pid-file",
            str(self.workdir / "rotel.pid"),
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--batch-timeout",
            self.batch_timeout,
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            self.forward_to,
            "--otlp-exporter-protocol",
            "http",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        _add_libpython_dir(env)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        ready = wait_until(
            lambda: self._exited() or (_accepts(self.grpc_port) and _accepts(self.http_port)),
            timeout,
        )
        if not ready or self._exited():
            self.stop()
            raise RuntimeError(
                f"rotel did not start within {timeout:.0f}s: {self.log_tail()}"
                if not ready
                else f"rotel exited at start: {self.log_tail()}"
            )
        return self

    def _exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def log_tail(self, size: int = 2000) -> str:
        """The end of the collector's log (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    """An OTLP/HTTP receiver on 127.0.0.1 that keeps what it receives."""
    sink = OtlpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@dataclass
class CollectorUnderTest:
    """A started collector and the sink it forwards to."""

    collector: RotelCollector
    sink: OtlpSink

    @property
    def grpc_endpoint(self) -> str:
        return self.collector.grpc_endpoint

    @property
    def http_endpoint(self) -> str:
        return self.collector.http_endpoint


@pytest.fixture
def rotel_collector(otlp_sink: OtlpSink, tmp_path: Path) -> Iterator[CollectorUnderTest]:
    """A rotel collector on 127.0.0.1 forwarding to ``otlp_sink``; stopped at teardown."""
    collector = RotelCollector(otlp_sink.endpoint, tmp_path / "rotel")
    collector.start()
    try:
        yield CollectorUnderTest(collector, otlp_sink)
    finally:
        collector.stop()
