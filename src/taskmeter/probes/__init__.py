"""Resource probes: one module per source behind the :class:`Probe` interface.

Tasks take their figures from the *active probes* of the process.  By default
those are every built-in probe whose hardware and permissions are present;
:func:`set_probes` replaces the set (for instance to add a probe built on a
test's fake ``/proc`` tree, or to drop one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from .base import Probe
from .cpu import CpuTimeProbe
from .memory import LinuxRssHighWater, PeakMemoryProbe, RusageHighWater
from .peaks import HighWaterSource, PeakRegister, PeakTracker

__all__ = [
    "CpuTimeProbe",
    "HighWaterSource",
    "LinuxRssHighWater",
    "PeakMemoryProbe",
    "PeakRegister",
    "PeakTracker",
    "Probe",
    "RusageHighWater",
    "active_probes",
    "default_probes",
    "set_probes",
]

_lock = threading.Lock()
_active: tuple[Probe, ...] | None = None


def default_probes() -> tuple[Probe, ...]:
    """Build the built-in probes that work on this machine."""
    return (CpuTimeProbe(), PeakMemoryProbe())


def active_probes() -> tuple[Probe, ...]:
    """The probes new tasks use (built on first use)."""
    global _active
    probes = _active
    if probes is None:
        with _lock:
            if _active is None:
                _active = default_probes()
            probes = _active
    return probes


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
        previous = _active if _active is not None else default_probes()
        _active = new
    return previous
