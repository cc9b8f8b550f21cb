"""The report's tasks as a plain HTML table, for a reader whose browser runs no JavaScript."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from itertools import islice

from ..render import (
    INDENT_LEVELS,
    display_walk,
    energy_footnote,
    energy_total,
    figure_cells,
    terminal_text,
)
from ..task import Task, TotalCpu

NOSCRIPT_ROWS = 200
"""Tasks the plain table holds at most (the first ones, depth first)."""

_HEADINGS = ("task", "status", "duration", "CPU", "peak memory", "GPU memory", "energy")


def noscript_table(
    root: Task,
    count: int,
    interrupted: Callable[[Task], str | None] | None = None,
    limit: int = NOSCRIPT_ROWS,
    *,
    stopped: Callable[[Task], str | None] | None = None,
    energy_domains: frozenset[str] = frozenset(),
    total_cpu: TotalCpu | None = None,
) -> str:
    """The first ``limit`` of the ``count`` tasks of ``root``'s tree as an HTML table, with
    the statuses and figures ``taskmeter show`` prints (every text escaped; ``interrupted``
    and ``stopped`` as for :func:`taskmeter.report.report_data`), its note on partial energy
    included (``energy_domains``: those of the whole tree, see
    :func:`taskmeter.render.tree_energy_domains`).  ``total_cpu``: a
    :class:`~taskmeter.task.TotalCpu` the page's data used already (default: a new one)."""
    lines = [
        '<section class="plain" aria-label="tasks">',
        "<p>Without JavaScript the report shows its tasks as a table"
        + (f" (the first {limit} of {count}; 'taskmeter show' prints all)" if count > limit else "")
        + ".</p>",
        "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in _HEADINGS) + "</tr></thead><tbody>",
    ]
    energies = []
    if total_cpu is None:
        total_cpu = TotalCpu()
    for depth, task in islice(display_walk(root), limit):
        energy = energy_total(task, energy_domains)
        energies.append(energy)
        status = task.status.value
        if interrupted is not None and interrupted(task):
            status = "interrupted"
        elif stopped is not None and stopped(task):
            status = "stopped"
        cells = figure_cells(task, total_cpu, energy)
        lines.append(
            f'<tr><td style="padding-left:{8 + min(depth, INDENT_LEVELS) * 14}px">'
            + (f"<small>{depth}</small> " if depth > INDENT_LEVELS else "")
            + f"{escape(terminal_text(task.label))}</td><td>{status}</td>"
            + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + "</tr>"
        )
    lines.append("</tbody></table>")
    note = energy_footnote(energies).strip()
    if note:
        lines.append(f'<p class="note">{escape(note)}</p>')
    lines.append("</section>")
    return "\n".join(lines)
