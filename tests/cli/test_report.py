"""``taskmeter report`` without a browser: the file, its data, and its errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskmeter import Task
from taskmeter.report import COLUMNS, render_html, report_data
from taskmeter.taskfile import save_task

from .runner import clean_environment, taskmeter
from .stopped import stopped_process
from .trees import GPU_LOST_IN_B, NO_GPU, WITH_SYSTEM, make_tree


def embedded_data(page: str) -> dict[str, object]:
    match = re.search(
        r'<script id="taskmeter-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert match, "the data element is in the page"
    return dict(json.loads(match.group(1)))


def test_page_is_self_contained() -> None:
    """No external resource: no src/href to http(s), no CDN, CSS and JS inline."""
    page = render_html(make_tree(2, 2, 2))
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "<link" not in page
    assert "<style>" in page and "window.taskmeterReport" in page


def test_labels_cannot_break_out_of_the_page() -> None:
    """A label with </script> and a title with markup stay text."""
    root = Task.model_validate({"label": "</script><script>alert(1)</script>", "subtasks": []})
    page = render_html(root, title="<i>t</i> {{DATA}}")
    assert page.count("</script>") == 3  # the data element's and the two scripts' own
    assert "<title>&lt;i&gt;t&lt;/i&gt; {{DATA}} · taskmeter report</title>" in page
    assert embedded_data(page)["tasks"][0][1] == root.label  # type: ignore[index]


def test_data_holds_every_task_with_its_figures() -> None:
    """Depth-first rows, times relative to the root, extra fields in the details."""
    root = make_tree(2, 3, 4)
    data = report_data(root, source="x.json")
    rows = data["tasks"]
    assert isinstance(rows, list)
    assert len(rows) == sum(1 for _ in root.walk())
    index = {name: i for i, name in enumerate(COLUMNS)}
    walked = [task for _, task in root.walk()]
    for row, task in zip(rows, walked, strict=True):
        assert row[index["id"]] == str(task.task_id)
        assert row[index["label"]] == task.label
    assert rows[0][index["start"]] == 0.0
    assert abs(data["span"] - (root.duration or 0)) < 1e-3  # type: ignore[operator]
    assert data["extra"][0]["command"] == '["python", "pipeline.py"]'  # type: ignore[index]


def test_energy_by_domain_is_apart_from_extra_fields() -> None:
    """An extra field named ``energy`` is user data; the energy by domain has its own place."""
    root = Task.model_validate(
        {"label": "r", "cpu_power": 2.0, "energy": "high", "energy_sources": {"cpu": "rapl"}}
    )
    data = report_data(root)
    assert data["extra"] == {0: {"energy": "high"}}
    assert data["energy"] == {0: [["cpu", 2.0, "rapl"]]}


def test_parents_point_at_the_enclosing_task() -> None:
    """Each row's parent index names the task that holds it in the tree."""
    root = make_tree(2, 2, 2)
    rows = report_data(root)["tasks"]
    label, parent = COLUMNS.index("label"), COLUMNS.index("parent")
    by_label = {row[label]: row for row in rows}  # type: ignore[union-attr]
    assert rows[by_label["item 1.0.1"][parent]][label] == "step 1.0"  # type: ignore[index]
    assert rows[by_label["step 1.0"][parent]][label] == "stage 1"  # type: ignore[index]


def test_5000_tasks_make_a_small_report_quickly(tmp_path: Path) -> None:
    """5011 tasks: under 1.5 MiB, written in well under a second (timing printed)."""
    source = tmp_path / "big.json"
    save_task(make_tree(), source)
    result = taskmeter("report", str(source))
    assert result.returncode == 0, result.stderr
    page = source.with_suffix(".html")
    assert page.stat().st_size < 1.5 * 1024 * 1024
    assert "5011 tasks" in result.stderr


def test_report_is_created_owner_only_as_task_files_are(tmp_path: Path) -> None:
    """A new report holds what its task file holds: created 0600 whatever the umask."""
    import stat

    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    old_umask = os.umask(0o022)
    try:
        result = taskmeter("report", str(source), "-o", str(tmp_path / "r.html"))
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "r.html").stat().st_mode) == 0o600
    # Shared with chmod a+r, it stays shared when the report is made again.
    (tmp_path / "r.html").chmod(0o644)
    again = taskmeter("report", str(source), "-o", str(tmp_path / "r.html"))
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE((tmp_path / "r.html").stat().st_mode) == 0o644


