"""Edges of the command line: outputs that are not files, absurd figures and options,
empty files, control characters in arguments, and tasks recorded out of start order."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter.task import Task
from taskmeter.taskfile import save_task

from .runner import clean_environment, taskmeter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux files")


# ---------------------------------------------------------------- run -o: not a regular file


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "ff"
    os.mkfifo(path)
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
    return path


def _link_to_fifo(tmp_path: Path) -> Path:
    link = tmp_path / "link.json"
    link.symlink_to(_fifo(tmp_path))
    return link


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_fifo, "a FIFO"),
        (_socket, "a socket"),
        (lambda _: Path("/dev/null"), "a character device"),
        (_link_to_fifo, "a FIFO"),
        (lambda tmp_path: tmp_path, "a directory"),
    ],
    ids=["fifo", "socket", "device", "link to a fifo", "directory"],
)
def test_run_refuses_a_task_file_path_that_is_not_a_regular_file(
    tmp_path: Path, make: object, kind: str
) -> None:
    """A task file is replaced by a file renamed over its path, again and again: a FIFO, a
    socket, a device or a directory cannot be one.  Refused before the command runs, even
    with -q (125, one line saying what the path is); the node stays as it was."""
    assert callable(make)
    path = make(tmp_path)
    mode = os.lstat(path).st_mode
    marker = tmp_path / "ran"
    result = taskmeter("run", "-q", "-o", str(path), "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert result.stderr == (
        f"taskmeter: error: cannot write the task file {path}: it is {kind}, not a regular file\n"
    )
    assert not marker.exists()
    assert os.lstat(path).st_mode == mode


def test_run_writes_through_a_link_to_a_regular_file(tmp_path: Path) -> None:
    """A link to a regular file is a task file path like any: its target gets the record."""
    target = tmp_path / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = taskmeter("run", "-q", "-o", str(link), "--", "true")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads(target.read_text())["status"] == "finished"


def test_report_to_a_fifo_nobody_reads_says_so(tmp_path: Path) -> None:
    """``report -o`` writes through a FIFO (a reader gets the page); with no reader it
    fails at once (4), saying why in words, and the FIFO stays."""
    source = tmp_path / "t.json"
    save_task(Task.model_validate({"label": "t", "status": "finished"}), source)
    fifo = _fifo(tmp_path)
    result = taskmeter("report", str(source), "-o", str(fifo))
    assert result.returncode == 4
    assert result.stderr == (
        f"taskmeter: error: cannot write the report {fifo}: it is a FIFO that no process reads\n"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ---------------------------------------------------------------- huge figures


def _huge_tree(tmp_path: Path) -> Path:
    document = {
        "label": "root",
        "status": "finished",
        "start_time": 1.7e9,
        "duration": 1e308,
        "cpu_time": 1.5,
        "peak_memory": 10**30,
        "cpu_power": 1e300,
        "subtasks": [
            {
                "label": "child",
                "status": "finished",
                "start_time": 1.7e9,
                "duration": 1e20,
                "peak_memory": 2**63,
            }
        ],
    }
    path = tmp_path / "big.json"
    path.write_text(json.dumps(document))
    return path


def test_show_keeps_every_cell_of_huge_figures_short(tmp_path: Path) -> None:
    """Valid but huge figures (1e308 s, 1e30 bytes, 1e300 J): hours and bytes and joules in
    scientific notation, no cell longer than a dozen characters; JSON keeps exact values."""
    path = _huge_tree(tmp_path)
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()[1:]]
    assert rows == [
        ["root", "finished", "2.78e+304h", "1.50s", "1.00e+30 B", "-", "1.00e+300 J"],
        ["child", "finished", "2.78e+16h", "-", "9.22e+18 B", "-", "-"],
    ]
    assert max(len(line) for line in result.stdout.splitlines()) < 80
    shown = json.loads(taskmeter("show", "--json", str(path)).stdout)["tasks"]
    assert shown[0]["duration_s"] == 1e308
    assert shown[0]["peak_memory_bytes"] == 10**30
    assert shown[1]["peak_memory_bytes"] == 2**63


def test_report_table_keeps_huge_figures_short(tmp_path: Path) -> None:
    """The report's table without JavaScript writes them as ``show`` does (its page data
    keeps the exact values; the browser test checks the page's own formatting)."""
    path = _huge_tree(tmp_path)
    page = tmp_path / "big.html"
    assert taskmeter("report", str(path), "-o", str(page)).returncode == 0
    html = page.read_text()
    for cell in ("2.78e+304h", "1.00e+30 B", "1.00e+300 J", "9.22e+18 B"):
        assert f"<td>{cell}</td>" in html
    assert "888178419700125.2 PiB" not in html


