"""Senders configured as OpenTelemetry's OTLP exporters are: by argument, else ``OTEL_*``.

The variables are the standard ones, the signal-specific form first
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, then ``OTEL_EXPORTER_OTLP_ENDPOINT``):
``_ENDPOINT``, ``_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``),
``_HEADERS``, ``_TIMEOUT`` (milliseconds, as the specification says),
``_COMPRESSION``, ``_CERTIFICATE``, ``_CLIENT_CERTIFICATE``, ``_CLIENT_KEY``
and, for gRPC, ``_INSECURE``.  An argument that cannot be used raises
``ValueError``; a variable that cannot be used is reported once as a warning
and its default applies (configuration never stops the measured program).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._log import config_warning
from ..settings import LONGEST_EXPORT_WAIT_S
from .senders import GrpcSender, HttpSender, Sender, redact_url, url_problem

__all__ = ["PROTOCOLS", "endpoint_for", "endpoint_variable_problem", "sender_for"]

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0
SECONDS_LIKE_TIMEOUT_S = 0.1
"""A timeout variable below this (100 ms) was most likely meant in seconds: said once."""


def _variable(environ: Mapping[str, str], signal: str, suffix: str) -> tuple[str, str] | None:
    """The first of ``OTEL_EXPORTER_OTLP_<SIGNAL>_<SUFFIX>`` and ``OTEL_EXPORTER_OTLP_<SUFFIX>``
    that is set, with its name."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _protocol(environ: Mapping[str, str], signal: str, explicit: str | None) -> str:
    if explicit is not None:
        if explicit not in PROTOCOLS:
            raise ValueError(
                f"OTLP protocol must be one of {', '.join(PROTOCOLS)}, not {explicit!r}"
            )
        return explicit
    found = _variable(environ, signal, "PROTOCOL")
    if found is None:
        return "http/protobuf"
    name, value = found
    lowered = value.lower()  # enum values in any case, as the OTel spec asks (GRPC is grpc)
    if lowered not in PROTOCOLS:
        config_warning(
            f"env.{name}",
            "%s=%r cannot be used by taskmeter's exporters (they send %s); using http/protobuf",
            name,
            value,
            " or ".join(PROTOCOLS),
        )
        return "http/protobuf"
    return lowered


def endpoint_for(
    signal: str,
    environ: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
) -> tuple[str, str]:
    """The protocol and endpoint for ``signal``: an explicit base ``endpoint`` (the signal
    path is added for HTTP), else the variables, else the default."""
    env = os.environ if environ is None else environ
    chosen = _protocol(env, signal, protocol)
    path = f"/v1/{signal}"
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise TypeError(f"endpoint must be a URL string, not {endpoint!r}")
        base = endpoint if "://" in endpoint else f"http://{endpoint}"
        if chosen == "grpc":
            return chosen, base
        trimmed = base.rstrip("/")
        return chosen, trimmed if trimmed.endswith(path) else trimmed + path
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if specific:
        return chosen, specific
    general = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if chosen == "grpc":
        return chosen, general or DEFAULT_GRPC_ENDPOINT
    return chosen, (general or DEFAULT_HTTP_ENDPOINT).rstrip("/") + path


def endpoint_variable_problem(
    signal: str, environ: Mapping[str, str] | None = None, *, protocol: str | None = None
) -> str | None:
    """Why the endpoint variable read for ``signal`` cannot be used, naming it; ``None`` if
    none is set or it can be used.

    The variable is the one :func:`endpoint_for` reads
    (``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``).
    For OTLP/HTTP it must be an http(s) URL with a host and a valid port; for
    gRPC, that or ``host:port``.  :func:`sender_for` warns about such a variable
    and falls back to the default endpoint; a command line that reads the
    variables on behalf of its user can refuse it instead.
    """
    env = os.environ if environ is None else environ
    found = _variable(env, signal, "ENDPOINT")
    if found is None:
        return None
    name, value = found
    chosen = _protocol(env, signal, protocol)
    problem = _grpc_problem(value) if chosen == "grpc" else url_problem(value)
    return None if problem is None else f"{name}: {problem}"


