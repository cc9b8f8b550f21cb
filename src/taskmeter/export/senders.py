"""Send serialized OTLP requests (protobuf bytes) over HTTP or gRPC, and say what happened.

A sender does one attempt, bounded by its timeout, and classifies the answer:

* :attr:`Outcome.DELIVERED`: the endpoint took the request (HTTP 2xx, gRPC OK);
  a partial success counts the items it refused (:attr:`SendResult.rejected_items`);
* :attr:`Outcome.REJECTED`: the endpoint refused the *data* (HTTP 400 or 413,
  gRPC ``INVALID_ARGUMENT``, or a request over the server's gRPC message size
  limit): sending it again cannot help;
* :attr:`Outcome.RETRY`: anything else (no connection, a timeout, 429, 5xx,
  an authentication or configuration problem): the request is kept and sent
  again later, so that fixing the endpoint loses nothing.

The retrying itself (back-off, the spool) belongs to the caller.  Nothing a
sender reports (:attr:`SendResult.detail`) contains a header value or the
credentials of a URL: endpoints are shown without user information, query
or fragment, and exception texts are scrubbed of every secret the sender
knows.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import socket
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..__about__ import __version__
from ..settings import LONGEST_EXPORT_WAIT_S

__all__ = [
    "GRPC_METHODS",
    "GrpcSender",
    "HttpSender",
    "Outcome",
    "SendResult",
    "Sender",
    "redact_url",
    "url_problem",
]

GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_REJECTED_HTTP = frozenset({400, 413})
_TOO_LARGE = re.compile(r"message larger than max|message length too large", re.IGNORECASE)
"""What gRPC servers say of a request over their message size limit (grpc-go and
gRPC C core: RESOURCE_EXHAUSTED; tonic, in rotel: OUT_OF_RANGE)."""
_MAX_DETAIL = 200


class Outcome(Enum):
    """What became of one attempt to send a request."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt, with a description that is safe to log."""

    outcome: Outcome
    detail: str = ""
    retry_after_s: float | None = None
    """How long the endpoint asked to be left alone (``Retry-After``), if it said."""
    rejected_items: int = 0
    """Items a partially successful request did not keep."""
    unreachable: bool = False
    """The endpoint itself failed (no connection, no answer, TLS, gRPC ``UNAVAILABLE``)."""