# ---------------------------------------------------------------- unknown options


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["show", "--frobnicate", "x.json"], "usage: taskmeter show "),
        (["report", "x.json", "--nope=3"], "usage: taskmeter report "),
        (["run", "--bogus", "--", "true"], "usage: taskmeter run "),
        (["measure", "m.json", "--bogus"], "usage: taskmeter measure "),
    ],
)
def test_an_unknown_option_is_said_with_the_verbs_usage(argv: list[str], usage: str) -> None:
    """Exit 2, the verb's usage (not the top level's), the option named."""
    result = taskmeter(*argv)
    assert result.returncode == 2
    assert result.stderr.startswith(usage), result.stderr
    option = next(a for a in argv if a.startswith("--"))
    assert result.stderr.endswith(f"taskmeter: error: unrecognized arguments: {option}\n")


def test_an_unknown_option_before_the_verb_is_the_top_levels() -> None:
    result = taskmeter("--frob", "show", "x.json")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: taskmeter [-h] [--version] VERB ...")


def test_options_after_runs_command_belong_to_the_command(tmp_path: Path) -> None:
    """Everything after the command (or ``--``) is the command's, unknown to taskmeter or
    not: ``--bogus`` and ``-q`` reach it."""
    out = tmp_path / "args"
    script = 'printf "%s\\n" "$@" > "$0"'
    for argv in (["--", "sh", "-c", script, str(out)], ["sh", "-c", script, str(out)]):
        result = taskmeter("run", "-q", *argv, "--bogus", "-q")
        assert result.returncode == 0, result.stderr
        assert out.read_text().split() == ["--bogus", "-q"]


# ---------------------------------------------------------------- --interval


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "0", "-1", "3601"])
def test_interval_must_be_positive_finite_and_at_most_an_hour(tmp_path: Path, value: str) -> None:
    marker = tmp_path / "ran"
    result = taskmeter("run", "--interval", value, "--", "touch", str(marker))
    assert result.returncode == 2
    assert result.stderr.startswith(
        "taskmeter: error: --interval must be a positive number of seconds, at most 3600, not "
    )
    assert not marker.exists()


# ---------------------------------------------------------------- empty files


