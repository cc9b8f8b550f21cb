"""The arguments taskmeter's SDK set-up gives the OpenTelemetry OTLP/gRPC exporters.

The SDK's gRPC exporters read ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT`` and
``_COMPRESSION`` themselves, and raise when they cannot use a value: a timeout
that is not a number, and any compression but ``gzip``, the specification's
``none`` and ``deflate`` included.  (Their HTTP exporters warn and use the
default.)  An exporter that raises when made exports nothing at all, so
taskmeter reads these variables first, as the specification spells them, and
hands the exporter the result as arguments, which it then takes instead of
the variables: a value that cannot be used is reported once, naming the
variable, and the default applies.

The SDK converts ``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`` from the process
environment whatever arguments it is given, so with that variable not a
number :func:`make_grpc_exporter` hides it from ``os.environ`` for as long as
the exporter is being made (and puts it back): the exporter is made with the
default timeout, and the variable is named once in a warning.

Timeouts are in seconds here, as the SDK's exporters read them (taskmeter's
own durable exporters read milliseconds, as the specification says).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .._log import config_warning
from ..settings import LONGEST_EXPORT_WAIT_S
from ._hidden import blank_otlp_variables, hidden_from_environment
from ._otlp_headers import checked_headers, headers_variables

__all__ = ["DEFAULT_TIMEOUT_S", "grpc_exporter_arguments", "make_grpc_exporter"]

DEFAULT_TIMEOUT_S = 10.0
"""The SDK's default export timeout, in seconds."""
_NOT_A_TIMEOUT = (
    f"ignoring %s=%r: expected a number of seconds more than 0 and up to "
    f"{LONGEST_EXPORT_WAIT_S:g} (an hour); using %g s"
)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= LONGEST_EXPORT_WAIT_S else None


def _timeout(signal: str, environ: Mapping[str, str]) -> float | None:
    """The timeout to pass (seconds), or ``None`` to let the exporter read the variables.

    A variable that is empty or blank is read as unset (the exporter would
    refuse it)."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT"
    general = "OTEL_EXPORTER_OTLP_TIMEOUT"
    text = environ.get(specific)
    if text is not None and text.strip():
        seconds = _seconds(text)
        if seconds is not None:
            return seconds
        config_warning(
            f"env.{specific}",
            _NOT_A_TIMEOUT,
            specific,
            text,
            DEFAULT_TIMEOUT_S,
        )
        return DEFAULT_TIMEOUT_S
    text = environ.get(general)
    if text is None:
        return None
    if not text.strip():
        return DEFAULT_TIMEOUT_S
    seconds = _seconds(text)
    if seconds is None:
        config_warning(
            f"env.{general}",
            _NOT_A_TIMEOUT,
            general,
            text,
            DEFAULT_TIMEOUT_S,
        )
        return DEFAULT_TIMEOUT_S
    return seconds


def _compression(signal: str, environ: Mapping[str, str]) -> Any:
    """The ``grpc.Compression`` to pass, or ``None`` when no variable is set.

    A variable that is empty or blank is read as unset (the exporter would
    refuse it)."""
    import grpc  # type: ignore[import-untyped]

    choices = {
        "none": grpc.Compression.NoCompression,
        "gzip": grpc.Compression.Gzip,
        "deflate": grpc.Compression.Deflate,
    }
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_COMPRESSION"
    blank = False
    for name in (specific, "OTEL_EXPORTER_OTLP_COMPRESSION"):
        text = environ.get(name)
        if text is None:
            continue
        if not text.strip():
            blank = True
            continue
        chosen = choices.get(text.strip().lower())
        if chosen is None:
            config_warning(
                f"env.{name}",
                "ignoring %s=%r: expected none, gzip or deflate; using none",
                name,
                text,
            )
            return grpc.Compression.NoCompression
        return chosen
    return grpc.Compression.NoCompression if blank else None


def grpc_exporter_arguments(signal: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for the SDK's OTLP/gRPC exporter of ``signal`` (``traces`` or
    ``metrics``) that stand for its timeout and compression variables, and for an
    endpoint variable that cannot be used (a port over 65535, say): the default.

    A variable that cannot be used is reported once, naming it and its value,
    and its default is passed.
    """
    from ..export.config import fallback_endpoint

    arguments: dict[str, Any] = {}
    endpoint = fallback_endpoint(signal, environ, protocol="grpc")
    if endpoint is not None:
        arguments["endpoint"] = endpoint
    timeout = _timeout(signal, environ)
    if timeout is not None:
        arguments["timeout"] = timeout
    compression = _compression(signal, environ)
    if compression is not None:
        arguments["compression"] = compression
    return arguments


def make_grpc_exporter(factory: Callable[..., Any], signal: str, environ: Mapping[str, str]) -> Any:
    """The SDK's OTLP/gRPC exporter of ``signal`` made by ``factory`` with
    :func:`grpc_exporter_arguments` and the checked headers.

    ``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`` is converted by the exporter
    itself, whatever it is given: when it is not a number it is hidden from
    ``os.environ`` while the exporter is made, which then takes the timeout
    passed instead of raising.  So are the headers variables when they hold
    entries that are not ``name=value`` (the exporter would log them,
    credentials and all): the usable ones are passed; and every OTLP variable
    that is empty or blank (read as unset: see :func:`blank_otlp_variables`).
    """
    arguments = grpc_exporter_arguments(signal, environ)
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT"
    hidden: list[str] = []
    process_value = os.environ.get(specific)
    # (A blank value is hidden below with the other blank variables.)
    if process_value is not None and process_value.strip() and not _is_number(process_value):
        if "timeout" not in arguments:
            config_warning(
                f"env.{specific}",
                _NOT_A_TIMEOUT,
                specific,
                process_value,
                DEFAULT_TIMEOUT_S,
            )
            arguments["timeout"] = DEFAULT_TIMEOUT_S
        hidden.append(specific)
    headers, hide_headers = checked_headers(signal, environ)
    if hide_headers:
        arguments["headers"] = headers
        hidden.extend(headers_variables(signal))
    hidden.extend(blank_otlp_variables(signal))
    with hidden_from_environment(*hidden):
        return factory(**arguments)
