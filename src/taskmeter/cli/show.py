"""``taskmeter show``: a task file as a table, or as JSON for scripts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..formats import finite
from ._common import (
    EXIT_BAD_FILE,
    EXIT_NO_MATCH,
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    EXIT_USAGE,
    error,
    say,
    write_stdout,
)
from ._select import (
    Interruptions,
    Selected,
    add_stale_after,
    label_matcher,
    liveness_of,
    load_or_explain,
    select,
    stale_after_problem,
)

if TYPE_CHECKING:
    from ..task import Task

STATUSES = ("pending", "running", "finished", "failed", "cancelled", "interrupted", "stopped")

DESCRIPTION = """\
Show the task tree of FILE (written by taskmeter or by LensKit) as a table:
label, status, duration, CPU time (with worker processes), peak memory, peak
GPU memory and energy.  '-' marks a figure that was not measured.  Siblings
are listed by start time (tasks without one last, in the file's order): worker
processes' tasks are recorded when they are collected, not when they started.

Energy is the system's where measured, else CPU + GPU; a task lacking a domain
other tasks of the file have (its GPU could not be read) shows what it has,
marked '*' and explained under the table (--json gives each domain).

A task whose status is 'running' but whose process is gone (killed, or the
machine restarted) is shown as 'interrupted', with the figures of its last
refresh: on this host when its process no longer exists (or its id now
belongs to a later process); for tasks of other hosts when the file has not
been rewritten for --stale-after seconds.  One whose process exists but is
stopped (Ctrl-Z, a background job that read the terminal, SIGSTOP) is shown
as 'stopped'; the file still says 'running'.
"""

EPILOG = """\
examples:
  taskmeter show runs/train.json
  taskmeter show runs/train.json --depth 1
  taskmeter show runs/train.json --label 'epoch*' --json | jq '.tasks[].cpu_total_s'

exit status:
  0  tasks shown
  1  no task matched --label/--status
  2  wrong options
  3  FILE is missing, empty, unreadable or not a task file
  4  the output could not be written (a full disk, say)
  Ctrl-C: taskmeter ends quietly, by SIGINT (its shell reports 130)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``show`` verb."""
    parser = subparsers.add_parser(
        "show",
        help="show a task file as a table (or JSON)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="a task file ('-' reads standard input)")
    parser.add_argument(
        "-d", "--depth", type=int, metavar="N", help="show N levels below the root (0: the root)"
    )
    parser.add_argument(
        "-l",
        "--label",
        metavar="PATTERN",
        help="only tasks whose label contains PATTERN as written, or matches it as a "
        "glob (with * ? [...]); case-insensitive; their parents are shown too, marked ·",
    )
    parser.add_argument("-s", "--status", choices=STATUSES, help="only tasks with this status")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the matching tasks as JSON, one object each, in the file's order "
        "(the table lists siblings by start time), with exact figures",
    )
    add_stale_after(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the table or the JSON; returns the exit status (see the epilog)."""
    if args.depth is not None and args.depth < 0:
        error(f"--depth must be 0 or more, not {args.depth}")
        return EXIT_USAGE
    problem = stale_after_problem(args.stale_after)
    if problem:
        error(problem)
        return EXIT_USAGE
    root = load_or_explain(args.file)
    if root is None:
        return EXIT_BAD_FILE
    reason_of = Interruptions(liveness_of(args.file, args.stale_after))
    status_of = reason_of.status_of
    rows = select(
        root,
        max_depth=args.depth,
        label=label_matcher(args.label),
        status=args.status,
        status_of=status_of,
        by_start=not args.json,
    )
    matched = [row for row in rows if row.matched]
    if args.json:
        from ..task import TotalCpu

        total_cpu = TotalCpu()
        tasks = (
            row_json(row, reason_of(row.task), reason_of.stopped(row.task), total_cpu)
            for row in matched
        )
        if not write_stdout(json_document(args.file, tasks)):
            return EXIT_OUTPUT_FAILED
    elif matched and not write_stdout(format_table_of(root, rows, status_of) + "\n"):
        return EXIT_OUTPUT_FAILED
    if not args.json:
        reason_of.report(row.task for row in rows)
    if not matched:
        say(f"taskmeter: no task in {args.file} matches the filters")
        return EXIT_NO_MATCH
    return EXIT_OK


def format_table_of(root: Task, rows: list[Selected], status_of: Callable[[Task], str]) -> str:
    """:func:`format_rows` with the energy domains of ``root``'s whole tree (a filter
    shows some of its tasks; a partial figure is partial beside the others as well)."""
    from ..render import tree_energy_domains

    return format_rows(rows, status_of, tree_energy_domains(root))


def json_document(file: str, tasks: Iterable[dict[str, Any]]) -> str:
    """``{"file": ..., "tasks": [...]}`` with a task a line.

    Each task is encoded by :func:`json.dumps` without indentation, which runs
    in C: indenting the whole document runs the encoder in Python, ten times
    slower (8 s and 1 GB for a file of 100,000 tasks).
    """
    lines = ",\n".join(f"    {json.dumps(task, allow_nan=False)}" for task in tasks)
    return (
        f'{{\n  "file": {json.dumps(file)},\n  "tasks": [\n'
        + (f"{lines}\n" if lines else "")
        + "  ]\n}\n"
    )


def row_json(
    row: Selected,
    interrupted: str | None = None,
    stopped: str | None = None,
    total_cpu: Callable[[Task], float | None] | None = None,
) -> dict[str, Any]:
    """One task as a flat JSON object, units in the names.

    ``interrupted`` is why a task whose status is ``running`` is not running
    any more (it is kept as ``interrupted_reason``); ``stopped``, why it is
    not running now although its process exists (``stopped_reason``).
    ``total_cpu``: a :class:`~taskmeter.task.TotalCpu` shared by the rows of a tree
    (by default, one for this row alone).
    """
    from ..render import peak_memory_bound
    from ..task import TotalCpu

    if total_cpu is None:
        total_cpu = TotalCpu()

    task = row.task
    energy = {
        domain: finite(value)
        for domain, value in (
            ("cpu", task.cpu_power),
            ("gpu", task.gpu_power),
            ("system", task.system_power),
        )
        if value is not None
    }
    return {
        "depth": row.depth,
        "path": list(row.path),
        "label": task.label,
        "task_id": str(task.task_id),
        "parent_id": None if task.parent_id is None else str(task.parent_id),
        "status": task.status.value,
        "interrupted": interrupted is not None,
        "interrupted_reason": interrupted,
        "stopped": stopped is not None,
        "stopped_reason": stopped,
        "subprocess": task.subprocess,
        "hostname": task.hostname or None,
        "machine": task.machine,
        "pid": task.pid,
        "start_time": finite(task.start_time),
        "finish_time": finite(task.finish_time),
        "duration_s": finite(task.duration),
        "cpu_time_s": finite(task.cpu_time),
        "cpu_user_time_s": finite(task.cpu_user_time),
        "cpu_system_time_s": finite(task.cpu_system_time),
        "cpu_total_s": finite(total_cpu(task)),
        "peak_memory_bytes": task.peak_memory,
        "peak_memory_at_most_bytes": None
        if task.peak_memory is not None
        else peak_memory_bound(task),
        "peak_gpu_memory_bytes": task.peak_gpu_memory,
        "energy_j": energy,
        "energy_sources": {domain: task.energy_sources.get(domain) for domain in energy},
        "subtask_count": len(task.subtasks),
        "extra": extra_fields(task),
    }


def extra_fields(task: Task) -> dict[str, Any]:
    """The task's extra fields (user data), as the file has them; one that JSON cannot
    hold as it is (a ``NaN`` in it) is given as text, as the report shows it."""
    from ..task import Task

    extra: dict[str, Any] = {}
    for key, value in (task.model_extra or {}).items():
        if key in Task.model_fields:
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            try:
                value = json.dumps(value, default=str)
            except (ValueError, RecursionError):  # nested past what JSON can write here
                value = None
        extra[key] = value
    return extra


def format_rows(
    rows: list[Selected],
    status_of: Callable[[Task], str] | None = None,
    energy_domains: frozenset[str] = frozenset(),
) -> str:
    """The rows as an aligned table; ancestors shown only for context are marked ``·``.

    ``status_of`` gives the status shown (default: the task's own); ``energy_domains``
    are those measured in the whole file (:func:`taskmeter.render.tree_energy_domains`):
    a task lacking one of them has its energy marked partial, explained under the table.
    """
    from ..render import (
        energy_footnote,
        energy_total,
        figure_cells,
        format_table,
        indent,
        table_label,
    )
    from ..task import TotalCpu

    total_cpu = TotalCpu()
    table: list[tuple[str, ...]] = []
    energies = []
    for row in rows:
        task = row.task
        marker = "" if row.matched else "· "
        energy = energy_total(task, energy_domains)
        energies.append(energy)
        table.append(
            (
                f"{indent(row.depth)}{marker}{table_label(task.label)}",
                task.status.value if status_of is None else status_of(task),
                *figure_cells(task, total_cpu, energy),
            )
        )
    return format_table(table) + energy_footnote(energies)
