"""Values of the wrong JSON type in a task file: ``show`` and ``report`` show them as absent
with one warning per file, instead of what pydantic's lax mode converts them to; the
model itself stays as lax as LensKit's, and files taskmeter and LensKit write raise no
warning."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taskmeter import Task
from taskmeter.taskfile import load_task, parse_task

from .runner import taskmeter

ROOT_ID = "6f1c3c0e-8f47-4e57-9d43-2bd0c7d7a3c1"


def mistyped_document() -> dict[str, Any]:
    """A root with a bool for a byte count, and a child with a string for a bool, a string
    for a number, a number for a string and an energy source that is not a string."""
    return {
        "task_id": ROOT_ID,
        "label": "hand edited",
        "hostname": "elsewhere",
        "status": "finished",
        "duration": 2.0,
        "peak_memory": True,
        "subtasks": [
            {
                "task_id": "0d6f3c62-5c1f-4a8e-9a43-64b1f4b0f0a2",
                "label": "child",
                "hostname": "elsewhere",
                "status": "finished",
                "subprocess": "yes",
                "cpu_time": "1.5",
                "duration": 1.0,
                "machine": 7,
                "cpu_power": 3.0,
                "energy_sources": {"cpu": 12},
            }
        ],
    }


def test_model_validate_stays_as_lax_as_lenskit() -> None:
    """``Task.model_validate`` and ``load_task`` without ``mistyped`` convert as pydantic
    does (API compatibility with LensKit's model): true is 1 byte, "yes" is true."""
    task = Task.model_validate({"label": "x", "peak_memory": True, "subprocess": "yes"})
    assert task.peak_memory == 1 and task.subprocess is True
    lax = parse_task(json.dumps({"label": "x", "peak_memory": True, "subprocess": "yes"}))
    assert lax.peak_memory == 1 and lax.subprocess is True


def test_show_json_gives_mistyped_values_as_absent_with_one_warning(tmp_path: Path) -> None:
    """``show --json``: each mistyped value is null (``subprocess`` false, as when absent),
    the well-typed ones are kept, and standard error holds one warning naming the file, the
    task (label and id) and the field, with the count of the others."""
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(mistyped_document()))
    result = taskmeter("show", str(path), "--json")
    assert result.returncode == 0, result.stderr
    root, child = json.loads(result.stdout)["tasks"]
    assert root["peak_memory_bytes"] is None
    assert root["duration_s"] == 2.0
    assert child["subprocess"] is False
    assert child["cpu_time_s"] is None
    assert child["machine"] is None
    assert child["duration_s"] == 1.0
    assert child["energy_j"] == {"cpu": 3.0}
    assert child["energy_sources"] == {"cpu": None}
    warnings = result.stderr.splitlines()
    assert warnings == [
        f"taskmeter: warning: {path}: task 'hand edited' (id {ROOT_ID}): peak_memory is "
        "true, not a number: shown as absent (and 4 more values of the wrong type)"
    ]


def test_show_table_shows_a_bool_peak_memory_as_not_measured(tmp_path: Path) -> None:
    """The table shows ``-`` for ``"peak_memory": true``, not ``1 B``."""
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(mistyped_document()))
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    root_row = result.stdout.splitlines()[1]
    assert "1 B" not in root_row
    assert re.split(r"\s{2,}", root_row.strip())[4] == "-"
    assert result.stderr.count("warning:") == 1


def test_report_shows_mistyped_values_as_absent(tmp_path: Path) -> None:
    """``report`` reads the file the same way: the page's data has no peak memory for the
    root, the child is not a worker process, and one warning is printed."""
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(mistyped_document()))
    page = tmp_path / "edited.html"
    result = taskmeter("report", str(path), "-o", str(page))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("taskmeter: warning:") == 1
    assert "peak_memory is true, not a number" in result.stderr
    text = page.read_text()
    data = json.loads(
        re.search(r'id="taskmeter-data"[^>]*>(.*?)</script>', text, re.S)[1]  # type: ignore[index]
    )
    columns = data["columns"]
    root, child = data["tasks"]
    assert root[columns.index("mem")] is None
    assert child[columns.index("proc")] == 0
    assert child[columns.index("cpu")] is None


def test_standard_input_is_checked_too(tmp_path: Path) -> None:
    """``show -`` names standard input in the warning."""
    document = {"label": "piped", "status": "finished", "duration": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "taskmeter", "show", "-", "--json"],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"][0]["duration_s"] is None
    assert "warning: standard input: task 'piped' (no id): duration is \"3\"" in result.stderr


def test_a_deep_file_is_checked_too() -> None:
    """A tree deeper than pydantic's JSON parser reads (the standard parser's path) is
    checked as well: a mistyped value 150 levels down is absent and reported."""
    depth = 150
    leaf = '{"label":"leaf","peak_gpu_memory":false}'
    text = '{"label":"l","subtasks":[' * depth + leaf + "]}" * depth
    messages: list[str] = []
    task = parse_task(text, "deep.json", mistyped=messages.append)
    deepest = [t for _, t in task.walk()][-1]
    assert deepest.label == "leaf" and deepest.peak_gpu_memory is None
    assert len(messages) == 1
    assert ".subtasks.0.subtasks.0.peak_gpu_memory is false, not a number" in messages[0]
    assert "(no id): ..." in messages[0]
    assert len(messages[0]) < 400


