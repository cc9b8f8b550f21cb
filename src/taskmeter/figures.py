"""The figures a task measures, in one record shared by every probe.

Probes write into a :class:`Figures`; the task copies it into its fields and
its span.  Keeping the schema in one place means a probe cannot invent an
attribute, and the attribute set never changes shape from one platform to
another: a figure that could not be taken is ``None`` (and absent from the
span), never ``0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENERGY_DOMAINS = ("cpu", "gpu", "system")
"""Energy domains, as in ``taskmeter.energy.<domain>`` and LensKit's ``<domain>_power``."""


@dataclass(slots=True)
class Figures:
    """Resources consumed over one interval (a task so far, or a finished task).

    Units are in the names: seconds, bytes, joules.
    """

    wall_time: float = 0.0
    """UNIX time at which the figures were taken."""
    duration_s: float | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    peak_memory_bytes: int | None = None
    peak_gpu_memory_bytes: int | None = None
    energy_j: dict[str, float] = field(default_factory=dict)
    """Energy by domain (``cpu``, ``gpu``, ``system``)."""
    energy_source: dict[str, str] = field(default_factory=dict)
    """How each energy figure was obtained (``rapl``, ``nvml-counter``, ...)."""

    @property
    def cpu_time_s(self) -> float | None:
        """User plus system CPU time, or ``None`` when neither was measured."""
        if self.cpu_user_s is None or self.cpu_system_s is None:
            return None
        return self.cpu_user_s + self.cpu_system_s

    def set_energy(self, domain: str, joules: float, source: str) -> None:
        """Record the energy of one domain and the method that produced it."""
        if domain not in ENERGY_DOMAINS:
            raise ValueError(f"unknown energy domain {domain!r}; expected one of {ENERGY_DOMAINS}")
        self.energy_j[domain] = joules
        self.energy_source[domain] = source
