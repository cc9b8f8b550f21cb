"""An installed OpenTelemetry span exporter (entry point ``broken``) that raises when it is made."""

from __future__ import annotations

from pathlib import Path

import pytest

BROKEN_MODULE = """
from opentelemetry.sdk.trace.export import SpanExporter


class BrokenExporter(SpanExporter):
    def __init__(self):
        raise RuntimeError("the exporter's credentials are missing")
"""


def install_broken_exporter(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution whose ``broken`` span exporter raises when it is made."""
    site = directory / "site"
    info = site / "broken_exporter-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-exporter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_traces_exporter]\nbroken = broken_exporter:BrokenExporter\n"
    )
    (site / "broken_exporter.py").write_text(BROKEN_MODULE)
    monkeypatch.syspath_prepend(str(site))
    return site