def test_errors_exit_3_or_4_with_one_line(tmp_path: Path) -> None:
    """Missing input: 3; unwritable output: 4; never a traceback."""
    missing = taskmeter("report", str(tmp_path / "none.json"))
    assert missing.returncode == 3 and "no such task file" in missing.stderr
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    blocked = tmp_path / "file"
    blocked.write_text("")
    unwritable = taskmeter("report", str(source), "-o", str(blocked / "r.html"))
    assert unwritable.returncode == 4 and "cannot write the report" in unwritable.stderr
    for result in (missing, unwritable):
        assert "Traceback" not in result.stderr


def test_a_directory_as_output_is_named_as_such(tmp_path: Path) -> None:
    """``-o DIR``: exit 4 and a line saying DIR is a directory, nothing written beside it
    (it was written as a temporary file in DIR's parent, and the error named that file)."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    reports = tmp_path / "reports"
    reports.mkdir()
    result = taskmeter("report", str(source), "-o", str(reports))
    assert result.returncode == 4
    assert (
        result.stderr == f"taskmeter: error: cannot write the report {reports}: it is a directory\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reports", "t.json"]
    assert list(reports.iterdir()) == []


@pytest.mark.parametrize("ending", ["/", "/."])
def test_an_output_written_as_a_directory_is_refused(tmp_path: Path, ending: str) -> None:
    """``-o out/`` where nothing is: exit 4, and no file named ``out`` written (``Path``
    drops the separator, which made the report a file named ``out``)."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    written = str(tmp_path / "out") + ending
    result = taskmeter("report", str(source), "-o", written)
    assert result.returncode == 4
    assert result.stderr == (
        f"taskmeter: error: cannot write the report {written}: it names a directory "
        f"(it ends with {ending!r}); name a file in it\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.json"]


def test_output_through_a_link_to_standard_output_is_written_there(tmp_path: Path) -> None:
    """``-o`` naming a link to a pipe (as /dev/stdout is): the page goes down the pipe
    and the link stays; renaming over it would have put a file in its place."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    link = tmp_path / "out.html"
    link.symlink_to("/proc/self/fd/1")
    result = taskmeter("report", str(source), "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>") and "taskmeter-data" in result.stdout
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.html", "t.json"]


def test_unwritable_directory_is_named_without_temporary_file_names(tmp_path: Path) -> None:
    """The error names the report and the reason, not the hidden temporary file."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = taskmeter("report", str(source), "-o", str(blocked / "r.html"))
    assert result.returncode == 4
    assert result.stderr == (
        f"taskmeter: error: cannot write the report {blocked / 'r.html'}: Not a directory\n"
    )


def test_the_report_never_replaces_its_task_file(tmp_path: Path) -> None:
    """A task file named .html, -o naming it, or a link to it: exit 2, the file unchanged."""
    source = tmp_path / "run.html"
    save_task(make_tree(1, 1, 1), source)
    (tmp_path / "link.html").symlink_to(source)
    before = source.read_bytes()
    for options in ([], ["-o", str(source)], ["-o", str(tmp_path / "link.html")]):
        result = taskmeter("report", str(source), *options)
        assert result.returncode == 2, options
        assert "is the task file itself" in result.stderr
        assert result.stderr.count("\n") == 1
        assert source.read_bytes() == before
    linked = taskmeter("report", str(tmp_path / "link.html"), "-o", str(tmp_path / "r.html"))
    assert linked.returncode == 0, linked.stderr
    assert source.read_bytes() == before


def report_from_stdin(source: Path, *options: str) -> subprocess.CompletedProcess[str]:
    with source.open() as stdin:
        return subprocess.run(
            [sys.executable, "-m", "taskmeter", "report", "-", *options],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_environment(),
        )


