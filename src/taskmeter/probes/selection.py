"""Which energy and GPU sources a process uses (``TASKMETER_ENERGY``, ``default_probes``).

The selection is a comma-separated list:

``auto`` (the default)
    every source that works on this machine, quietly: RAPL packages for
    ``cpu``, NVML for ``gpu`` and GPU memory (PyTorch's peak where it is in
    use), and the Prometheus queries of ``TASKMETER_ENERGY_CONFIG`` for the
    domains no counter here covers.
``none`` (or ``off``)
    no energy or GPU source at all.
``rapl``, ``dram``, ``psys``, ``nvml``, ``prometheus``
    these sources, *asked for by name*: one that cannot work is an error
    (raised by ``default_probes(energy=...)``, logged as an error once for
    the environment variable, which never stops the program).  ``dram`` adds
    the DRAM domains to the ``cpu`` figure; ``psys`` measures ``system``
    through RAPL.  ``auto`` may be combined with names (``auto,dram``).

Each domain has one source: a counter read on this machine (RAPL, NVML)
wins over Prometheus, which fills only the domains no counter covers.  Name
only ``prometheus`` to take every domain from it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import settings
from .._log import config_warning, debug_once, error_once, warn_once
from .base import Probe
from .errors import ProbeUnavailableError
from .gpu_energy import NvmlEnergyProbe
from .gpu_memory import GpuMemoryProbe
from .nvml import Nvml, default_nvml
from .rapl import DEFAULT_POWERCAP_ROOT, RaplProbe

if TYPE_CHECKING:
    from .prometheus import PrometheusProbe

if settings.energy_config_path() is not None:
    # Detection will build the Prometheus probe: imported with the package, as
    # the other probes are, not in each worker forked before the first task.
    from . import energy_config, prometheus  # noqa: F401

ENERGY_SOURCES = ("rapl", "dram", "psys", "nvml", "prometheus")
"""Source names a selection may ask for explicitly."""

_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


@dataclass(frozen=True)
class EnergySelection:
    """A parsed selection: ``auto`` (use what works, quietly) plus sources asked for by name."""

    auto: bool = True
    named: frozenset[str] = frozenset()

    def wants(self, source: str) -> bool:
        """Whether ``source`` is to be used (by name, or as part of ``auto``).

        ``dram`` brings ``rapl`` along (DRAM is added to the packages, never
        measured alone), without naming it: a missing RAPL is reported as the
        ``dram`` the user asked for.
        """
        if source in self.named or (self.auto and source in ("rapl", "nvml", "prometheus")):
            return True
        return source == "rapl" and "dram" in self.named


def parse_energy_selection(spec: str | Iterable[str]) -> EnergySelection:
    """Parse ``"auto"``, ``"none"`` or names such as ``"rapl,nvml"`` (a list of names works too).

    Raises ``ValueError`` naming an unknown source.
    """
    if isinstance(spec, str):
        tokens = [t.strip().lower() for t in spec.split(",") if t.strip()]
    else:
        tokens = [str(t).strip().lower() for t in spec]
    if not tokens:
        raise ValueError("an empty energy selection; use 'auto', 'none' or source names")
    if "none" in tokens or "off" in tokens:
        if len(tokens) > 1:
            raise ValueError(f"'none' cannot be combined with other sources: {tokens}")
        return EnergySelection(auto=False)
    unknown = [t for t in tokens if t != "auto" and t not in ENERGY_SOURCES]
    if unknown:
        raise ValueError(
            f"unknown energy source(s) {', '.join(unknown)}; expected auto, none or "
            f"some of {', '.join(ENERGY_SOURCES)}"
        )
    named = set(tokens) - {"auto"}
    return EnergySelection(auto="auto" in tokens, named=frozenset(named))


def selection_from_environment() -> EnergySelection:
    """The selection in ``TASKMETER_ENERGY`` (``auto`` when unset or malformed)."""
    text = settings.energy_sources()
    if text is None:
        return EnergySelection()
    try:
        return parse_energy_selection(text)
    except ValueError as exc:
        config_warning(
            f"env.{settings.ENV_ENERGY}",
            "ignoring %s=%r: %s; using 'auto'",
            settings.ENV_ENERGY,
            text,
            exc,
        )
        return EnergySelection()


class _Chooser:
    """Builds the probes of a selection, reporting sources that cannot work."""

    def __init__(self, selection: EnergySelection, strict: bool) -> None:
        self.selection = selection
        self.strict = strict

    def unavailable(self, source: str, reason: str, *, logged: bool = False) -> None:
        if source not in self.selection.named:
            if not logged:
                debug_once(f"energy.{source}", "energy source %s not used: %s", source, reason)
        elif self.strict:
            raise ProbeUnavailableError(f"energy source {source!r} asked for but {reason}")
        else:
            error_once(
                f"energy.{source}",
                "%s names %s, which is unavailable: %s",
                settings.ENV_ENERGY,
                source,
                reason,
            )


def energy_probes(
    selection: EnergySelection,
    *,
    strict: bool = False,
    powercap_root: str | os.PathLike[str] = DEFAULT_POWERCAP_ROOT,
    nvml: Nvml | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> list[Probe]:
    """The energy and GPU probes of ``selection`` that work on this machine.

    With ``strict`` a source named in the selection that cannot work raises
    :class:`ProbeUnavailableError`; otherwise it is logged as an error once.
    ``config_path`` defaults to ``TASKMETER_ENERGY_CONFIG``.
    """
    chooser = _Chooser(selection, strict)
    probes: list[Probe] = []
    covered: set[str] = set()

    domains = []
    if selection.wants("rapl"):
        domains.append("package")
    domains += [d for d in ("dram", "psys") if d in selection.named]
    if domains:
        rapl = RaplProbe(powercap_root, domains)
        for domain, reason in rapl.unavailable.items():
            chooser.unavailable("rapl" if domain == "package" else domain, reason, logged=True)
        if rapl.available:
            probes.append(rapl)
            covered |= rapl.energy_domains

    if selection.wants("nvml"):
        library = nvml if nvml is not None else default_nvml()
        if library.start():
            gpu_energy = NvmlEnergyProbe(library)
            if gpu_energy.available:
                probes.append(gpu_energy)
                covered.add("gpu")
            else:
                chooser.unavailable("nvml", f"no GPU energy: {gpu_energy.reason}", logged=True)
            probes.append(GpuMemoryProbe(library))
        else:
            chooser.unavailable("nvml", library.reason or "no GPU")
            if _torch_gpu_possible():
                probes.append(GpuMemoryProbe(use_nvml=False))

    if selection.wants("prometheus"):
        prometheus = _prometheus_probe(chooser, config_path, covered)
        if prometheus is not None:
            probes.append(prometheus)
    return probes


def _prometheus_probe(
    chooser: _Chooser, config_path: str | os.PathLike[str] | None, covered: set[str]
) -> PrometheusProbe | None:
    path = config_path if config_path is not None else settings.energy_config_path()
    if path is None:
        chooser.unavailable("prometheus", f"{settings.ENV_ENERGY_CONFIG} is not set")
        return None
    # Only now: the probe's HTTP client (urllib, http.client, ssl) costs a
    # process without a configuration 40 ms of start-up.
    from .energy_config import load_energy_config
    from .prometheus import PrometheusProbe

    try:
        config = load_energy_config(path, machine=settings.env_machine())
    except ValueError as exc:
        if "prometheus" in chooser.selection.named:
            chooser.unavailable("prometheus", str(exc))
        else:  # the file was named, so it is meant to work: say so
            warn_once(
                f"energy.config.{path}",
                "ignoring %s=%r: %s; no Prometheus energy queries are made",
                settings.ENV_ENERGY_CONFIG,
                os.fspath(path),
                exc,
            )
        return None
    missing = config.missing()
    if missing is not None:
        chooser.unavailable("prometheus", missing)
        return None
    queries = {d: q for d, q in config.queries.items() if d not in covered}
    for domain in sorted(set(config.queries) - set(queries)):
        debug_once(
            f"prometheus.covered.{domain}",
            "the Prometheus %s query is not used: a counter on this machine measures it",
            domain,
        )
    if not queries:
        return None
    assert config.url is not None
    return PrometheusProbe(
        config.url,
        queries,
        machine=config.machine,
        timeout_s=config.timeout_s,
        min_duration_s=config.min_duration_s,
    )


def _torch_gpu_possible() -> bool:
    """Whether PyTorch could use a GPU here: it is installed and a GPU driver is present."""
    if not any(glob.glob(pattern) for pattern in _GPU_DEVICE_NODES):
        return False
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
