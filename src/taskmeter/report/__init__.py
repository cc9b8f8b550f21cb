"""A self-contained HTML report of a task tree.

One file, with its CSS, JavaScript and data inline: it opens from disk with
no network.  The page draws a timeline of the tree and per-task resource
bars; it renders only the rows in view, so trees of many thousands of tasks
stay fast, and levels are opened until about 400 rows show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

from ..__about__ import __version__
from ..formats import finite
from ..render import (
    display_order,
    energy_total,
    partial_energy_note,
    peak_memory_bound,
    terminal_text,
    tree_energy_domains,
)
from ..task import Task, TaskStatus, TotalCpu
from ._noscript import noscript_table

__all__ = ["COLUMNS", "EXTRA_TEXT_LIMIT", "STATUSES", "render_html", "report_data"]

COLUMNS = (
    "parent",
    "label",
    "status",
    "start",
    "duration",
    "cpu",
    "total",
    "user",
    "system",
    "mem",
    "mem_bound",
    "gpu",
    "energy",
    "proc",
    "id",
    "pid",
    "host",
    "machine",
)
"""The fields of each task's row in the embedded data, in order."""

STATUSES = (*(status.value for status in TaskStatus), "interrupted", "stopped")
"""The statuses a row's ``status`` field indexes: the recorded ones, ``interrupted``
(recorded as running, but its process is gone) and ``stopped`` (recorded as running, its
process stopped), as ``taskmeter show`` shows them."""

_STATUS_CODES = {status: STATUSES.index(status.value) for status in TaskStatus}
_INTERRUPTED = STATUSES.index("interrupted")
_STOPPED = STATUSES.index("stopped")
_STANDARD_FIELDS = frozenset(Task.model_fields)
EXTRA_TEXT_LIMIT = 500
"""The characters of an extra field the page keeps: a longer value is cut there, and the
page says so (a tree of 100,000 tasks with long values would make a page too big to open)."""