def test_standard_input_and_output(tmp_path: Path) -> None:
    """'-' reads the task from standard input; -o - writes the page to standard output."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 2, 1), source)  # root > stage > 2 steps > 1 item each
    no_output = report_from_stdin(source)
    assert no_output.returncode == 2
    assert "give the report's path with -o" in no_output.stderr
    piped = report_from_stdin(source, "-o", "-")
    assert piped.returncode == 0, piped.stderr
    assert len(embedded_data(piped.stdout)["tasks"]) == 6  # type: ignore[arg-type]
    to_stdout = subprocess.run(
        [sys.executable, "-m", "taskmeter", "report", str(source), "-o", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        cwd=tmp_path,
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert embedded_data(to_stdout.stdout)["file"] == str(source)
    assert "standard output" in to_stdout.stderr
    assert not (tmp_path / "-").exists()


def test_a_start_time_no_calendar_holds_makes_a_report_without_a_date(tmp_path: Path) -> None:
    """A hand-made file whose root starts at -1e308 s, or in the year 33658, is finite and
    so valid: the report is written (it raised OverflowError or ValueError making the
    date), its header gives no start date, and the timeline's span stays a number."""
    for start in (-1e308, 1e12, -1e12, 1e18):
        document = {
            "label": "r",
            "start_time": start,
            "duration": 5.0,
            "subtasks": [{"label": "c", "start_time": 0.0, "duration": 3.0}],
        }
        path = tmp_path / "odd-start.json"
        path.write_text(json.dumps(document))
        page = tmp_path / "odd-start.html"
        result = taskmeter("report", str(path), "-o", str(page))
        assert result.returncode == 0, (start, result.stderr)
        data = embedded_data(page.read_text())
        assert data["started"] is None
        assert data["span"] is None or isinstance(data["span"], float)


def test_a_title_of_bytes_that_are_not_utf8_is_written_escaped(tmp_path: Path) -> None:
    """``--title`` given bytes that are not UTF-8 (Python holds them as lone surrogates):
    the report is written with them escaped as bytes (``\\xff``), as ``run`` writes labels;
    writing it failed with UnicodeEncodeError and a traceback."""
    source = tmp_path / "t.json"
    save_task(make_tree(1, 1, 1), source)
    page = tmp_path / "t.html"
    result = taskmeter("report", str(source), "-o", str(page), "--title", "a\udcffb")
    assert result.returncode == 0, result.stderr
    assert "<title>a\\xffb · taskmeter report</title>" in page.read_text()


def test_a_file_name_of_bytes_that_are_not_utf8_is_said_escaped(tmp_path: Path) -> None:
    """A task file whose name has bytes that are not UTF-8 (``n\\xffame.json``) is named
    with them as ``\\xff``, in the message and in the page, not as ``\\udcff``."""
    source = tmp_path / os.fsdecode(b"n\xffame.json")
    save_task(make_tree(1, 1, 1), source)
    result = taskmeter("report", str(source))
    assert result.returncode == 0, result.stderr
    assert "wrote " in result.stderr
    assert "n\\xffame.html (" in result.stderr
    assert "udcff" not in result.stderr
    page = (tmp_path / os.fsdecode(b"n\xffame.html")).read_text()
    assert str(embedded_data(page)["file"]).endswith("/n\\xffame.json")
    missing = taskmeter("show", str(tmp_path / os.fsdecode(b"gone\xff.json")))
    assert missing.returncode == 3
    assert missing.stderr.endswith("gone\\xff.json\n"), missing.stderr


def test_a_root_never_started_times_its_tasks_from_the_first_to_start() -> None:
    """A root without a start time (a container built by hand) whose subtasks ran: the
    timeline starts at the earliest subtask, so their bars are drawn (none were); the
    rows list them by start time."""
    root = Task.model_validate(
        {
            "label": "container",
            "subtasks": [
                {"label": "a", "status": "finished", "start_time": 1e9 + 10, "duration": 5.0},
                {"label": "b", "status": "finished", "start_time": 1e9, "duration": 5.0},
            ],
        }
    )
    data = report_data(root)
    start = COLUMNS.index("start")
    assert [row[start] for row in data["tasks"]] == [None, 0.0, 10.0]  # type: ignore[union-attr]
    assert data["span"] == 15.0
    assert data["started"] == "2001-09-09 01:46:40 UTC"


def plain_energy_cells(page: str) -> list[str]:
    """The energy cells of the table the page shows without JavaScript."""
    plain = page[page.index('<section class="plain"') : page.index("</section>")]
    return re.findall(r"<td>([^<]*)</td></tr>", plain)


