"""The headers taskmeter's SDK set-up hands the OpenTelemetry OTLP exporters, gRPC and HTTP.

The SDK's exporters read ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS`` themselves
and log an entry that is not ``name=value`` whole, credentials and all.
taskmeter parses the variables first (as :mod:`taskmeter.export.config` does
for its own exporters); where an entry was dropped, the exporter is given the
usable headers as an argument and the variables are hidden from it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["checked_headers", "headers_variables"]


def headers_variables(signal: str) -> tuple[str, str]:
    """The variables the SDK's OTLP exporters of ``signal`` read their headers from."""
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"


def checked_headers(signal: str, environ: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """The usable headers of the variables, and whether the SDK must not read them
    itself (they hold entries it would log)."""
    from ..export.config import headers_variable

    _, headers, dropped = headers_variable(environ, signal)
    return headers, dropped
