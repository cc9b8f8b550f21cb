"""Standard output that cannot be written (a full disk, a closed descriptor, an encoding
without the label's characters): one clear line and a documented status, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter import Task
from taskmeter.taskfile import save_task

from .runner import clean_environment
from .trees import make_tree

FULL = "/dev/full"
"""Every write to it fails with ENOSPC, as on a full disk."""

pytestmark = pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")


def task_file(tmp_path: Path) -> Path:
    with Task("pipeline 漢字 ü") as root, Task("load"):
        pass
    path = tmp_path / "tree.json"
    path.write_text(root.model_dump_json())
    return path


def metadata_file(tmp_path: Path) -> Path:
    metadata = {
        "isr": {
            "__version__": 1,
            "runStartUtc": ["2026-01-01T00:00:00+00:00"],
            "runEndUtc": ["2026-01-01T00:00:10+00:00"],
        }
    }
    path = tmp_path / "isr_metadata.json"
    path.write_text(json.dumps(metadata))
    return path


def taskmeter_to(
    stdout: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``taskmeter ARGS`` with its standard output opened on ``stdout`` (``None``: closed)."""
    command = [sys.executable, "-m", "taskmeter", *args]
    environment = clean_environment(env)
    if stdout is None:
        return subprocess.run(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=environment,
            # Close descriptor 1 in the child, as `taskmeter show f.json >&-` does.
            preexec_fn=lambda: os.close(1),
        )
    with open(stdout, "w") as target:
        return subprocess.run(
            command, stdout=target, stderr=subprocess.PIPE, text=True, timeout=60, env=environment
        )


def assert_one_clear_line(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskmeter: error: cannot write to standard output"), lines


@pytest.mark.parametrize("options", [[], ["--json"]])
def test_show_on_a_full_disk_exits_4_with_one_line(tmp_path: Path, options: list[str]) -> None:
    """``show`` whose output cannot be written exits 4 (not 1, which says "no task matched")."""
    result = taskmeter_to(FULL, "show", str(task_file(tmp_path)), *options)
    assert_one_clear_line(result)
    assert result.returncode == 4


def test_show_with_standard_output_closed_exits_4(tmp_path: Path) -> None:
    result = taskmeter_to(None, "show", str(task_file(tmp_path)))
    assert_one_clear_line(result)
    assert result.returncode == 4


def test_show_escapes_what_the_output_encoding_cannot_hold(tmp_path: Path) -> None:
    """A label the output's encoding lacks is written escaped, as Python writes errors."""
    out = tmp_path / "out.txt"
    result = taskmeter_to(
        str(out), "show", str(task_file(tmp_path)), env={"PYTHONIOENCODING": "ascii"}
    )
    assert result.returncode == 0, result.stderr
    assert "pipeline \\u6f22\\u5b57 \\xfc" in out.read_text(encoding="ascii")


def test_measure_on_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    """``measure`` fails as when ``-o`` cannot be written (status 2), without a traceback."""
    result = taskmeter_to(
        FULL, "measure", str(metadata_file(tmp_path)), "--timing", "isr.run", "ip_isr.IsrTime"
    )
    assert_one_clear_line(result)
    assert result.returncode == 2


def test_flush_list_on_a_full_disk_exits_4(tmp_path: Path) -> None:
    """``flush --list`` that cannot write its lines exits 4, as ``show`` does: not 0, which
    says "the spool is empty" to a script that could not read it."""
    spool = tmp_path / "spool"
    spool.mkdir()
    result = taskmeter_to(FULL, "flush", "--list", str(spool))
    assert_one_clear_line(result)
    assert result.returncode == 4


def test_report_on_a_full_disk_exits_4_with_one_line(tmp_path: Path) -> None:
    """``report -o -`` whose page cannot be written says so once and exits 4."""
    result = taskmeter_to(FULL, "report", str(task_file(tmp_path)), "-o", "-")
    assert_one_clear_line(result)
    assert result.returncode == 4


@pytest.mark.parametrize("verb", [["report", "-o", "-"], ["show"]])
def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path, verb: list[str]) -> None:
    """``taskmeter report f.json -o - | head -c 10``: the reader had what it wanted, so the
    status is 0, as for ``show``; nothing claims the page was written (a write the reader's
    going away cut short was taken for a whole one) and nothing says an error."""
    path = tmp_path / "big.json"
    save_task(make_tree(5, 10, 12), path)  # a page and a table far beyond a pipe's 64 KiB
    process = subprocess.Popen(
        [sys.executable, "-m", "taskmeter", verb[0], str(path), *verb[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()  # as `head -c 10` exits
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert stderr == ""


HELP_AND_VERSION = [
    ["--version"],
    ["--help"],
    ["-h"],
    ["run", "--help"],
    ["show", "--help"],
    ["report", "--help"],
    ["measure", "--help"],
    ["flush", "-h"],
]


@pytest.mark.parametrize("stdout", [FULL, None], ids=["full", "closed"])
@pytest.mark.parametrize("options", HELP_AND_VERSION, ids=" ".join)
def test_help_and_version_that_cannot_be_written_exit_4(
    stdout: str | None, options: list[str]
) -> None:
    """``--help`` and ``--version`` on a full disk or a closed standard output say so in one
    line and exit 4, as every other output: not 0, with the text lost (or sent to standard
    error instead)."""
    result = taskmeter_to(stdout, *options)
    assert_one_clear_line(result)
    assert result.returncode == 4


def test_help_and_version_to_a_reader_still_exit_0(tmp_path: Path) -> None:
    """Written where they can be, the help and the version are whole, and the status is 0."""
    target = tmp_path / "out.txt"
    version = taskmeter_to(str(target), "--version")
    assert (version.returncode, version.stderr) == (0, "")
    assert target.read_text().startswith("taskmeter ")
    helped = taskmeter_to(str(target), "flush", "--help")
    assert (helped.returncode, helped.stderr) == (0, "")
    text = target.read_text()
    assert text.startswith("usage: taskmeter flush") and text.endswith("\n")
    assert "exit status:" in text
