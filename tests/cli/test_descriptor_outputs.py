"""``-o /dev/stdout`` (or ``/dev/fd/N``, ``/proc/self/fd/N``) with standard output sent to
a file: the file is what the descriptor refers to, never replaced by a new one.  A task
file (``run -o``) is refused; a one-shot output (``report -o``, ``measure -o``) is written
through the descriptor, after what the file already holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter import Task

from .runner import clean_environment

DESCRIPTOR_PATHS = ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]


def taskmeter_appending(log: Path, *args: str, mode: str = "a") -> subprocess.CompletedProcess[str]:
    """``taskmeter ARGS >> log`` (``mode="w"``: ``> log``), in the directory of ``log``."""
    with open(log, mode) as out:
        return subprocess.run(
            [sys.executable, "-m", "taskmeter", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=clean_environment(),
            cwd=log.parent,
        )


def test_report_to_dev_stdout_appends_to_the_redirected_file(tmp_path: Path) -> None:
    """``taskmeter report t.json -o /dev/stdout >> app.log`` keeps what app.log held."""
    with Task("pipeline") as root:
        pass
    source = tmp_path / "t.json"
    source.write_text(root.model_dump_json())
    log = tmp_path / "app.log"
    for path in DESCRIPTOR_PATHS:
        log.write_text("previous line\n")
        result = taskmeter_appending(log, "report", str(source), "-o", path)
        assert result.returncode == 0, result.stderr
        text = log.read_text()
        assert text.startswith("previous line\n<!DOCTYPE html>"), text[:200]
        assert text.rstrip().endswith("</html>")
        assert text.count("<!DOCTYPE html>") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "t.json"]


@pytest.mark.parametrize("mode", ["w", "a"])
def test_measure_to_dev_stdout_writes_through(tmp_path: Path, mode: str) -> None:
    """``measure -o /dev/stdout`` did not truncate a file standard output appends to."""
    metadata = {
        "isr": {
            "__version__": 1,
            "runStartUtc": ["2026-01-01T00:00:00+00:00"],
            "runEndUtc": ["2026-01-01T00:00:10+00:00"],
        }
    }
    source = tmp_path / "isr_metadata.json"
    source.write_text(json.dumps(metadata))
    log = tmp_path / "app.log"
    log.write_text("previous line\n")
    args = ["measure", str(source), "--timing", "isr.run", "ip_isr.IsrTime", "-o", "/dev/stdout"]
    result = taskmeter_appending(log, *args, mode=mode)
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    if mode == "a":
        assert text.startswith("previous line\n")
        text = text.removeprefix("previous line\n")
    assert json.loads(text)[0]["metric"] == "ip_isr.IsrTime"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "isr_metadata.json"]


@pytest.mark.parametrize("path", DESCRIPTOR_PATHS)
def test_run_refuses_a_task_file_on_a_descriptor(tmp_path: Path, path: str) -> None:
    """A task file is replaced again and again: on ``/dev/stdout`` it would replace the
    log standard output goes to.  Refused before the command runs, as a FIFO is."""
    log = tmp_path / "app.log"
    log.write_text("previous line\n")
    result = taskmeter_appending(log, "run", "-o", path, "--", sys.executable, "-c", "print(1)")
    assert result.returncode == 125
    assert result.stderr.strip() == (
        f"taskmeter: error: cannot write the task file {path}: "
        "it names a file descriptor (as /dev/stdout does), not a regular file"
    )
    assert log.read_text() == "previous line\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log"]