def _round(value: float | None, digits: int = 4) -> float | None:
    """Keep ``digits`` significant digits (for positions on the timeline)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, max(digits - 1 - math.floor(math.log10(abs(value))), 0))


def _energy_parts(task: Task) -> list[list[Any]]:
    """The energy by domain, for the details panel: ``[domain, joules, source]`` each."""
    return [
        [domain, finite(value), task.energy_sources.get(domain)]
        for domain, value in (
            ("cpu", task.cpu_power),
            ("gpu", task.gpu_power),
            ("system", task.system_power),
        )
        if value is not None
    ]


def _extras(task: Task) -> dict[str, Any]:
    """The task's extra fields (user data), as text for the details panel.

    Any name is possible here (``energy``, ``__proto__``): the page keeps
    them apart from its own data and shows them as text only.  A value longer
    than :data:`EXTRA_TEXT_LIMIT` characters is cut, with a mark saying so.
    """
    extra: dict[str, Any] = {}
    for key, value in (task.model_extra or {}).items():
        if key in _STANDARD_FIELDS:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        extra[key] = _cut(text)
    return extra


def _cut(text: str) -> str:
    """``text``, or its first :data:`EXTRA_TEXT_LIMIT` characters and a mark of the cut."""
    if len(text) <= EXTRA_TEXT_LIMIT:
        return text
    return (
        f"{text[:EXTRA_TEXT_LIMIT]}… ({len(text):,} characters; "
        "'taskmeter show --json' has the whole value)"
    )


def report_data(
    root: Task,
    *,
    source: str | None = None,
    interrupted: Callable[[Task], str | None] | None = None,
    stopped: Callable[[Task], str | None] | None = None,
) -> dict[str, Any]:
    """The data the page draws: tasks depth first (siblings by start time, see
    :func:`taskmeter.render.display_order`), each a row of :data:`COLUMNS`.

    ``interrupted`` tells why a task recorded as running is not running any
    more (``None`` if it may be), as :meth:`taskmeter.liveness.Liveness.interruption`
    does; such tasks have the status ``interrupted``, and their reason is kept.
    ``stopped`` tells why a task recorded as running (and not interrupted) does not run
    now (``None`` if it does), as :meth:`taskmeter.liveness.Liveness.stoppage` does;
    such tasks have the status ``stopped``, and their reason is kept too.
    Start times are relative to the root's, or to the earliest of the tree where the root
    has none.  A row's ``energy`` is that of :func:`taskmeter.render.energy_total`; where
    it is partial (it lacks a domain other tasks of the tree have), ``partial_energy``
    names the domains it lacks, by row, and ``partial_energy_note`` is the line that
    explains the mark (:func:`taskmeter.render.partial_energy_note`; ``None`` where no
    figure is partial).
    """
    return _document(root, source, interrupted, stopped, tree_energy_domains(root), TotalCpu())


def _document(
    root: Task,
    source: str | None,
    interrupted: Callable[[Task], str | None] | None,
    stopped: Callable[[Task], str | None] | None,
    domains: frozenset[str],
    total_cpu: TotalCpu,
) -> dict[str, Any]:
    """:func:`report_data`, with the tree's energy domains and a :class:`TotalCpu`
    worked out by the caller, which may share them (see :func:`render_html`)."""
    origin = root.start_time
    if origin is None:  # a root never started (a container built by hand): its first task's
        origin = min(
            (t.start_time for _, t in root.walk() if t.start_time is not None), default=None
        )
    end = origin
    hosts: dict[str, int] = {}
    machines: dict[str, int] = {}
    rows: list[list[Any]] = []
    extra: dict[int, dict[str, Any]] = {}
    energy: dict[int, list[list[Any]]] = {}
    reasons: dict[int, str] = {}
    stoppages: dict[int, str] = {}
    partial: dict[int, list[str]] = {}
    stack: list[tuple[Task, int]] = [(root, -1)]
    while stack:
        task, parent = stack.pop()
        index = len(rows)
        start = None
        if task.start_time is not None and origin is not None:
            start = task.start_time - origin
            finish = task.finish_time
            if finish is None and task.duration is not None:
                finish = task.start_time + task.duration
            if finish is not None and (end is None or finish > end):
                end = finish
        status = _STATUS_CODES.get(task.status, 0)
        reason = interrupted(task) if interrupted is not None else None
        if reason:
            status = _INTERRUPTED
            reasons[index] = reason
        elif stopped is not None and (stoppage := stopped(task)):
            status = _STOPPED
            stoppages[index] = stoppage
        energy_figure = energy_total(task, domains)
        if energy_figure.partial:
            partial[index] = list(energy_figure.missing)
        rows.append(
            [
                parent,
                task.label,
                status,
                _round(start, 6),
                # Whole figures (not rounded here): the page writes what
                # ``taskmeter show`` does, rounded once, as Python rounds.
                finite(task.duration),
                finite(task.cpu_time),
                finite(total_cpu(task)),
                finite(task.cpu_user_time),
                finite(task.cpu_system_time),
                task.peak_memory,
                peak_memory_bound(task) if task.peak_memory is None else None,
                task.peak_gpu_memory,
                energy_figure.joules,
                1 if task.subprocess else 0,
                str(task.task_id),
                task.pid,
                hosts.setdefault(task.hostname, len(hosts)),
                None if task.machine is None else machines.setdefault(task.machine, len(machines)),
            ]
        )
        details = _extras(task)
        if details:
            extra[index] = details
        parts = _energy_parts(task)
        if parts:
            energy[index] = parts
        stack.extend((sub, index) for sub in reversed(display_order(task.subtasks)))
    started = _utc_text(origin)
    span = (end - origin) if origin is not None and end is not None else 0.0
    return {
        "version": __version__,
        "file": source,
        "started": started,
        "span": _round(span, 6),
        "columns": list(COLUMNS),
        "statuses": list(STATUSES),
        "hosts": list(hosts),
        "machines": list(machines),
        "tasks": rows,
        "extra": extra,
        "energy": energy,
        "partial_energy": partial,
        # The line under the table, worded as ``taskmeter show`` words it.
        "partial_energy_note": partial_energy_note(
            {domain for missing in partial.values() for domain in missing}
        )
        if partial
        else None,
        "interrupted": reasons,
        "stopped": stoppages,
    }


def _utc_text(timestamp: float | None) -> str | None:
    """``timestamp`` as a UTC date and time; ``None`` outside the years 1 to 9999 (a task
    file may hold any finite start time) or where the platform cannot convert it."""
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return None


def _policy(scripts: tuple[str, ...]) -> str:
    """The page's Content-Security-Policy: its own two scripts run (by their hashes), and
    nothing else does, not even markup a text of the file might one day smuggle in; nothing
    is fetched (no network, no file), no form is sent, no base URL changes."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        for text in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def render_html(
    root: Task,
    *,
    title: str | None = None,
    source: str | None = None,
    interrupted: Callable[[Task], str | None] | None = None,
    stopped: Callable[[Task], str | None] | None = None,
) -> str:
    """The report page for ``root`` and its subtasks, as one HTML document.

    ``interrupted`` and ``stopped`` are as for :func:`report_data` (``taskmeter report``
    passes :meth:`taskmeter.liveness.Liveness.interruption` and
    :meth:`~taskmeter.liveness.Liveness.stoppage`).
    """
    # One walk of the tree for its energy domains, and each task's total CPU worked out
    # once, for the page's data and its plain table alike.
    domains = tree_energy_domains(root)
    total_cpu = TotalCpu()
    document = _document(root, source, interrupted, stopped, domains, total_cpu)
    data = json.dumps(document, separators=(",", ":"), allow_nan=False)
    # Inside <script>, "</script>" or "<!--" in a label would end the element early.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = _asset("template.html")
    scripts = (_asset("format.js"), _asset("report.js"))
    substitutions = {
        "{{POLICY}}": _policy(scripts),
        # Control and format characters escaped, as on every row of the page.
        "{{TITLE}}": escape(terminal_text(title or root.label)),
        "{{VERSION}}": escape(__version__),
        "{{STYLE}}": _asset("report.css"),
        "{{FORMAT}}": scripts[0],
        "{{SCRIPT}}": scripts[1],
        "{{DATA}}": data,
        "{{NOSCRIPT}}": noscript_table(
            root,
            len(document["tasks"]),
            interrupted,
            stopped=stopped,
            energy_domains=domains,
            total_cpu=total_cpu,
        ),
    }
    # One pass, so a placeholder inside a label or the title is left as text.
    return re.sub(r"\{\{[A-Z]+\}\}", lambda m: substitutions.get(m[0], m[0]), page)
