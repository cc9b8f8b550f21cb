"""Run the ``taskmeter`` command line as a user would: in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).resolve().parent / "programs"
MIB = 1024 * 1024


def program(name: str, *args: object) -> list[str]:
    """The command line of a test program under ``programs/``."""
    return [sys.executable, str(PROGRAMS / name), *(str(a) for a in args)]


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without OpenTelemetry or taskmeter context variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "TASKMETER_")) and key not in ("TRACEPARENT", "TRACESTATE")
    }
    env.update(extra or {})
    return env


def taskmeter(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``taskmeter ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "taskmeter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environment() if env is None else dict(env),
    )


def run_command(
    tmp_path: Path,
    command: Sequence[str],
    *options: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """``taskmeter run -o FILE OPTIONS -- COMMAND``; returns the result and the task file."""
    out = tmp_path / "run.json"
    result = taskmeter("run", "-o", str(out), *options, "--", *command, env=env, timeout=timeout)
    document = json.loads(out.read_text()) if out.exists() else None
    return result, document
