"""Resource probes: one module per source behind the :class:`Probe` interface.

Tasks take their figures from the *active probes* of the process.  By default
those are the CPU and memory probes plus every energy and GPU source whose
hardware and permissions are present (``TASKMETER_ENERGY`` narrows or widens
that; see :mod:`taskmeter.probes.selection`).  Detection runs once, when the
first task starts.  :func:`set_probes` replaces the set (for instance to add a
probe built on a test's fake ``/proc`` or ``/sys/class/powercap`` tree, or to
drop one).

The Prometheus probe (whose HTTP client brings in ``urllib``, ``http.client``
and ``ssl``) is imported on first use: detection needs it only where
``TASKMETER_ENERGY_CONFIG`` is set.  The other probe modules are imported
with the package, so that processes forked after ``import taskmeter`` (a
pool's workers) do not each import them at their first task.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .base import Probe
from .cpu import CpuTimeProbe
from .errors import ProbeUnavailableError
from .gpu_energy import NvmlEnergyProbe
from .gpu_memory import GpuMemoryProbe
from .memory import LinuxRssHighWater, PeakMemoryProbe, RusageHighWater

try:
    from .process import ProcessProbe
except ImportError:  # pragma: no cover - no getrusage (Windows)
    ProcessProbe = None  # type: ignore[assignment,misc]
from .nvml import Nvml
from .peaks import HighWaterSource, PeakRegister, PeakTracker
from .rapl import RaplProbe
from .sampling import SampledProbe
from .selection import energy_probes, parse_energy_selection, selection_from_environment

if TYPE_CHECKING:
    from .prometheus import PrometheusProbe


def __getattr__(name: str) -> Any:
    if name == "PrometheusProbe":
        from .prometheus import PrometheusProbe

        globals()[name] = PrometheusProbe
        return PrometheusProbe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "CpuTimeProbe",
    "GpuMemoryProbe",
    "HighWaterSource",
    "LinuxRssHighWater",
    "Nvml",
    "NvmlEnergyProbe",
    "PeakMemoryProbe",
    "PeakRegister",
    "PeakTracker",
    "Probe",
    "ProbeUnavailableError",
    "ProcessProbe",
    "PrometheusProbe",
    "RaplProbe",
    "RusageHighWater",
    "SampledProbe",
    "active_probes",
    "default_probes",
    "set_probes",
]

_lock = threading.Lock()
_active: tuple[Probe, ...] | None = None


def default_probes(energy: str | Iterable[str] | None = None) -> tuple[Probe, ...]:
    """Build the built-in probes that work on this machine.

    Args:
        energy: The energy and GPU sources: ``"auto"``, ``"none"``, or names
            such as ``"rapl,nvml"`` (see :mod:`taskmeter.probes.selection`).
            A source named here that cannot work raises
            :class:`ProbeUnavailableError`.  ``None`` reads ``TASKMETER_ENERGY``,
            whose named sources that cannot work are logged as errors instead.
    """
    if energy is None:
        extra = energy_probes(selection_from_environment(), strict=False)
    else:
        extra = energy_probes(parse_energy_selection(energy), strict=True)
    return (*_process_probes(), *extra)


def _process_probes() -> tuple[Probe, ...]:
    """CPU time and peak memory: one probe where ``getrusage`` exists, else two."""
    if ProcessProbe is not None:
        return (ProcessProbe(),)
    return (CpuTimeProbe(), PeakMemoryProbe())  # pragma: no cover - Windows


def active_probes() -> tuple[Probe, ...]:
    """The probes new tasks use (built on first use).

    Detecting the energy and GPU sources never stops the program: if it fails
    unexpectedly, the error is counted and logged, and tasks use the CPU and
    memory probes alone.
    """
    global _active
    probes = _active
    if probes is None:
        with _lock:
            if _active is None:
                _active = _detected_probes()
            probes = _active
    return probes


def _detected_probes() -> tuple[Probe, ...]:
    try:
        return default_probes()
    except Exception as exc:
        from .._log import swallowed

        swallowed("probes.detect", exc)
        try:
            return _process_probes()
        except Exception as inner:
            swallowed("probes.detect", inner)
            return ()


def set_probes(probes: Iterable[Probe] | None) -> tuple[Probe, ...]:
    """Replace the probes new tasks use; ``None`` restores the defaults.

    Returns the previous set, so a caller can put it back.  Tasks already
    running keep the probes they started with.
    """
    global _active
    new = None if probes is None else tuple(probes)
    if new is not None:
        for probe in new:
            if not isinstance(probe, Probe):
                raise TypeError(f"not a taskmeter probe: {probe!r}")
    with _lock:
        previous = _active if _active is not None else _detected_probes()
        _active = new
    # A probe taken out of use stops sampling now rather than at its next tick.
    for probe in previous:
        if isinstance(probe, SampledProbe) and (new is None or probe not in new):
            probe.release_if_idle()
    return previous