def _grpc_problem(value: str) -> str | None:
    """Why ``value`` cannot be an OTLP/gRPC endpoint (an http(s) URL or ``host:port``)."""
    if "://" in value:
        if value.split("://", 1)[0].lower() in ("http", "https"):
            return url_problem(value)
        return (
            f"{redact_url(value)}: an OTLP/gRPC endpoint is host:port or an http:// or https:// URL"
        )
    return url_problem(f"http://{value}")


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def headers_variable(environ: Mapping[str, str], signal: str) -> tuple[str, dict[str, str], bool]:
    """The headers ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS`` gives: the variable's name
    (``""`` if none is set), its ``name=value`` entries, and whether it had others.

    Entries that are not ``name=value`` are left out and reported once, naming
    the variable but never showing its value (it holds credentials).
    """
    found = _variable(environ, signal, "HEADERS")
    if found is None:
        return "", {}, False
    name, text = found
    entries = [entry for entry in text.split(",") if entry.strip()]
    usable = [
        entry
        for entry in entries
        if "=" in entry and _HEADER_NAME.fullmatch(entry.split("=", 1)[0].strip())
    ]
    if len(usable) < len(entries):
        config_warning(
            f"env.{name}",
            "ignoring %d of the %d entries of %s (value not shown: it may hold credentials): "
            "they are not name=value; using the other %d",
            len(entries) - len(usable),
            len(entries),
            name,
            len(usable),
        )
    dropped = len(usable) < len(entries)
    if not usable:
        return name, {}, dropped
    from opentelemetry.util.re import parse_env_headers

    return name, dict(parse_env_headers(",".join(usable), liberal=True)), dropped


def _headers(environ: Mapping[str, str], signal: str) -> dict[str, str]:
    return headers_variable(environ, signal)[1]


def _existing_files(environ: Mapping[str, str], signal: str) -> dict[str, str | None]:
    """The certificate and key files of the variables; one that cannot be read is
    reported once and left out."""
    files: dict[str, str | None] = {}
    for suffix, instead in (
        ("CERTIFICATE", "the system's trusted certificates"),
        ("CLIENT_CERTIFICATE", "no client certificate"),
        ("CLIENT_KEY", "no client key"),
    ):
        found = _variable(environ, signal, suffix)
        files[suffix] = None
        if found is None:
            continue
        name, path = found
        if os.path.isfile(path) and os.access(path, os.R_OK):
            files[suffix] = path
            continue
        config_warning(
            f"env.{name}", "ignoring %s=%r: not a readable file; using %s", name, path, instead
        )
    return files


def _timeout(environ: Mapping[str, str], signal: str) -> float:
    found = _variable(environ, signal, "TIMEOUT")
    if found is None:
        return DEFAULT_TIMEOUT_S
    name, value = found
    try:
        seconds = float(value) / 1000.0
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= LONGEST_EXPORT_WAIT_S:
        config_warning(
            f"env.{name}",
            "ignoring %s=%r: expected a number of milliseconds more than 0 and up to "
            "%.0f (an hour); using %g s",
            name,
            value,
            LONGEST_EXPORT_WAIT_S * 1000,
            DEFAULT_TIMEOUT_S,
        )
        return DEFAULT_TIMEOUT_S
    if seconds < SECONDS_LIKE_TIMEOUT_S:
        # The OpenTelemetry Python SDK's own exporters read these variables in
        # seconds: a program moved to taskmeter's exporters keeps its value.
        config_warning(
            f"env.{name}",
            "%s=%r is read as %g ms, the specification's unit, by taskmeter's exporters "
            "(the OpenTelemetry Python SDK's own exporters read it as seconds): an export "
            "that takes longer fails (and waits in the spool, if there is one); for %s s, "
            "give %s",
            name,
            value,
            seconds * 1000.0,
            value,
            f"{float(value) * 1000.0:g}",
        )
    return seconds


def _compression(environ: Mapping[str, str], signal: str) -> str:
    found = _variable(environ, signal, "COMPRESSION")
    if found is None:
        return "none"
    name, value = found
    lowered = value.lower()
    if lowered not in ("none", "gzip", "deflate"):
        config_warning(
            f"env.{name}", "ignoring %s=%r: expected none, gzip or deflate; using none", name, value
        )
        return "none"
    return lowered


