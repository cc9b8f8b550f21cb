"""Running a Python program under ``opentelemetry-instrument``, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.collector import OtlpSink

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

_T = TypeVar("_T")


@dataclass
class Instrumented:
    """What an instrumented program printed: the JSON object of its last line, and stderr."""

    found: dict[str, Any]
    stderr: str


def run_instrumented_program(
    arguments: Sequence[str],
    env: Mapping[str, str],
    *,
    bin_dir: Path = BIN,
    timeout: float = 60,
) -> Instrumented:
    """``bin_dir/opentelemetry-instrument <bin_dir/python> *arguments``, in the repository.

    The environment is this one without its ``OTEL_*`` and ``TASKMETER_*``
    variables, plus ``env``.  The program must exit 0 and print a JSON
    object as its last line.
    """
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    full.update(env)
    python = sys.executable if bin_dir == BIN else str(bin_dir / "python")
    result = subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), python, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return Instrumented(found, result.stderr)


def flush_spool_into_sink(spool: Path, read: Callable[[OtlpSink], _T]) -> _T:
    """``taskmeter flush spool`` into a fresh OTLP sink; what ``read`` finds in that sink."""
    from tests.collector import OtlpSink

    sink = OtlpSink().start()
    try:
        subprocess.run(
            [str(BIN / "taskmeter"), "flush", str(spool), "--otlp-endpoint", sink.endpoint],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return read(sink)
    finally:
        sink.stop()
