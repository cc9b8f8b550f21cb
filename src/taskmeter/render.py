"""A task tree as plain text, for terminals and logs."""

from __future__ import annotations

from .formats import friendly_bytes, friendly_energy, friendly_seconds
from .task import Task


def _energy(task: Task) -> str:
    total = sum(v for v in (task.cpu_power, task.gpu_power, task.system_power) if v is not None)
    if task.cpu_power is None and task.gpu_power is None and task.system_power is None:
        return "-"
    if task.system_power is not None:
        return friendly_energy(task.system_power)
    return friendly_energy(total)


def format_tree(task: Task, *, max_depth: int | None = None) -> str:
    """Render ``task`` and its subtasks as an indented table.

    Columns: label, status, duration, CPU time (with worker processes),
    peak memory, peak GPU memory and energy; ``-`` marks a figure that was
    not measured.
    """
    rows: list[tuple[str, ...]] = [
        ("task", "status", "duration", "cpu", "peak mem", "gpu mem", "energy")
    ]
    for depth, sub in task.walk():
        if max_depth is not None and depth > max_depth:
            continue
        indent = "  " * depth
        rows.append(
            (
                f"{indent}{sub.label}",
                sub.status.value,
                friendly_seconds(sub.duration),
                friendly_seconds(sub.total_cpu()),
                friendly_bytes(sub.peak_memory),
                friendly_bytes(sub.peak_gpu_memory),
                _energy(sub),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells.extend(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
