"""Ctrl-C in ``show``, ``report``, ``measure``, ``flush``, and in ``run`` before its
command starts: no traceback; taskmeter ends by ``SIGINT`` (its shell reports 130), and
leaves no partial output file.

``programs/interrupted_verb.py`` runs the command line with a pause in one call; the
test sends SIGINT there, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from taskmeter import Task

from .runner import clean_environment, program


def interrupted(tmp_path: Path, pause_in: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskmeter ARGS``, sent SIGINT while it is in the call ``pause_in``."""
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [*program("interrupted_verb.py", pause_in, ready), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=clean_environment(),
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"taskmeter did not reach {pause_in}"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    ready.unlink()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_ended_by_sigint(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "Traceback" not in result.stderr
    assert "KeyboardInterrupt" not in result.stderr


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    with Task("pipeline") as root, Task("load"):
        pass
    path = tmp_path / "tree.json"
    path.write_text(root.model_dump_json())
    return path


@pytest.mark.parametrize("verb", ["show", "report"])
def test_ctrl_c_while_the_task_file_loads(tmp_path: Path, task_file: Path, verb: str) -> None:
    result = interrupted(tmp_path, "taskmeter.taskfile:load_task", verb, str(task_file))
    assert_ended_by_sigint(result)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.json"]


def test_ctrl_c_while_the_report_is_written_leaves_no_file(tmp_path: Path, task_file: Path) -> None:
    """The page, written to a temporary file, is interrupted before it replaces the ``-o``
    path: neither the report nor the temporary file is left."""
    output = tmp_path / "out" / "report.html"
    result = interrupted(tmp_path, "os:replace", "report", str(task_file), "-o", str(output))
    assert_ended_by_sigint(result)
    assert list(output.parent.iterdir()) == []


def test_ctrl_c_while_a_verb_is_imported(tmp_path: Path) -> None:
    """``taskmeter run`` interrupted while its module is imported (before any option is
    read): nothing is run, no task file is written."""
    record = tmp_path / "e.json"
    result = interrupted(
        tmp_path, "importlib:import_module", "run", "-o", str(record), "--", "sleep", "7"
    )
    assert_ended_by_sigint(result)
    assert not record.exists()


def test_ctrl_c_in_measure(tmp_path: Path) -> None:
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"isr": {"__version__": 1}}))
    result = interrupted(
        tmp_path,
        "taskmeter.measure:measure_metadata",
        "measure",
        str(metadata),
        "--timing",
        "isr.run",
        "p.T",
    )
    assert_ended_by_sigint(result)


def test_ctrl_c_while_flush_delivers(tmp_path: Path) -> None:
    """Interrupted while it connects to the collector: the batch stays in the spool."""
    from taskmeter.export import Spool

    spool = Spool(tmp_path / "spool")
    assert spool.put("traces", b"", 0)
    (batch,) = (entry.path for entry in spool.entries())
    result = interrupted(
        tmp_path,
        "taskmeter.export:sender_for",
        "flush",
        str(tmp_path / "spool"),
        "--otlp-endpoint",
        "http://127.0.0.1:9",
    )
    assert_ended_by_sigint(result)
    assert batch.exists()