def redact_url(url: str) -> str:
    """``url`` without user information, query and fragment (for messages).

    A value without ``scheme://`` (``user:pw@host:port``, a mistake) is shown as
    ``host:port``: parsed as it stands, its user name would pass for a scheme and
    the rest, password included, for a path.
    """
    schemeless = "://" not in url
    try:
        parts = urlsplit(f"//{url}" if schemeless else url)
    except ValueError:
        return "(an unparsable endpoint)"
    try:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not one: shown as given, without user information
        host, port = parts.netloc.rpartition("@")[2], ""
    if schemeless or not parts.scheme:
        return f"{host}{port}" if host else "(endpoint)"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an OTLP endpoint URL, or ``None``.

    It must be an ``http://`` or ``https://`` URL with a host, no white
    space, and a port (if given) from 1 to 65535.  Messages show the URL
    without credentials (:func:`redact_url`).
    """
    shown = redact_url(url)
    if any(ch.isspace() for ch in url):
        return f"{shown!r} contains white space"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        if str(exc).startswith("Port"):
            return f"{shown}: the port must be a number from 1 to 65535"
        return f"{shown} is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{shown}: the endpoint must be an http:// or https:// URL"
    if not parts.hostname:
        return f"{shown}: no host"
    if port == 0:
        return f"{shown}: the port must be a number from 1 to 65535"
    return None


class _Scrubber:
    """Removes known secrets from text that is about to be logged."""

    def __init__(self, secrets: Iterable[str]) -> None:
        words: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            words.add(secret)
            words.update(part for part in secret.split() if len(part) >= 4)
        # Longest first, so a value is replaced before its parts are.
        self._secrets = sorted(words, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if len(text) > _MAX_DETAIL:
            text = text[: _MAX_DETAIL - 3] + "..."
        return text


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [s for s in (parts.username, parts.password) if s]
    found += [unquote(s) for s in found]
    if parts.query:
        found.append(parts.query)
    return found


class Sender(ABC):
    """Sends one signal's serialized requests to one endpoint."""

    signal: str
    """``traces``, ``metrics`` or ``logs``."""
    timeout_s: float
    """The longest one attempt may take."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The endpoint, safe to show (no credentials)."""

    @property
    def address(self) -> str:
        """The endpoint's ``host:port``, which every signal sent there shares."""
        return self.where

    @abstractmethod
    def send(self, payload: bytes, timeout_s: float | None = None) -> SendResult:
        """One attempt to deliver ``payload``; never raises."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


def _check_signal(signal: str) -> None:
    if signal not in GRPC_METHODS:
        raise ValueError(f"unknown OTLP signal {signal!r}; expected traces, metrics or logs")


def _check_timeout(timeout_s: float) -> float:
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not 0 < timeout_s <= LONGEST_EXPORT_WAIT_S
    ):
        raise ValueError(
            f"timeout_s must be a number of seconds more than 0 and up to "
            f"{LONGEST_EXPORT_WAIT_S:g} (an hour), not {timeout_s!r}"
        )
    return float(timeout_s)


def _partial_rejections(signal: str, body: bytes) -> int:
    """Items a success response says were not kept (OTLP partial success)."""
    if not body:
        return 0
    try:
        if signal == "traces":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            trace_response = ExportTraceServiceResponse.FromString(body)
            return int(trace_response.partial_success.rejected_spans)
        if signal == "metrics":
            from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
                ExportMetricsServiceResponse,
            )

            metrics_response = ExportMetricsServiceResponse.FromString(body)
            return int(metrics_response.partial_success.rejected_data_points)
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        logs_response = ExportLogsServiceResponse.FromString(body)
        return int(logs_response.partial_success.rejected_log_records)
    except Exception:  # a body that is not a protobuf response (JSON, text): no count
        return 0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        import time

        seconds = moment.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 3600.0)


class HttpSender(Sender):
    """OTLP/HTTP with protobuf bodies (``POST <url>``, ``application/x-protobuf``).

    Args:
        signal: ``traces``, ``metrics`` or ``logs``.
        url: The full signal URL (``http://127.0.0.1:4318/v1/traces``).
        headers: Extra request headers (``Authorization``, ...); never logged.
        timeout_s: The longest one attempt may take.
        compression: ``"none"``, ``"gzip"`` or ``"deflate"``.
        certificate_file: CA bundle to verify the server with (default: the system's).
        client_certificate_file, client_key_file: For mutual TLS.
    """

    def __init__(
        self,
        signal: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        compression: str = "none",
        certificate_file: str | None = None,
        client_certificate_file: str | None = None,
        client_key_file: str | None = None,
    ) -> None:
        _check_signal(signal)
        if not isinstance(url, str):
            raise ValueError(f"OTLP/HTTP endpoint must be an http(s) URL, not {url!r}")
        if problem := url_problem(url):
            raise ValueError(f"OTLP/HTTP endpoint {problem}")
        if compression not in ("none", "gzip", "deflate"):
            raise ValueError(f"compression must be none, gzip or deflate, not {compression!r}")
        self.signal = signal
        self.url = url
        self.timeout_s = _check_timeout(timeout_s)
        self.compression = compression
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"taskmeter/{__version__}",
        }
        for name, value in (headers or {}).items():
            self._headers[str(name)] = str(value)
        if compression != "none":
            self._headers["Content-Encoding"] = compression
        self._verify: bool | str = certificate_file or True
        self._cert: tuple[str, str] | str | None = None
        if client_certificate_file and client_key_file:
            self._cert = (client_certificate_file, client_key_file)
        elif client_certificate_file:
            self._cert = client_certificate_file
        self._where = redact_url(url)
        self._address = _http_address(url)
        self._scrub = _Scrubber([*(headers or {}).values(), *_url_secrets(url)])
        self._local = threading.local()

    @property
    def where(self) -> str:
        return self._where

    @property
    def address(self) -> str:
        return self._address

    def _session(self) -> Any:
        # One session (connection pool) per thread and process: a forked
        # child must not share the parent's sockets.
        session = getattr(self._local, "session", None)
        if session is None or self._local.pid != os.getpid():
            import requests

            session = requests.Session()
            _watch_connections(session)
            self._local.session = session
            self._local.pid = os.getpid()
        return session

    def _body(self, payload: bytes) -> bytes:
        if self.compression == "gzip":
            return gzip.compress(payload, compresslevel=6)
        if self.compression == "deflate":
            return zlib.compress(payload)
        return payload

    def send(self, payload: bytes, timeout_s: float | None = None) -> SendResult:
        timeout = self.timeout_s if timeout_s is None else max(timeout_s, 0.001)
        # requests bounds each read, not the whole answer: an endpoint that
        # trickles its answer would hold the attempt (and an exit) for ever.
        watch = _Watch()
        _attempt.watch = watch
        timer = threading.Timer(timeout, watch.abort)
        timer.daemon = True
        with contextlib.suppress(RuntimeError):  # no more threads: each read is still bounded
            timer.start()
        try:
            response = self._session().post(
                self.url,
                data=self._body(payload),
                headers=self._headers,
                timeout=timeout,
                verify=self._verify,
                cert=self._cert,
                allow_redirects=False,
            )
        except Exception as exc:
            if watch.finish():
                return SendResult(
                    Outcome.RETRY, f"no answer within {timeout:g} s", unreachable=True
                )
            return SendResult(
                Outcome.RETRY, self._describe(exc, timeout), unreachable=_unreachable(exc)
            )
        finally:
            timer.cancel()
            _attempt.watch = None
        watch.finish()
        try:
            status = response.status_code
            body = response.content if 200 <= status < 300 else b""
            retry_after = _retry_after(response.headers.get("Retry-After"))
        finally:
            response.close()
        if 200 <= status < 300:
            return SendResult(
                Outcome.DELIVERED,
                f"HTTP {status}",
                rejected_items=_partial_rejections(self.signal, body),
            )
        outcome = Outcome.REJECTED if status in _REJECTED_HTTP else Outcome.RETRY
        return SendResult(outcome, f"HTTP {status}", retry_after_s=retry_after)

    def _describe(self, exc: Exception, timeout: float) -> str:
        import requests

        if isinstance(exc, requests.exceptions.Timeout):
            return f"no answer within {timeout:g} s"
        if isinstance(exc, requests.exceptions.SSLError):
            return f"TLS error: {self._scrub(str(exc))}"
        if isinstance(exc, requests.exceptions.ConnectionError):
            text = str(exc)
            if "refused" in text.lower():
                return "connection refused"
            return "cannot connect"
        return f"{type(exc).__name__}: {self._scrub(str(exc))}"

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None


class GrpcSender(Sender):
    """OTLP/gRPC: the request bytes go to the signal's ``Export`` method as they are.

    Args:
        signal: ``traces``, ``metrics`` or ``logs``.
        target: ``host:port``.
        insecure: Plain text instead of TLS.
        headers: Request metadata (``authorization``, ...); never logged.
        timeout_s: The longest one attempt may take.
        compression: ``"none"``, ``"gzip"`` or ``"deflate"``.
        certificate_file, client_certificate_file, client_key_file: TLS files.
    """

    def __init__(
        self,
        signal: str,
        target: str,
        *,
        insecure: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        compression: str = "none",
        certificate_file: str | None = None,
        client_certificate_file: str | None = None,
        client_key_file: str | None = None,
    ) -> None:
        _check_signal(signal)
        if not isinstance(target, str) or not target or "/" in target:
            raise ValueError(f"an OTLP/gRPC target is host:port, not {redact_url(str(target))}")
        if compression not in ("none", "gzip", "deflate"):
            raise ValueError(f"compression must be none, gzip or deflate, not {compression!r}")
        self.signal = signal
        self.target = target
        self.insecure = insecure
        self.timeout_s = _check_timeout(timeout_s)
        self.compression = compression
        self._metadata = tuple((str(k).lower(), str(v)) for k, v in (headers or {}).items())
        self._files = (certificate_file, client_certificate_file, client_key_file)
        self._scrub = _Scrubber([str(v) for v in (headers or {}).values()])
        self._lock = threading.Lock()
        self._channel: Any = None
        self._method: Any = None
        self._pid = 0

    @property
    def where(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.target}"

    @property
    def address(self) -> str:
        return self.target.lower()

    def _call(self) -> Any:
        with self._lock:
            if self._method is None or self._pid != os.getpid():
                grpc = _grpc()
                if self.insecure:
                    channel = grpc.insecure_channel(self.target)
                else:
                    root, chain, key = (_read_file(path) for path in self._files)
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=root, private_key=key, certificate_chain=chain
                    )
                    channel = grpc.secure_channel(self.target, credentials)
                self._channel = channel
                self._method = channel.unary_unary(
                    GRPC_METHODS[self.signal],
                    request_serializer=None,
                    response_deserializer=None,
                )
                self._pid = os.getpid()
            return self._method

    def send(self, payload: bytes, timeout_s: float | None = None) -> SendResult:
        timeout = self.timeout_s if timeout_s is None else max(timeout_s, 0.001)
        try:
            grpc = _grpc()
            compression = {
                "none": grpc.Compression.NoCompression,
                "gzip": grpc.Compression.Gzip,
                "deflate": grpc.Compression.Deflate,
            }[self.compression]
            body = self._call()(
                payload, timeout=timeout, metadata=self._metadata, compression=compression
            )
        except Exception as exc:
            return self._failure(exc, timeout)
        return SendResult(
            Outcome.DELIVERED,
            "gRPC OK",
            rejected_items=_partial_rejections(self.signal, body or b""),
        )

    def _failure(self, exc: Exception, timeout: float) -> SendResult:
        grpc = _grpc()

        if not isinstance(exc, grpc.RpcError):
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {self._scrub(str(exc))}")
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        name = getattr(code, "name", "UNKNOWN")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return SendResult(Outcome.RETRY, f"no answer within {timeout:g} s", unreachable=True)
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        detail = f"gRPC {name}" + (f": {self._scrub(str(details))}" if details else "")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return SendResult(Outcome.REJECTED, detail)
        if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE) and (
            _TOO_LARGE.search(str(details or ""))
        ):
            # A request over the message size limit (gRPC's HTTP 413): it never fits.
            return SendResult(Outcome.REJECTED, detail)
        return SendResult(Outcome.RETRY, detail, unreachable=code == grpc.StatusCode.UNAVAILABLE)

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._method = self._channel, None, None
        if channel is not None:
            channel.close()


_attempt = threading.local()
"""The :class:`_Watch` of the HTTP attempt this thread is making."""


class _Watch:
    """Ends an HTTP attempt at its deadline by shutting its connection's socket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connection: Any = None
        self._done = False
        self._aborted = False

    def abort(self) -> None:
        with self._lock:
            if self._done:
                return
            self._aborted = True
            sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> bool:
        """The attempt is over; whether the deadline ended it."""
        with self._lock:
            self._done = True
            return self._aborted


def _watch_connections(session: Any) -> None:
    """Make ``session``'s connections known to the :class:`_Watch` of the attempt using them."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base: Any) -> Any:
        class Watched(base):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                watch = getattr(_attempt, "watch", None)
                if watch is not None:
                    watch.connection = self
                return super().request(*args, **kwargs)

        return Watched

    class Pool(HTTPConnectionPool):
        ConnectionCls = watched(HTTPConnection)

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = watched(HTTPSConnection)

    for prefix in ("http://", "https://"):
        manager = session.get_adapter(prefix).poolmanager
        manager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}


def _http_address(url: str) -> str:
    """``host:port`` of an http(s) URL, the scheme's port when it names none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact_url(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def _unreachable(exc: Exception) -> bool:
    """Whether a request's exception says the endpoint itself failed (no connection,
    no answer, TLS), rather than something about this request."""
    import requests

    return isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ConnectionError)


def _grpc() -> Any:
    """The ``grpc`` module (imported on first use: it takes a tenth of a second)."""
    import grpc  # type: ignore[import-untyped]

    return grpc


def _read_file(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()
