"""Misbehaving OTLP endpoints on 127.0.0.1: they answer what the test scripts, or nothing.

* :class:`ScriptedEndpoint`: an OTLP/HTTP receiver whose answers the test
  queues (a status, headers, a body, a delay), recording every request with
  its headers; once the script runs out it answers 200;
* :func:`closed_port`: a port nothing listens on (connection refused);
* :class:`SilentEndpoint`: accepts connections and never answers (timeouts).
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0
    reason: str | None = None


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedEndpoint:
    """An OTLP/HTTP endpoint that answers as scripted (``answers``), then 200."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ScriptedEndpoint:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = (
                    int(self.headers.get("Content-Length") or 0) if self.command == "POST" else 0
                )
                body = self.rfile.read(length)
                with endpoint._lock:
                    endpoint.requests.append(Request(self.path, dict(self.headers), body))
                    answer = endpoint.answers.pop(0) if endpoint.answers else Answer()
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                self.send_response(answer.status, answer.reason)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


@contextmanager
def scripted_endpoint(*answers: Answer) -> Iterator[ScriptedEndpoint]:
    endpoint = ScriptedEndpoint().start()
    endpoint.answers.extend(answers)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentEndpoint:
    """Accepts TCP connections on 127.0.0.1 and never answers: every request times out."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        self._socket.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self._socket.close()


@contextmanager
def silent_endpoint() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()
