"""Every verb writes its errors in one form, ``taskmeter: error: ...`` (after the usage for
wrong options), and its other lines to standard error begin with ``taskmeter: ``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmeter.cli import main

METADATA = {
    "isr": {
        "scalars": {"__version__": 1},
        "arrays": {"runStartCpuTime": [1.0], "runEndCpuTime": ["broken"]},
        "metadata": {},
    }
}

CASES: dict[str, list[str]] = {
    "unknown verb": ["bogus"],
    "show: no file": ["show"],
    "show: depth not a number": ["show", "--depth", "x", "{task}"],
    "show: negative depth": ["show", "--depth", "-1", "{task}"],
    "show: stale-after 0": ["show", "--stale-after", "0", "{task}"],
    "show: missing file": ["show", "{missing}"],
    "show: not a task file": ["show", "{garbage}"],
    "report: stdin without -o": ["report", "-"],
    "report: missing file": ["report", "{missing}"],
    "report: directory as output": ["report", "{task}", "-o", "{dir}"],
    "report: stale-after 0": ["report", "--stale-after", "0", "{task}"],
    "measure: no metadata": ["measure"],
    "measure: unknown option": ["measure", "{metadata}", "--nope"],
    "measure: no specs": ["measure", "{metadata}"],
    "measure: missing metadata": ["measure", "{missing}", "--timing", "isr.run", "p.T"],
    "measure: bad metadata": ["measure", "{garbage}", "--timing", "isr.run", "p.T"],
    "measure: metric without package": ["measure", "{metadata}", "--timing", "isr.run", "T"],
    "measure: missing spec file": ["measure", "{metadata}", "--specs", "{missing}"],
    "measure: legacy unit 0": [
        "measure", "{metadata}", "--timing", "isr.run", "p.T", "--legacy-maxrss-unit", "0",
    ],
    "measure: cannot compute": ["measure", "{metadata}", "--cpu-timing", "isr.run", "p.C"],
    "measure: no work found, output unwritable": [
        "measure", "{metadata}", "--timing", "other.run", "p.T", "-o", "{task}/m.json",
    ],
    "flush: not a directory": ["flush", "{task}"],
    "flush: timeout 0": ["flush", "--timeout", "0", "{dir}"],
    "run: no command": ["run"],
    "run: interval 0": ["run", "--interval", "0", "--", "true"],
    "run: bad endpoint": ["run", "--otlp-endpoint", "http://[x", "--", "true"],
    "run: unknown option": ["run", "--nope", "--", "true"],
}  # fmt: skip
"""Failing command lines of each verb ({task}, {missing}, ... are paths made per test)."""


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_every_error_line_has_one_form(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command fails, with exactly one ``taskmeter: error: `` line; every other line
    of standard error is the usage or begins with ``taskmeter: ``."""
    monkeypatch.delenv("TASKMETER_SPOOL_DIR", raising=False)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"label": "t", "status": "finished"}))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(METADATA))
    paths = {
        "task": task,
        "missing": tmp_path / "missing.json",
        "garbage": garbage,
        "metadata": metadata,
        "dir": tmp_path,
    }
    args = [arg.format(**paths) for arg in argv]
    try:
        status = main(args)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    assert status != 0
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if line.startswith("taskmeter: error: ")]
    assert len(errors) == 1, lines
    usage = False
    for line in lines:
        usage = line.startswith("usage: ") or (usage and line.startswith(" "))
        assert usage or line.startswith("taskmeter: "), lines
        if not usage:
            assert "error" not in line or line in errors, lines