@pytest.mark.parametrize("field", ["peak_memory", "peak_gpu_memory", "pid"])
def test_a_whole_number_field_with_a_fraction_is_absent_with_one_line(field: str) -> None:
    """``1.5`` bytes is refused by pydantic's validation (the file was refused whole): it
    is of the wrong type, shown as absent like ``"12"`` or ``true``."""
    messages: list[str] = []
    task = parse_task(
        json.dumps({"label": "r", field: 1.5, "duration": 1}), "pm.json", mistyped=messages.append
    )
    assert getattr(task, field) is None and task.duration == 1
    (message,) = messages
    assert f"{field} is 1.5, not a whole number: shown as absent" in message


@pytest.mark.parametrize("field", ["peak_memory", "peak_gpu_memory", "pid"])
def test_a_whole_number_beyond_64_bits_written_as_a_float_is_read(field: str) -> None:
    """``1e20`` is a whole number (jq writes large integers so), which pydantic reads as
    an integer only up to 2**63: read as the integer, without a warning; a negative one
    is out of range like any other."""
    messages: list[str] = []
    text = '{"label": "r", "%s": 1e20, "duration": 1, "subtasks": [{"label": "s", "%s": -1e20}]}'
    task = parse_task(text % (field, field), "big.json", mistyped=messages.append)
    assert getattr(task, field) == 10**20 and task.duration == 1
    if field == "pid":
        assert messages == [] and task.subtasks[0].pid == -(10**20)
    else:
        (message,) = messages
        assert f"subtasks.0.{field} is -100000000000000000000, not a finite number >= 0" in message


@pytest.mark.parametrize(
    ("written", "number"),
    [("1e23", 10**23), ("1.5e25", 15 * 10**24), ("123456789012345e6", 123456789012345000000)],
)
def test_a_whole_number_written_with_an_exponent_is_the_number_written(
    written: str, number: int
) -> None:
    """``1e23`` is 10**23, not the nearest float's 99999999999999991611392."""
    text = '{"label": "r", "peak_memory": ' + written + "}"
    task = parse_task(text, "big.json", mistyped=print)
    assert task.peak_memory == number


def test_show_gives_a_fractional_peak_memory_as_absent(tmp_path: Path) -> None:
    """The reported case: ``show`` exited 3 for the whole file."""
    path = tmp_path / "pm.json"
    path.write_text('{"label":"r","peak_memory":1.5,"duration":1}')
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning:") == 1
    assert "peak_memory is 1.5" in result.stderr


