"""Tasks of programs run under ``taskmeter run`` become subtasks of the run's root."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .runner import MIB, clean_environment, program, run_command

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def test_child_tasks_appear_under_the_root_as_subprocess_tasks(tmp_path: Path) -> None:
    """A child using Task: its task is a subprocess subtask of the root, in the same trace."""
    result, doc = run_command(tmp_path, program("uses_task.py"))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    [child] = doc["subtasks"]
    assert child["label"] == "child work"
    assert child["subprocess"] is True
    assert child["parent_id"] == doc["task_id"]
    assert child["trace_id"] == doc["trace_id"]
    assert [t["label"] for t in child["subtasks"]] == ["child step"]
    assert "child work" in result.stderr  # the summary shows the tree


def test_root_cpu_is_not_double_counted(tmp_path: Path) -> None:
    """The root's own CPU excludes the child's task; total_cpu() is the whole tree's."""
    from taskmeter.taskfile import load_task

    result, _ = run_command(tmp_path, program("uses_task.py"))
    assert result.returncode == 0, result.stderr
    root = load_task(tmp_path / "run.json")
    tree = root.tree_cpu_user_time + root.tree_cpu_system_time  # type: ignore[attr-defined]
    child = root.subtasks[0]
    assert child.cpu_time is not None and child.cpu_time >= 0.3
    assert root.total_cpu() == pytest.approx(tree, abs=1e-6)
    assert root.cpu_time == pytest.approx(tree - child.cpu_time, abs=1e-6)


def test_child_span_continues_the_run_trace(tmp_path: Path) -> None:
    """A child with an SDK: its top-level span's parent is the run's span (traceparent)."""
    spans = tmp_path / "spans.json"
    result, doc = run_command(tmp_path, program("uses_task.py", spans))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    child_span = json.loads(spans.read_text())
    assert child_span["trace_id"] == doc["trace_id"]
    assert child_span["parent_span_id"] == doc["span_id"]
    assert child_span["subprocess"] is True
    assert child_span["parent_task"] == doc["task_id"]
    assert doc["subtasks"][0]["span_id"] == child_span["span_id"]


def test_nested_run_nests_its_root_under_the_outer_run(tmp_path: Path) -> None:
    """taskmeter run -- taskmeter run -- prog: outer root > inner root > the program's task."""
    inner = [sys.executable, "-m", "taskmeter", "run", "-q", "--", *program("uses_task.py")]
    result, doc = run_command(tmp_path, inner)
    assert result.returncode == 0, result.stderr
    assert doc is not None
    [inner_root] = doc["subtasks"]
    assert inner_root["subprocess"] is True
    assert inner_root["parent_id"] == doc["task_id"]
    assert inner_root["trace_id"] == doc["trace_id"]
    assert [t["label"] for t in inner_root["subtasks"]] == ["child work"]
    assert inner_root["subtasks"][0]["parent_id"] == inner_root["task_id"]


def test_run_continues_a_trace_named_in_its_environment(tmp_path: Path) -> None:
    """A TRACEPARENT in taskmeter's own environment (a CI system's) is the root's parent."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    env = clean_environment({"TRACEPARENT": f"00-{trace_id}-00f067aa0ba902b7-01"})
    result, doc = run_command(tmp_path, ["true"], env=env)
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert doc["trace_id"] == trace_id
    assert doc["span_id"] != "00f067aa0ba902b7"


def test_summary_shows_the_first_tasks_of_a_big_tree(tmp_path: Path) -> None:
    """A command reporting 300 tasks: the summary shows 20 rows and how many more there
    are (it printed every one, a line each); the task file keeps them all."""
    script = "from taskmeter import Task\nfor i in range(300):\n    with Task(f'step {i}'): pass\n"
    result, doc = run_command(tmp_path, [sys.executable, "-c", script])
    assert result.returncode == 0, result.stderr
    assert doc is not None and len(doc["subtasks"]) == 300
    tree = result.stderr.split("\n\n", 1)[1].splitlines()
    assert len(tree) == 1 + 20 + 1  # the heading, 20 tasks, the line saying what is left
    assert tree[1].startswith("python")
    assert tree[-2].lstrip().startswith("step 18 ")
    assert tree[-1] == f"  ... and {301 - 20} more (taskmeter show {tmp_path / 'run.json'})"


def test_peak_of_one_process_survives_the_resets_of_its_tasks(tmp_path: Path) -> None:
    """A child whose tasks reset its RSS mark (400 MiB, then 100 MiB): wait4 gives only
    the mark since the last reset, but the run's one-process peak is the 400 MiB task's."""
    baseline = tmp_path / "baseline"
    result, doc = run_command(
        tmp_path, program("resets_peak.py", baseline, 400, 100, 2.8), "--interval", "30"
    )
    assert result.returncode == 0, result.stderr
    assert doc is not None
    expected = 400 * MIB + int(baseline.read_text())
    big = next(task for task in doc["subtasks"] if task["label"] == "big")
    assert big["peak_memory"] == pytest.approx(expected, rel=0.05)
    assert doc["peak_memory"] == pytest.approx(expected, rel=0.05)
    assert "peak_memory_at_most" not in doc
    shown = f"{doc['peak_memory'] / MIB:.1f} MiB"
    assert any(
        "peak RSS, one process" in line and shown in line for line in result.stderr.splitlines()
    ), result.stderr


def test_peak_of_one_process_outside_its_tasks_survives_their_resets(tmp_path: Path) -> None:
    """400 MiB used outside any task, then a 100 MiB task, whose start resets the mark:
    no task saw the peak, but the process publishes its lifetime peak for the run."""
    baseline = tmp_path / "baseline"
    result, doc = run_command(
        tmp_path,
        program("resets_peak.py", baseline, 400, 100, 2.8, "outside"),
        "--interval",
        "30",
    )
    assert result.returncode == 0, result.stderr
    assert doc is not None
    expected = 400 * MIB + int(baseline.read_text())
    [small] = doc["subtasks"]
    assert small["peak_memory"] < expected / 2
    assert doc["peak_memory"] == pytest.approx(expected, rel=0.05)
