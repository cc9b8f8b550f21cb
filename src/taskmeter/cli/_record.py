"""The task record of a run: the command as the root task, its processes' tasks below.

The root's CPU figures follow the task model: ``cpu_time`` (and its user and
system parts) is what the command's processes used *outside* the tasks they
reported as subtasks (``subprocess=True``), and ``total_cpu()`` adds those
back, so it equals what the kernel accounted to the whole process tree.  The
tree's own figures are kept as extra fields (``tree_cpu_user_time``,
``tree_cpu_system_time``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from .._log import debug_once
from ..figures import Figures
from ..task import Task, TaskStatus
from ._runfigures import RunFigures
from ._summary import program_name


def worker_cpu_split(subtasks: Iterable[Task]) -> tuple[float, float]:
    """User and system CPU of the worker-process tasks (``subprocess=True``) below,
    found as :meth:`Task.total_cpu` finds them; a worker whose split is unknown
    counts as user time."""
    user = system = 0.0
    stack = list(subtasks)
    while stack:
        task = stack.pop()
        if not task.subprocess:
            stack.extend(task.subtasks)
            continue
        if task.cpu_user_time is not None and task.cpu_system_time is not None:
            user += task.cpu_user_time
            system += task.cpu_system_time
        elif task.cpu_time is not None:
            user += task.cpu_time
        nested_user, nested_system = worker_cpu_split(task.subtasks)
        user += nested_user
        system += nested_system
    return user, system


def build_root(
    figures: RunFigures,
    *,
    label: str,
    task_id: UUID,
    trace_id: int | None,
    span_id: int | None,
    parent_id: UUID | None,
    subtasks: Sequence[Task],
    finished: bool = True,
    record_command: bool = False,
) -> Task:
    """The run's root task (``finished=False``: a snapshot of a running command).

    The command's arguments may hold secrets: they are recorded (``command``)
    only with ``record_command``; otherwise only the program's name is
    (``executable``).
    """
    worker_user, worker_system = worker_cpu_split(subtasks)
    own_user = figures.cpu_user_s - worker_user
    own_system = figures.cpu_system_s - worker_system
    if finished and (own_user < -0.01 or own_system < -0.01):
        debug_once(
            "run.cpu.negative",
            "subtasks report more CPU than the kernel accounted to the command's processes "
            "(some were not waited for?); its own CPU time is taken as 0",
        )
    probe = figures.probe_figures or Figures()
    data: dict[str, Any] = {
        "task_id": task_id,
        "parent_id": parent_id,
        "subprocess": parent_id is not None,
        "status": TaskStatus(figures.status) if finished else TaskStatus.RUNNING,
        "start_time": figures.start_time,
        "finish_time": figures.finish_time if finished else None,
        "duration": figures.duration_s,
        "cpu_time": max(own_user, 0.0) + max(own_system, 0.0),
        "cpu_user_time": max(own_user, 0.0),
        "cpu_system_time": max(own_system, 0.0),
        "peak_memory": figures.peak_process_rss_bytes,
        "peak_gpu_memory": probe.peak_gpu_memory_bytes,
        "cpu_power": probe.energy_j.get("cpu"),
        "gpu_power": probe.energy_j.get("gpu"),
        "system_power": probe.energy_j.get("system"),
        "energy_sources": dict(probe.energy_source),
        "pid": figures.pid,
        "trace_id": f"{trace_id:032x}" if trace_id else None,
        "span_id": f"{span_id:016x}" if span_id else None,
        "subtasks": list(subtasks),
        # The run's own figures (extra fields; LensKit keeps them as extras too).
        "executable": program_name(figures.argv),
        "tree_cpu_user_time": figures.cpu_user_s,
        "tree_cpu_system_time": figures.cpu_system_s,
        "tree_peak_memory": figures.peak_tree_rss_bytes,
    }
    if record_command:
        data["command"] = list(figures.argv)
    if figures.peak_process_rss_bound_bytes is not None:
        data["peak_memory_at_most"] = figures.peak_process_rss_bound_bytes
    if finished:
        data["exit_code"] = figures.exit_code
        data["exit_signal"] = figures.signal_name
        if figures.left_running:
            data["left_running"] = figures.left_running
    return Task(label, **data)


def span_attributes(root: Task) -> dict[str, Any]:
    """The span attributes of the run's root task: every task's, plus the process's."""
    attributes = root._span_attributes()
    command = getattr(root, "command", None)
    if isinstance(command, list) and command:
        attributes["process.command_args"] = [str(part) for part in command]
    executable = getattr(root, "executable", None)
    if isinstance(executable, str) and executable:
        attributes["process.executable.name"] = executable
    exit_code = getattr(root, "exit_code", None)
    if exit_code is not None:
        attributes["process.exit.code"] = exit_code
    return attributes