def sender_for(
    signal: str,
    environ: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> Sender:
    """A sender for ``signal`` configured by the arguments, else by the ``OTEL_*`` variables.

    ``headers`` are added to those of ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS``.
    Raises ``ValueError`` for an argument that cannot be used.
    """
    env = os.environ if environ is None else environ
    chosen, url = endpoint_for(signal, env, endpoint=endpoint, protocol=protocol)
    merged = _headers(env, signal)
    merged.update(headers or {})
    settings = _SenderSettings(
        headers=merged,
        timeout_s=_timeout(env, signal) if timeout_s is None else timeout_s,
        compression=_compression(env, signal),
        files=_existing_files(env, signal),
    )
    try:
        return _sender(signal, chosen, url, env, settings)
    except ValueError as exc:
        if endpoint is not None:
            raise
        problem = endpoint_variable_problem(signal, env, protocol=chosen) or str(exc)
    # Only the endpoint falls back: the other settings of the variables still apply.
    return _sender(signal, chosen, _fall_back(signal, chosen, problem), env, settings)


def fallback_endpoint(
    signal: str, environ: Mapping[str, str] | None = None, *, protocol: str | None = None
) -> str | None:
    """The default endpoint of ``signal``, to use instead of an endpoint variable that
    cannot be used (see :func:`endpoint_variable_problem`; reported once, as
    :func:`sender_for` reports it); ``None`` when the variable is usable or unset.

    For an exporter that reads the variables itself: the SDK's gRPC exporter
    takes a port over 65535 modulo 65536, and connects to another one.
    """
    env = os.environ if environ is None else environ
    chosen = _protocol(env, signal, protocol)
    problem = endpoint_variable_problem(signal, env, protocol=chosen)
    return None if problem is None else _fall_back(signal, chosen, problem)


def _fall_back(signal: str, protocol: str, problem: str) -> str:
    """The default endpoint for ``signal`` (with the signal's path for HTTP), after
    reporting once why the variables' cannot be used."""
    default = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
    config_warning(
        f"env.endpoint.{signal}",
        "the OTLP %s endpoint cannot be used (%s); using %s",
        signal,
        problem,
        default,
    )
    return default if protocol == "grpc" else f"{DEFAULT_HTTP_ENDPOINT}/v1/{signal}"


@dataclass(frozen=True)
class _SenderSettings:
    """What a sender is given besides its endpoint."""

    headers: dict[str, str]
    timeout_s: float
    compression: str
    files: Mapping[str, str | None]


def _sender(
    signal: str, protocol: str, url: str, env: Mapping[str, str], settings: _SenderSettings
) -> Sender:
    """The sender of ``protocol`` to ``url``; ``ValueError`` if ``url`` cannot be used."""
    if protocol == "grpc":
        return _grpc_sender(
            signal,
            url,
            env,
            settings.headers,
            settings.timeout_s,
            settings.compression,
            settings.files,
        )
    return HttpSender(
        signal,
        url,
        headers=settings.headers,
        timeout_s=settings.timeout_s,
        compression=settings.compression,
        certificate_file=settings.files["CERTIFICATE"],
        client_certificate_file=settings.files["CLIENT_CERTIFICATE"],
        client_key_file=settings.files["CLIENT_KEY"],
    )


def _insecure(environ: Mapping[str, str], signal: str) -> bool:
    found = _variable(environ, signal, "INSECURE")
    if found is None:
        return False
    name, value = found
    if value.lower() not in ("true", "false"):
        config_warning(
            f"env.{name}", "ignoring %s=%r: expected true or false; using false", name, value
        )
    return value.lower() == "true"


def _grpc_sender(
    signal: str,
    url: str,
    env: Mapping[str, str],
    headers: dict[str, str],
    timeout: float,
    compression: str,
    files: Mapping[str, str | None],
) -> GrpcSender:
    if problem := _grpc_problem(url):
        raise ValueError(f"OTLP/gRPC endpoint {problem}")
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        target = parts.netloc.rpartition("@")[2]
        insecure = parts.scheme == "http"
    else:
        target = url
        insecure = _insecure(env, signal)
    if not target:
        raise ValueError(f"no host in the OTLP/gRPC endpoint {redact_url(url)}")
    return GrpcSender(
        signal,
        target,
        insecure=insecure,
        headers=headers,
        timeout_s=timeout,
        compression=compression,
        certificate_file=files["CERTIFICATE"],
        client_certificate_file=files["CLIENT_CERTIFICATE"],
        client_key_file=files["CLIENT_KEY"],
    )
