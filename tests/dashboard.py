"""The Grafana dashboard of ``collector-config/``: its PromQL, and the names that PromQL uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "taskmeter.json"

_FUNCTIONS_AND_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan"}
)
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panels() -> list[dict[str, Any]]:
    return list(load()["panels"])


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def variable_queries() -> list[str]:
    """The queries of the dashboard's template variables (``label_values(...)``)."""
    return [variable["query"]["query"] for variable in load()["templating"]["list"]]


def substitute(
    expr: str, *, measurement: str = "webapp_scorecputime_seconds", rate_interval: str = "5m"
) -> str:
    """Grafana's variables replaced by values Prometheus accepts (every job, task, ...)."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("${measurement}", measurement)
        .replace("$job", ".*")
        .replace("$label", ".*")
    )


def label_values(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label)."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values query: {query!r}")
    return match.group(1).strip(), match.group(2)


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names a PromQL expression uses.

    Metric names given as ``{__name__="..."}`` count as metric names.
    """
    metrics: set[str] = set()
    labels: set[str] = set()
    for label, _op, value in _MATCHER.findall(expr):
        if label == "__name__":
            metrics.add(value)
        else:
            labels.add(label)
    without_selectors = re.sub(r"\{[^}]*\}", " ", expr)
    for group in _GROUPING.findall(without_selectors):
        labels.update(name.strip() for name in group.split(",") if name.strip())
    bare = _GROUPING.sub(" ", without_selectors)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', " ", bare)
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = match.group(0)
        rest = bare[match.end() :].lstrip()
        if rest.startswith("(") or word in _FUNCTIONS_AND_KEYWORDS:
            continue
        metrics.add(word)
    return metrics, labels
