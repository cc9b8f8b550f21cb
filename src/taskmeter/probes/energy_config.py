"""The per-machine Prometheus energy queries, read from a TOML file in LensKit's layout.

``TASKMETER_ENERGY_CONFIG`` names the file; a LensKit ``lenskit.toml`` works
as it is::

    machine = "gpu01"                      # recorded on tasks; TASKMETER_MACHINE takes precedence

    [prometheus]
    url = "http://prometheus.example:9090"
    timeout = 2.0                          # seconds per query (taskmeter)
    min_duration = 10.0                    # shorter tasks are not queried (taskmeter)

    [machines.gpu01.power_queries]
    system = 'sum(increase(node_energy_joules_total{{instance="gpu01"}}[{elapsed}ms]))'
    gpu = 'sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[{elapsed}ms])) / 1e3'  # mJ

Each query is a :meth:`str.format` template with ``{elapsed}`` (the task's
duration in milliseconds) and ``{machine}``; literal braces of PromQL are
doubled.  It must return one number: joules over the last ``elapsed``
milliseconds.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..figures import ENERGY_DOMAINS

DEFAULT_TIMEOUT_S = 2.0
"""Longest wait for Prometheus when a task's figures are read."""
DEFAULT_MIN_DURATION_S = 10.0
"""Tasks shorter than this are not queried: a scrape interval would dominate them."""


@dataclass(frozen=True)
class PrometheusSettings:
    """Where and how to ask Prometheus for one machine's energy."""

    url: str | None
    """Base URL of the Prometheus server (``/api/v1/query`` is appended)."""
    queries: Mapping[str, str] = field(default_factory=dict)
    """Query template by energy domain (``system``, ``cpu``, ``gpu``)."""
    machine: str | None = None
    """The machine label the queries were chosen for (``{machine}``)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    source: str = ""
    """The file the settings came from (for messages)."""

    def missing(self) -> str | None:
        """Why these settings query nothing, or ``None`` if they are usable."""
        where = f" in {self.source}" if self.source else ""
        if not self.url:
            return f"no [prometheus] url{where}"
        if self.machine is None:
            return f"no machine label (TASKMETER_MACHINE, or machine = ...{where})"
        if not self.queries:
            return f"no [machines.{self.machine}.power_queries]{where}"
        return None


def check_query_template(domain: str, template: str, machine: str | None = None) -> None:
    """Raise ``ValueError`` unless ``template`` formats with ``elapsed`` and ``machine``.

    ``machine`` is the label the template will be given (default: a stand-in).
    """
    if domain not in ENERGY_DOMAINS:
        raise ValueError(f"unknown energy domain {domain!r}; expected one of {ENERGY_DOMAINS}")
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"the {domain} query must be a non-empty string")
    try:
        template.format(elapsed=1000, machine="machine" if machine is None else machine)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        # {machine.host} and {elapsed[0]} fail by attribute and type, not by key
        raise ValueError(
            f"the {domain} query {template!r} does not format ({type(exc).__name__}: {exc}); "
            "the placeholders are {elapsed} and {machine}, and PromQL's own braces must "
            "be doubled: {{...}}"
        ) from None


def load_energy_config(
    path: str | os.PathLike[str], *, machine: str | None = None
) -> PrometheusSettings:
    """Read the Prometheus settings of ``machine`` (default: the file's ``machine``).

    Raises ``ValueError`` naming the file and the key at fault when the file
    cannot be read or does not have the expected shape.
    """
    source = str(path)
    document = _read_document(path)
    prometheus = _table(document, "prometheus", source)
    url = prometheus.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ValueError(f"{source}: prometheus.url must be an http(s) URL, got {url!r}")
    timeout_s = _seconds(prometheus, "timeout", DEFAULT_TIMEOUT_S, source, positive=True)
    min_duration_s = _seconds(prometheus, "min_duration", DEFAULT_MIN_DURATION_S, source)

    chosen = machine or _file_machine(document, source)
    queries: dict[str, str] = {}
    if chosen is not None:
        machines = _table(document, "machines", source)
        entry = machines.get(chosen, {})
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: machines.{chosen} must be a table")
        power = _table(entry, "power_queries", f"{source}: machines.{chosen}")
        for domain, template in power.items():
            try:
                check_query_template(domain, template, chosen)
            except ValueError as exc:
                raise ValueError(f"{source}: machines.{chosen}.power_queries: {exc}") from None
            queries[domain] = template
    return PrometheusSettings(
        url=url,
        queries=queries,
        machine=chosen,
        timeout_s=timeout_s,
        min_duration_s=min_duration_s,
        source=source,
    )


def configured_machine(path: str | os.PathLike[str]) -> str | None:
    """The file's own ``machine`` (``None`` where it names none, or names a blank one).

    Raises ``ValueError`` as :func:`load_energy_config` does for a file that cannot
    be read or whose ``machine`` is not a string.
    """
    return _file_machine(_read_document(path), str(path))


def _read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TOML document of ``path``; ``ValueError`` naming the file if it cannot be read."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ValueError(f"cannot read energy configuration {source}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"energy configuration {source} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"energy configuration {source} is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"energy configuration {source} is not UTF-8 text: {exc}") from None


def _file_machine(document: Mapping[str, Any], source: str) -> str | None:
    """The document's ``machine``: ``None`` if absent or blank."""
    value = document.get("machine")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{source}: machine must be a string, got {value!r}")
    return value if value and value.strip() else None


def _table(document: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{source}: {key} must be a table")
    return value


def _seconds(
    table: Mapping[str, Any], key: str, default: float, source: str, *, positive: bool = False
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{source}: prometheus.{key} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{source}: prometheus.{key} must be positive, got {value!r}")
    return float(value)