@pytest.mark.parametrize("content", ["", " \n\t\n"])
@pytest.mark.parametrize("verb", ["show", "report"])
def test_an_empty_task_file_is_said_to_be_empty(tmp_path: Path, verb: str, content: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(content)
    result = taskmeter(verb, str(path))
    assert result.returncode == 3
    assert result.stderr == f"taskmeter: error: the task file {path} is empty\n"


def test_empty_standard_input_is_said_to_be_empty() -> None:
    result = taskmeter("show", "-")  # the runner gives no input: standard input is empty
    assert result.returncode == 3
    assert result.stderr == "taskmeter: error: standard input is empty: no task file\n"


@pytest.mark.parametrize("argv", [["show", "-"], ["report", "-", "-o", "{tmp}/x.html"]])
def test_standard_input_closed_is_said_to_be_closed(tmp_path: Path, argv: list[str]) -> None:
    """``taskmeter show - <&-``: one error line and status 3, as for unreadable input (it
    was an AttributeError traceback: Python leaves ``sys.stdin`` ``None`` then)."""
    result = subprocess.run(
        [sys.executable, "-m", "taskmeter", *(arg.format(tmp=tmp_path) for arg in argv)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        preexec_fn=lambda: os.close(0),  # as `<&-` does
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr == "taskmeter: error: cannot read standard input: it is closed\n"
    assert list(tmp_path.iterdir()) == []


def test_measure_says_an_empty_metadata_or_spec_file_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    metadata = tmp_path / "m.json"
    metadata.write_text("{}")
    result = taskmeter("measure", str(empty), "--timing", "isr", "p.T")
    assert result.returncode == 3
    assert result.stderr == f"taskmeter: error: the metadata file {empty} is empty\n"
    result = taskmeter("measure", str(metadata), "--specs", str(empty))
    assert result.returncode == 4
    assert result.stderr == f"taskmeter: error: bad metric spec: the spec file {empty} is empty\n"


def test_measure_output_creates_missing_directories(tmp_path: Path) -> None:
    metadata = tmp_path / "m.json"
    metadata.write_text("{}")
    out = tmp_path / "a" / "b" / "measurements.json"
    result = taskmeter("measure", str(metadata), "--timing", "isr", "p.T", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == []


# ---------------------------------------------------------------- the run summary's header


def test_summary_header_escapes_newlines_tabs_and_returns_in_arguments() -> None:
    """A newline in an argument would break the header in two: it is written ``\\n``
    inside the shell quotes, as ESC and U+202E are."""
    result = taskmeter("run", "--", "true", "a\nb", "c\td\re", "\x1b[31m", "x\u202ey")
    assert result.returncode == 0
    header = result.stderr.splitlines()[0]
    assert header == (
        "taskmeter: true 'a\\nb' 'c\\td\\re' '\\x1b[31m' 'x\\u202ey' exited with status 0"
    )


# ---------------------------------------------------------------- start order


def _out_of_order(tmp_path: Path) -> Path:
    """root > [late (+2.48 s), early (+0.03 s), no start, middle (+1.0 s)], as a run whose
    worker records were appended when collected; ``early`` has children out of order."""

    def task(label: str, start: float | None, *subtasks: Task) -> Task:
        data: dict[str, object] = {"label": label, "status": "finished", "duration": 0.5}
        if start is not None:
            data["start_time"] = 1.7e9 + start
        return Task.model_validate({**data, "subtasks": list(subtasks)})

    root = task(
        "root",
        0.0,
        task("late", 2.48),
        task("early", 0.03, task("e2", 0.2), task("e1", 0.1)),
        task("unstarted", None),
        task("middle", 1.0),
    )
    path = tmp_path / "order.json"
    save_task(root, path)
    return path


ORDERED = ["root", "early", "e1", "e2", "middle", "late", "unstarted"]
RECORDED = ["root", "late", "early", "e2", "e1", "unstarted", "middle"]


def test_show_lists_siblings_by_start_time_and_json_as_recorded(tmp_path: Path) -> None:
    path = _out_of_order(tmp_path)
    table = taskmeter("show", str(path))
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ORDERED
    document = json.loads(taskmeter("show", "--json", str(path)).stdout)
    assert [task["label"] for task in document["tasks"]] == RECORDED


def test_report_lists_siblings_by_start_time(tmp_path: Path) -> None:
    from taskmeter.report import report_data
    from taskmeter.taskfile import load_task

    path = _out_of_order(tmp_path)
    rows = report_data(load_task(path))["tasks"]
    assert [row[1] for row in rows] == ORDERED
    parents = {row[1]: rows[row[0]][1] if row[0] >= 0 else None for row in rows}
    assert parents["e1"] == parents["e2"] == "early" and parents["late"] == "root"
    page = tmp_path / "order.html"
    assert taskmeter("report", str(path), "-o", str(page)).returncode == 0
    html = page.read_text()
    plain = html[html.index('<section class="plain"') :]
    positions = [plain.index(f">{label}</td>") for label in ORDERED]
    assert positions == sorted(positions)


def test_a_tree_in_start_order_is_shown_as_it_is() -> None:
    """Lists already in order (most) come back as they are, not copied."""
    from taskmeter.render import display_order

    tasks = [Task.model_validate({"label": str(i), "start_time": float(i)}) for i in range(3)]
    assert display_order(tasks) is tasks