def test_energy_lacking_a_domain_other_tasks_have_is_marked_partial() -> None:
    """``b`` (its GPU unreadable) keeps its CPU figure, with the domain it lacks beside it
    in the data, and is marked ``*`` and explained in the table without JavaScript."""
    page = render_html(GPU_LOST_IN_B)
    data = embedded_data(page)
    energy = COLUMNS.index("energy")
    rows = data["tasks"]
    assert isinstance(rows, list)
    assert [row[energy] for row in rows] == [1200.0, 600.0, 100.0]
    assert data["partial_energy"] == {"2": ["gpu"]}
    assert plain_energy_cells(page) == ["1.2 kJ", "600.0 J", "100.0 J*"]
    assert '<p class="note">* partial energy: lacks the GPU energy other tasks have</p>' in page


@pytest.mark.parametrize(
    ("tree", "expected"),
    [(NO_GPU, ["200.0 J", "100.0 J", "100.0 J"]), (WITH_SYSTEM, ["1.5 kJ", "700.0 J", "800.0 J"])],
    ids=["no-gpu-anywhere", "system-energy"],
)
def test_whole_energy_is_not_marked_partial(tree: Task, expected: list[str]) -> None:
    """No GPU figure anywhere, or system energy measured: whole figures, no mark, no note."""
    page = render_html(tree)
    assert embedded_data(page)["partial_energy"] == {}
    assert plain_energy_cells(page) == expected
    assert 'class="note"' not in page


def test_a_task_whose_process_is_stopped_is_stopped_as_show_says(tmp_path: Path) -> None:
    """A task recorded as running whose process is stopped (SIGSTOP) is ``stopped`` in the
    page's data, with the reason ``taskmeter show`` gives, and in the table without
    JavaScript; a running one stays ``running``."""
    with stopped_process() as pid:
        now = time.time()
        here = socket.gethostname()
        root = Task.model_validate(
            {
                "label": "job",
                "status": "running",
                "hostname": here,
                "pid": os.getpid(),
                "start_time": now,
                "subtasks": [
                    {
                        "label": "paused",
                        "status": "running",
                        "hostname": here,
                        "pid": pid,
                        "start_time": now,
                    }
                ],
            }
        )
        source = tmp_path / "stopped.json"
        save_task(root, source)
        shown = taskmeter("show", str(source))
        assert shown.stdout.splitlines()[2].split()[1] == "stopped", shown.stdout
        page = tmp_path / "stopped.html"
        result = taskmeter("report", str(source), "-o", str(page))
        assert result.returncode == 0, result.stderr
        assert f"1 task stopped: process {pid} is stopped" in result.stderr
        text = page.read_text()
    data = embedded_data(text)
    statuses = data["statuses"]
    assert isinstance(statuses, list) and "stopped" in statuses
    status = COLUMNS.index("status")
    rows = data["tasks"]
    assert isinstance(rows, list)
    assert [statuses[row[status]] for row in rows] == ["running", "stopped"]
    assert data["stopped"] == {"1": data["stopped"]["1"]}  # type: ignore[index]
    assert f"process {pid} is stopped" in data["stopped"]["1"]  # type: ignore[index]
    assert data["interrupted"] == {}
    assert ">paused</td><td>stopped</td>" in text
    assert ">job</td><td>running</td>" in text


def test_a_long_extra_field_is_cut_with_a_mark_that_says_so() -> None:
    """An extra field longer than the page keeps is cut with an ellipsis and its length,
    pointing at ``taskmeter show --json`` for the whole value; a short one is whole."""
    note = "x" * 499 + "TAIL-END"
    params = {f"p{i}": list(range(i)) for i in range(40)}
    root = Task.model_validate({"label": "r", "note": note, "params": params, "short": "ok"})
    extra = report_data(root)["extra"][0]  # type: ignore[index]
    assert extra["short"] == "ok"
    assert extra["note"] == (
        "x" * 499 + "T… (507 characters; 'taskmeter show --json' has the whole value)"
    )
    whole = json.dumps(params)
    assert extra["params"].startswith(whole[:500] + "… (")
    assert f"({len(whole):,} characters;" in extra["params"]
