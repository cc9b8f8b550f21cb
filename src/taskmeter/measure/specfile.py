"""Metric specs from a TOML, YAML or JSON file.

::

    # metrics.toml
    [[metrics]]
    kind = "timing"              # timing | cpu_timing | memory
    target = "isr.run"
    package = "ip_isr"
    metric = "IsrTime"

    [[metrics]]
    kind = "memory"
    target = "apPipe:ccdProcessor.runDataRef"
    package = "pipe_tasks"
    metric = "ProcessCcdMemory"

YAML and JSON files hold the same thing: a ``metrics`` list of entries (or
just the list).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._files import parse_yaml, read_text_bounded
from .errors import SpecError
from .specs import SPEC_KINDS, MemoryMetric, MetricSpec

__all__ = ["check_metrics_agree", "load_specs", "spec_from_dict", "specs_from_data"]

_KIND_ALIASES = {
    "timing": "timing",
    "timingmetric": "timing",
    "timingmetrictask": "timing",
    "cpu_timing": "cpu_timing",
    "cputiming": "cpu_timing",
    "cputimingmetric": "cpu_timing",
    "cputimingmetrictask": "cpu_timing",
    "memory": "memory",
    "memorymetric": "memory",
    "memorymetrictask": "memory",
}
_FIELDS = frozenset({"kind", "target", "package", "metric", "legacy_maxrss_unit"})
MAX_SPEC_FILE_BYTES = 16 * 1024 * 1024
"""Largest metric spec file read."""


def spec_from_dict(entry: Mapping[str, Any]) -> MetricSpec:
    """One spec from a spec-file entry (``kind``, ``target``, ``package``, ``metric``).

    Raises:
        SpecError: an unknown kind or field, a missing field, or a bad value.
    """
    if not isinstance(entry, Mapping):
        raise SpecError(f"a metric spec is a table of fields, not {type(entry).__name__}")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise SpecError(
            f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(_FIELDS))}"
        )
    missing = [name for name in ("kind", "target", "package", "metric") if name not in entry]
    if missing:
        raise SpecError(f"missing field(s) {', '.join(missing)}")
    kind_text = entry["kind"]
    kind = _KIND_ALIASES.get(str(kind_text).lower()) if isinstance(kind_text, str) else None
    if kind is None:
        raise SpecError(f"unknown kind {kind_text!r}; expected one of {', '.join(SPEC_KINDS)}")
    cls = SPEC_KINDS[kind]
    arguments = {name: entry[name] for name in ("target", "package", "metric")}
    if "legacy_maxrss_unit" in entry:
        if cls is not MemoryMetric:
            raise SpecError("legacy_maxrss_unit applies to memory metrics only")
        arguments["legacy_maxrss_unit"] = entry["legacy_maxrss_unit"]
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from exc


def specs_from_data(data: object, source: str = "metric specs") -> tuple[MetricSpec, ...]:
    """Specs from parsed file content: ``{"metrics": [...]}`` or a list of entries."""
    entries: object = data
    if isinstance(data, Mapping):
        unknown = set(data) - {"metrics"}
        if unknown:
            raise SpecError(
                f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
                "expected 'metrics'"
            )
        entries = data.get("metrics", [])
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise SpecError(f"{source}: expected a list of metric specs under 'metrics'")
    specs: list[MetricSpec] = []
    for index, entry in enumerate(entries, start=1):
        try:
            spec = spec_from_dict(entry)
            check_metrics_agree((*specs, spec))
        except (SpecError, ValueError) as exc:
            raise SpecError(f"{source}: metric spec {index}: {exc}") from exc
        specs.append(spec)
    return tuple(_unique(specs))


def check_metrics_agree(specs: Iterable[MetricSpec]) -> None:
    """Check that specs naming one metric agree on its unit and on its kind.

    Metric names are compared without case, as the OpenTelemetry SDK
    lowercases instrument names: ``p.T`` and ``p.t`` are one histogram.  A
    timing and a CPU timing have one unit, but one histogram of both would
    mix wall and CPU seconds.

    Raises:
        ValueError: two specs give one metric different units, or kinds.
    """
    known_specs: dict[str, MetricSpec] = {}
    for spec in specs:
        known = known_specs.setdefault(spec.metric_name.lower(), spec)
        if known.unit != spec.unit:
            raise ValueError(
                f"metric {spec.metric_name} is given with units {known.unit!r} "
                f"({known.kind}, target {known.target}) and {spec.unit!r} "
                f"({spec.kind}, target {spec.target})"
            )
        if known.kind != spec.kind:
            raise ValueError(
                f"metric {spec.metric_name} is given as {known.kind} (target {known.target}) "
                f"and as {spec.kind} (target {spec.target}): one histogram would mix them"
            )


def _unique(specs: Iterable[MetricSpec]) -> list[MetricSpec]:
    seen: set[MetricSpec] = set()
    result = []
    for spec in specs:
        if spec not in seen:
            seen.add(spec)
            result.append(spec)
    return result


def load_specs(path: str | os.PathLike[str]) -> tuple[MetricSpec, ...]:
    """Read metric specs from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file.

    Raises:
        SpecError: the file cannot be read or parsed, or an entry is bad; the
            message names the file and the entry.
    """
    file = Path(path)
    text = read_text_bounded(file, MAX_SPEC_FILE_BYTES, SpecError)
    try:
        data = _parse(file, text)
    except RecursionError as exc:
        raise SpecError(f"{file}: nested too deeply to be a spec file") from exc
    if data is None:
        return ()
    return specs_from_data(data, str(file))


def _parse(file: Path, text: str) -> object:
    suffix = file.suffix.lower()
    data: object
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{file}: not valid TOML: {exc}") from exc
    elif suffix in (".yaml", ".yml"):
        data = parse_yaml(text, file, SpecError)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{file}: not valid JSON: {exc}") from exc
    else:
        raise SpecError(f"{file}: unknown spec file type {suffix!r}; use .toml, .yaml or .json")
    return data
