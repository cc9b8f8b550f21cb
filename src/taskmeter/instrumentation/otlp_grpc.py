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

One case cannot be helped from outside: the SDK converts
``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`` whatever arguments it is given, so
with that variable not a number the exporter of that signal cannot be made;
that is said once, naming the variable.

Timeouts are in seconds here, as the SDK's exporters read them (taskmeter's
own durable exporters read milliseconds, as the specification says).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._log import config_warning

__all__ = ["DEFAULT_TIMEOUT_S", "UnusableVariable", "grpc_exporter_arguments"]

DEFAULT_TIMEOUT_S = 10.0
"""The SDK's default export timeout, in seconds."""


class UnusableVariable(ValueError):
    """A variable that keeps the SDK's gRPC exporter from being made (already reported)."""


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


def _timeout(signal: str, environ: Mapping[str, str]) -> float | None:
    """The timeout to pass (seconds), or ``None`` to let the exporter read the variables."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT"
    general = "OTEL_EXPORTER_OTLP_TIMEOUT"
    text = environ.get(specific)
    if text is not None:
        try:
            float(text)
        except ValueError:
            config_warning(
                f"env.{specific}",
                "%s=%r is not a number of seconds: the OpenTelemetry OTLP/gRPC exporter "
                "cannot be made with it, so no %s are exported (unset it, or give a number)",
                specific,
                text,
                signal,
            )
            raise UnusableVariable(specific) from None
        seconds = _seconds(text)
        if seconds is not None:
            return seconds
        config_warning(
            f"env.{specific}",
            "ignoring %s=%r: expected a positive number of seconds; using %g s",
            specific,
            text,
            DEFAULT_TIMEOUT_S,
        )
        return DEFAULT_TIMEOUT_S
    text = environ.get(general)
    if text is None:
        return None
    seconds = _seconds(text)
    if seconds is None:
        config_warning(
            f"env.{general}",
            "ignoring %s=%r: expected a positive number of seconds; using %g s",
            general,
            text,
            DEFAULT_TIMEOUT_S,
        )
        return DEFAULT_TIMEOUT_S
    return seconds


def _compression(signal: str, environ: Mapping[str, str]) -> Any:
    """The ``grpc.Compression`` to pass, or ``None`` when no variable is set."""
    import grpc  # type: ignore[import-untyped]

    choices = {
        "none": grpc.Compression.NoCompression,
        "gzip": grpc.Compression.Gzip,
        "deflate": grpc.Compression.Deflate,
    }
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_COMPRESSION"
    for name in (specific, "OTEL_EXPORTER_OTLP_COMPRESSION"):
        text = environ.get(name)
        if text is None:
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
    return None


def grpc_exporter_arguments(signal: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for the SDK's OTLP/gRPC exporter of ``signal`` (``traces`` or
    ``metrics``) that stand for its timeout and compression variables.

    Raises :class:`UnusableVariable` (after reporting it) when the exporter
    cannot be made whatever the arguments.
    """
    arguments: dict[str, Any] = {}
    timeout = _timeout(signal, environ)
    if timeout is not None:
        arguments["timeout"] = timeout
    compression = _compression(signal, environ)
    if compression is not None:
        arguments["compression"] = compression
    return arguments
