"""A task tree as plain text, for terminals and logs.

Labels come from task files that may have been written anywhere: control and
format characters (escape sequences, line breaks, bidirectional overrides)
are shown escaped (``\\x1b``, ``\\n``, ``\\u202e``), never sent to the
terminal, and columns are aligned by the width a terminal gives each
character (two columns for East Asian wide characters, none for combining
marks).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from .figures import ENERGY_DOMAINS
from .formats import finite, friendly_bytes, friendly_energy, friendly_seconds
from .propagation import start_order
from .task import Task, TotalCpu

COLUMNS = ("task", "status", "duration", "cpu", "peak mem", "gpu mem", "energy")
"""The headings of a task table."""

LABEL_COLUMNS = 120
"""Terminal columns a label takes at most in a table (longer ones are cut, ending in ``…``);
as wide as the longest label ``taskmeter run`` gives a command line."""

INDENT_LEVELS = 12
"""Levels a table indents (two columns each); a row deeper than that is indented as level
12 and starts with its level in brackets (``[40] label``), so that a tree 127 levels deep
stays as wide as one 12 levels deep."""

_SHOWN_AS_IS = frozenset("\u200c\u200d")  # joiners: parts of emoji and scripts, harmless


def display_order(subtasks: Sequence[Task]) -> Sequence[Task]:
    """``subtasks`` in the order tables and reports show them: by start time.

    A file lists a task's subtasks in the order they were recorded, and worker
    processes' tasks are added when they are collected: one started late can come
    before those started early.  The sort is stable; tasks without a start time
    keep their order, after the others.  The file's order is left as it is.
    """
    previous = -math.inf
    for sub in subtasks:  # most lists are in order already: no copy then
        start = sub.start_time
        if start is None or start < previous:
            break
        previous = start
    else:
        return subtasks
    return sorted(subtasks, key=start_order)


def display_walk(task: Task) -> Iterator[tuple[int, Task]]:
    """``task`` and all its subtasks, depth first, with their depth, siblings in
    :func:`display_order`."""
    stack: list[tuple[int, Task]] = [(0, task)]
    while stack:
        depth, current = stack.pop()
        yield depth, current
        stack.extend((depth + 1, sub) for sub in reversed(display_order(current.subtasks)))


def terminal_text(text: str) -> str:
    """``text`` safe to print on one terminal line: control and format characters escaped.

    C0 and C1 controls, line and paragraph separators and format characters
    (bidirectional overrides, zero-width spaces) become ``\\xNN``/``\\uNNNN``
    (``\\n``, ``\\r``, ``\\t`` as such); a backslash stays a backslash.
    """
    if text.isprintable():
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char.isprintable() or char == " " or char in _SHOWN_AS_IS:
        return char
    if unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return char  # unassigned or private-use: printable enough, and not a control
    escaped = repr(char)[1:-1]
    return escaped if escaped != char else f"\\u{ord(char):04x}"


def indent(depth: int) -> str:
    """The indentation of a table row ``depth`` levels below the root (see
    :data:`INDENT_LEVELS`)."""
    if depth <= INDENT_LEVELS:
        return "  " * depth
    return "  " * INDENT_LEVELS + f"[{depth}] "


def display_width(text: str) -> int:
    """The columns a terminal gives ``text``: wide characters 2, combining marks 0."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Mn"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def table_label(label: str, limit: int = LABEL_COLUMNS) -> str:
    """``label`` as :func:`terminal_text` makes it, cut to ``limit`` terminal columns
    (the last one an ellipsis) when it is wider, so that one label cannot make every
    row of a table that wide."""
    text = terminal_text(label)
    if len(text) * 2 <= limit or display_width(text) <= limit:
        return text
    kept: list[str] = []
    width = 0
    for char in text:
        width += display_width(char)
        if width > limit - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def format_table(rows: Sequence[Sequence[str]], headings: Sequence[str] = COLUMNS) -> str:
    """``rows`` under ``headings``: the first column left-aligned, the others right-aligned.

    The cells are made safe with :func:`terminal_text` and aligned by
    :func:`display_width`.
    """
    table = [[terminal_text(cell) for cell in row] for row in (headings, *rows)]
    widths = [max(display_width(line[i]) for line in table) for i in range(len(headings))]
    lines = []
    for line in table:
        label = line[0] + " " * (widths[0] - display_width(line[0]))
        cells = [label]
        cells.extend(
            " " * (width - display_width(cell)) + cell
            for cell, width in zip(line[1:], widths[1:], strict=True)
        )
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


PARTIAL_ENERGY_MARK = "*"
"""Ends the energy of a task that lacks a domain other tasks of its tree have (see
:func:`energy_total`); :func:`partial_energy_note` explains it under a table."""

_DOMAIN_NAMES = {"cpu": "CPU", "gpu": "GPU", "system": "system"}


@dataclass(frozen=True, slots=True)
class EnergyTotal:
    """A task's energy as the ``energy`` column shows it.

    ``joules`` is the system's energy where it was measured, else CPU plus GPU
    energy (``None`` where neither, or where the sum is not a finite number);
    ``missing`` the domains other tasks of the tree have that this task lacks
    (empty when ``joules`` is the whole figure).
    """

    joules: float | None
    missing: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        """Whether the figure lacks a domain other tasks of the tree have."""
        return self.joules is not None and bool(self.missing)

    def text(self) -> str:
        """The figure as tables write it: ``100.0 J``, ``100.0 J*`` when partial, ``-``."""
        shown = friendly_energy(self.joules)
        return shown + PARTIAL_ENERGY_MARK if self.partial else shown


