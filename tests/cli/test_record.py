"""The run's root record: CPU split between the root and its worker subtasks."""

from __future__ import annotations

from uuid import uuid4

from taskmeter import Task
from taskmeter.cli._record import build_root, worker_cpu_split
from taskmeter.cli._runfigures import RunFigures


def worker(label: str, user: float, system: float, *subtasks: Task) -> Task:
    return Task.model_validate(
        {
            "label": label,
            "subprocess": True,
            "cpu_time": user + system,
            "cpu_user_time": user,
            "cpu_system_time": system,
            "subtasks": list(subtasks),
        }
    )


def test_worker_split_counts_nested_workers_once() -> None:
    """Workers below workers add up, as Task.total_cpu() counts them."""
    inner = worker("inner", 1.0, 0.5)
    outer = worker("outer", 2.0, 0.25, inner)
    in_process = Task.model_validate({"label": "step", "cpu_time": 9.0, "subtasks": [outer]})
    assert worker_cpu_split([in_process]) == (3.0, 0.75)


def test_root_cpu_excludes_workers_and_total_adds_them_back() -> None:
    """cpu_time is the tree's minus the workers'; total_cpu() is the tree's."""
    figures = RunFigures(["prog"], 123)
    figures.cpu_user_s, figures.cpu_system_s = 5.0, 1.0
    figures.duration_s = 3.0
    sub = worker("child", 2.0, 0.5)
    root = build_root(
        figures,
        label="prog",
        task_id=uuid4(),
        trace_id=1,
        span_id=2,
        parent_id=None,
        subtasks=[sub],
    )
    assert root.cpu_user_time == 3.0 and root.cpu_system_time == 0.5
    assert root.total_cpu() == 6.0
    assert root.status.value == "finished"
    assert root.trace_id == f"{1:032x}"