def test_show_reads_a_peak_memory_written_with_an_exponent(tmp_path: Path) -> None:
    """``"peak_memory": 1e20`` made ``show`` exit 3 for the whole file."""
    path = tmp_path / "pm.json"
    path.write_text('{"label":"r","peak_memory":1e20,"duration":1}')
    result = taskmeter("show", "--json", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["tasks"][0]["peak_memory_bytes"] == 10**20


def test_a_value_of_the_right_type_is_not_reported() -> None:
    """Nulls, whole numbers for figures (``"duration": 2``) and a whole byte count written
    as ``1.0`` are of the right JSON type: no warning, values kept."""
    messages: list[str] = []
    document = {
        "label": "x",
        "duration": 2,
        "peak_memory": 1.0,
        "machine": None,
        "cpu_time": None,
        "subprocess": False,
    }
    task = parse_task(json.dumps(document), mistyped=messages.append)
    assert messages == []
    assert task.duration == 2 and task.peak_memory == 1 and task.machine is None


def test_our_files_load_without_warning(tmp_path: Path) -> None:
    """A file taskmeter writes (figures, worker subtask, energy sources, extra fields) raises
    no warning in ``show`` or ``report``."""
    path = tmp_path / "ours.json"
    with Task("ours", file=path, note={"k": [1, 2]}) as root:
        with Task("child") as child:
            sum(range(1000))
        child.subprocess = True
        root.energy_sources = {"cpu": "rapl"}
        root.cpu_power = 1.5
    messages: list[str] = []
    load_task(path, mistyped=messages.append)
    assert messages == []
    shown = taskmeter("show", str(path), "--json")
    assert shown.returncode == 0 and shown.stderr == ""
    report = taskmeter("report", str(path), "-o", str(tmp_path / "ours.html"))
    assert report.returncode == 0 and "warning" not in report.stderr


def test_lenskit_files_load_without_warning(tmp_path: Path) -> None:
    """A file LensKit's own Task writes (with its own figures) raises no warning."""
    lenskit_tasks = pytest.importorskip("lenskit.logging.tasks")
    path = tmp_path / "lenskit.json"
    with lenskit_tasks.Task("lenskit root", file=path), lenskit_tasks.Task("lenskit child"):
        sum(range(10_000))
    messages: list[str] = []
    task = load_task(path, mistyped=messages.append)
    assert messages == []
    assert task.duration is not None and task.cpu_time is not None
    shown = taskmeter("show", str(path))
    assert shown.returncode == 0 and shown.stderr == ""


def test_a_mistyped_hostname_is_not_taken_for_this_host(tmp_path: Path) -> None:
    """``"hostname": 5`` is absent (``null``), not this host's name (the field's default):
    a running task with the pid of a process gone here is not judged by this host's
    processes, so it stays running while its file is fresh."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps({"label": "remote", "status": "running", "hostname": 5, "pid": gone.pid})
    )
    result = taskmeter("show", str(path), "--json")
    assert result.returncode == 0, result.stderr
    (task,) = json.loads(result.stdout)["tasks"]
    assert task["hostname"] is None
    assert task["interrupted"] is False and task["status"] == "running"
    assert "hostname is 5, not a string" in result.stderr


def test_every_task_field_is_checked_or_left_to_pydantic_on_purpose() -> None:
    """A field added to Task must be classified: checked for its JSON type before
    pydantic's lax conversion, or one whose other types pydantic refuses outright."""
    from taskmeter import Task
    from taskmeter._filetypes import _EXPECTED

    refused_by_pydantic = {"label", "task_id", "status", "subtasks", "energy_sources"}
    aliases = {"chassis_power"}  # system_power's other name, as LensKit's files have it
    assert set(Task.model_fields) == (set(_EXPECTED) - aliases) | refused_by_pydantic


def test_a_tree_written_task_by_task_reads_as_pydantic_writes_it() -> None:
    """The deep-tree writer gives the values model_dump_json gives (equal once parsed)."""
    import json

    from taskmeter import Task
    from taskmeter._deeptree import deep_tree_json

    root = Task.model_validate(
        {
            "label": "root",
            "status": "finished",
            "duration": 1.5,
            "energy_sources": {"cpu": "rapl"},
            "extra_field": [1, "two"],
            "subtasks": [
                {"label": "a", "status": "failed", "cpu_time": 0.25, "peak_memory": 1024},
                {"label": "b", "status": "finished", "subtasks": [{"label": "c"}]},
            ],
        }
    )
    assert json.loads(deep_tree_json(root)) == json.loads(root.model_dump_json())


@pytest.mark.parametrize("as_json", [False, True])
def test_show_gives_figures_out_of_range_as_absent_with_one_warning(
    tmp_path: Path, as_json: bool
) -> None:
    """``show``: an infinite duration, ``NaN`` and a negative CPU time are absent (``-``,
    ``null``), the other figures and tasks are shown, exit 0, one warning line."""
    path = tmp_path / "odd.json"
    path.write_text(
        '{"label": "root", "status": "finished", "duration": 2.5, "cpu_time": -5, '
        '"subtasks": [{"label": "inf", "status": "finished", "duration": Infinity, '
        '"cpu_time": 0.5}, {"label": "nan", "status": "finished", "peak_memory": NaN, '
        '"duration": 1.5}]}'
    )
    result = taskmeter("show", str(path), *(["--json"] if as_json else []))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"taskmeter: warning: {path}: task 'root' (no id): cpu_time is -5, not a finite "
        "number >= 0: shown as absent (and 2 more values out of range)"
    ]
    if as_json:
        root, inf, nan = json.loads(result.stdout)["tasks"]
        assert (root["duration_s"], root["cpu_time_s"]) == (2.5, None)
        assert (inf["duration_s"], inf["cpu_time_s"]) == (None, 0.5)
        assert (nan["duration_s"], nan["peak_memory_bytes"]) == (1.5, None)
    else:
        rows = result.stdout.splitlines()[1:]
        assert [re.split(r"\s{2,}", row.strip())[0] for row in rows] == ["root", "inf", "nan"]
        # Past each label, no figure reads "inf" or "nan": the bad ones show as "-".
        assert "inf" not in rows[1].strip()[3:].lower()
        assert "nan" not in rows[2].strip()[3:].lower()


def test_report_shows_a_file_with_figures_out_of_range(tmp_path: Path) -> None:
    """``report``: a negative CPU time is absent from the page's data, exit 0, one warning."""
    path = tmp_path / "odd.json"
    path.write_text('{"label": "root", "status": "finished", "duration": 2.0, "cpu_time": -5}')
    page = tmp_path / "odd.html"
    result = taskmeter("report", str(path), "-o", str(page))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("taskmeter: warning:") == 1
    assert "cpu_time is -5, not a finite number >= 0: shown as absent" in result.stderr
    data = json.loads(
        re.search(r'id="taskmeter-data"[^>]*>(.*?)</script>', page.read_text(), re.S)[1]  # type: ignore[index]
    )
    (root,) = data["tasks"]
    assert root[data["columns"].index("cpu")] is None
