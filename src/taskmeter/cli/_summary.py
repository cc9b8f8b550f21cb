"""The table ``taskmeter run`` prints when the command ends."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..formats import friendly_bytes, friendly_energy
from ._runfigures import RunFigures

_ENERGY_NAMES = {"cpu": "energy, CPUs", "gpu": "energy, GPUs", "system": "energy, system"}


def command_text(argv: Sequence[str], limit: int = 60, *, escaped: bool = False) -> str:
    """The command as a shell would show it, shortened to ``limit`` characters.

    ``escaped``: for a terminal line, control characters of the arguments
    (newlines, tabs, escape sequences) written escaped inside the shell quotes
    (``'a\\nb'``), as every line taskmeter prints has them.
    """
    text = shlex.join(argv)
    if escaped:
        from ..render import terminal_text

        text = terminal_text(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def program_name(argv: Sequence[str]) -> str:
    """The command's program, without its directory or arguments (``python``)."""
    name = argv[0].rstrip("/").rpartition("/")[2] if argv else ""
    return name or "command"


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"


def _cores_busy(cpu_s: float, figures: RunFigures) -> str:
    """The CPU time over the time it was counted in: the wall time, or longer where
    processes the command left ended after it (and were counted)."""
    span_s = max(figures.cpu_span_s, figures.duration_s)
    if span_s <= 0:
        return ""
    if span_s > figures.duration_s:
        over = f"over {_seconds(span_s)}, until the last process counted ended"
    else:
        over = "over the wall time"
    return f"{cpu_s / span_s:.2f} cores busy on average {over}"


def summary_lines(
    figures: RunFigures,
    *,
    sample_interval_s: float,
    subtasks: int = 0,
    task_file: str | None = None,
    trace_id: str | None = None,
) -> list[str]:
    """The summary: one figure a line, named so a newcomer can read it."""
    rows: list[tuple[str, str, str]] = []
    cpu = figures.cpu_user_s + figures.cpu_system_s
    rows.append(("wall time", _seconds(figures.duration_s), ""))
    rows.append(("CPU time, user", _seconds(figures.cpu_user_s), "all processes of the command"))
    rows.append(("CPU time, system", _seconds(figures.cpu_system_s), ""))
    rows.append(("CPU time, total", _seconds(cpu), _cores_busy(cpu, figures)))
    if figures.peak_process_rss_bytes is None and figures.peak_process_rss_bound_bytes:
        rows.append(
            (
                "peak RSS, one process",
                f"<= {friendly_bytes(figures.peak_process_rss_bound_bytes)}",
                "below taskmeter's own size, which the kernel charges the command at exec",
            )
        )
    else:
        rows.append(
            (
                "peak RSS, one process",
                friendly_bytes(figures.peak_process_rss_bytes),
                "largest peak of any single process (kernel high-water mark)",
            )
        )
    rows.append(
        (
            "peak RSS, all processes",
            friendly_bytes(figures.peak_tree_rss_bytes),
            f"peak of their summed RSS, sampled every {sample_interval_s:g} s or so",
        )
    )
    probe = figures.probe_figures
    if probe is not None and probe.peak_gpu_memory_bytes is not None:
        rows.append(
            (
                "peak GPU memory",
                friendly_bytes(probe.peak_gpu_memory_bytes),
                f"all processes, through NVML, sampled every {sample_interval_s:g} s or so",
            )
        )
    for domain, joules in probe.energy_j.items() if probe is not None else ():
        source = probe.energy_source.get(domain, "") if probe is not None else ""
        rows.append(
            (_ENERGY_NAMES.get(domain, f"energy, {domain}"), friendly_energy(joules), source)
        )
    if subtasks:
        rows.append(("subtasks", str(subtasks), "tasks the command's processes reported"))
    if task_file:
        rows.append(("task file", task_file, ""))
    if trace_id:
        rows.append(("trace id", trace_id, ""))

    name_width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"taskmeter: {command_text(figures.argv, escaped=True)} {figures.describe_end()}"]
    for name, value, note in rows:
        line = f"  {name.ljust(name_width)}  {value.rjust(value_width)}"
        lines.append(f"{line}  {note}".rstrip())
    if figures.left_running:
        count = len(figures.left_running)
        pids = ", ".join(str(pid) for pid in figures.left_running[:5])
        lines.append(
            f"  note: {count} process{'es' if count != 1 else ''} the command started "
            f"{'are' if count != 1 else 'is'} still running (pid {pids}); their CPU time is "
            "not counted (--wait-all waits for them)"
        )
    return lines