def energy_domains(task: Task) -> frozenset[str]:
    """The energy domains (``cpu``, ``gpu``, ``system``) measured for ``task``."""
    values = (("cpu", task.cpu_power), ("gpu", task.gpu_power), ("system", task.system_power))
    return frozenset(domain for domain, joules in values if joules is not None)


def tree_energy_domains(root: Task) -> frozenset[str]:
    """The energy domains measured for any task of ``root``'s tree."""
    found: set[str] = set()
    for _, task in root.walk():
        found.update(energy_domains(task))
        if len(found) == len(ENERGY_DOMAINS):
            break
    return frozenset(found)


def energy_total(task: Task, tree_domains: frozenset[str] = frozenset()) -> EnergyTotal:
    """The one rule behind every ``energy`` column (``show``, ``run``, the report).

    The system's energy where it was measured (it is the whole); else the sum of
    CPU and GPU energy, partial where ``tree_domains`` (see
    :func:`tree_energy_domains`) holds a domain this task lacks: a task whose GPU
    could not be read beside siblings whose GPU was, or whose system energy is
    missing beside tasks that have it.  A tree where no task has a GPU figure (a
    machine without one) gives whole CPU totals.
    """
    if task.system_power is not None:
        return EnergyTotal(finite(task.system_power))
    parts = [joules for joules in (task.cpu_power, task.gpu_power) if joules is not None]
    if not parts:
        return EnergyTotal(None)
    missing = tuple(d for d in ENERGY_DOMAINS if d in tree_domains - energy_domains(task))
    return EnergyTotal(finite(sum(parts)), missing)


def partial_energy_note(missing: Iterable[str]) -> str:
    """The line under a table that explains :data:`PARTIAL_ENERGY_MARK`, for tasks lacking
    the ``missing`` domains: ``* partial energy: lacks the GPU energy other tasks have``."""
    wanted = set(missing)
    names = " or ".join(_DOMAIN_NAMES[d] for d in ENERGY_DOMAINS if d in wanted)
    return f"{PARTIAL_ENERGY_MARK} partial energy: lacks the {names} energy other tasks have"


def peak_memory_text(task: Task) -> str:
    """The task's peak memory; ``<= X`` where only a bound is known (``taskmeter run``
    records ``peak_memory_at_most`` when the command's peak may be taskmeter's own size)."""
    if task.peak_memory is not None:
        return friendly_bytes(task.peak_memory)
    bound = peak_memory_bound(task)
    return friendly_bytes(None) if bound is None else "<= " + friendly_bytes(bound)


def peak_memory_bound(task: Task) -> float | None:
    """The bound ``taskmeter run`` recorded on the task's peak memory
    (``peak_memory_at_most``), or ``None`` where there is none (or it is not a size)."""
    bound = (task.model_extra or {}).get("peak_memory_at_most")
    if isinstance(bound, int | float) and not isinstance(bound, bool) and 0 <= bound < math.inf:
        return bound
    return None


def format_tree(task: Task, *, max_depth: int | None = None, max_rows: int | None = None) -> str:
    """Render ``task`` and its subtasks as an indented table.

    Columns: label, status, duration, CPU time (with worker processes),
    peak memory, peak GPU memory and energy (see :func:`energy_total`; a figure
    lacking a domain other tasks have ends in :data:`PARTIAL_ENERGY_MARK`, explained
    by a line under the table); ``-`` marks a figure that was not measured.  Labels
    are shown as :func:`table_label` makes them (escaped, at most
    :data:`LABEL_COLUMNS` wide).
    ``max_depth`` limits the levels shown below ``task``, ``max_rows`` the
    number of tasks (the first ones, depth first; siblings by start time, see
    :func:`display_order`).
    """
    domains = tree_energy_domains(task)
    rows: list[tuple[str, ...]] = []
    energies: list[EnergyTotal] = []
    total_cpu = TotalCpu()
    for depth, sub in display_walk(task):
        if max_depth is not None and depth > max_depth:
            continue
        if max_rows is not None and len(rows) >= max_rows:
            break
        energy = energy_total(sub, domains)
        energies.append(energy)
        rows.append(
            (
                f"{indent(depth)}{table_label(sub.label)}",
                sub.status.value,
                *figure_cells(sub, total_cpu, energy),
            )
        )
    return format_table(rows) + energy_footnote(energies)


def figure_cells(
    task: Task, total_cpu: Callable[[Task], float | None], energy: EnergyTotal
) -> tuple[str, str, str, str, str]:
    """The figures of ``task`` as every task table writes them (the terminal's, ``show``'s,
    the report's plain table): duration, CPU time with worker processes (``total_cpu``,
    a :class:`~taskmeter.task.TotalCpu` shared by the table's rows), peak memory, peak GPU
    memory and ``energy`` (see :func:`energy_total`); ``-`` for a figure not measured, or
    not a finite number."""
    return (
        friendly_seconds(finite(task.duration)),
        friendly_seconds(finite(total_cpu(task))),
        peak_memory_text(task),
        friendly_bytes(task.peak_gpu_memory),
        energy.text(),
    )


def energy_footnote(energies: Iterable[EnergyTotal]) -> str:
    """A line break and :func:`partial_energy_note` where one of ``energies`` is partial
    (to end a table with), else nothing."""
    missing = {domain for energy in energies if energy.partial for domain in energy.missing}
    return "\n" + partial_energy_note(missing) if missing else ""
