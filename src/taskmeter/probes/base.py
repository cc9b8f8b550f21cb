"""The one interface between a task and the sources of its figures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from .._log import swallowed
from ..figures import Figures

ProbeStates = tuple[tuple["Probe", Any], ...]
"""Probes that have begun, each with the state its :meth:`Probe.begin` returned."""


class Probe(ABC):
    """A source of resource figures (CPU time, peak memory, energy, ...).

    A task calls :meth:`begin` when it starts, :meth:`read` whenever it wants
    its figures so far (on refresh and at the end), and :meth:`end` once when
    it finishes.  ``begin`` returns the probe's per-task state, which the task
    hands back on the other calls.  Probes must be cheap on these paths; any
    slow work (sampling a GPU, querying a server) belongs in :meth:`sample`,
    which the monitor calls from its own thread every :attr:`sample_interval`
    seconds while a task is open.

    A probe that cannot take a figure leaves it ``None``.  Exceptions raised by
    a probe are caught by the task, counted and logged once; they never reach
    the application.
    """

    name: ClassVar[str]
    """Short name, used in logs and in ``taskmeter.energy.*.source``."""

    sample_interval: float | None = None
    """Seconds between :meth:`sample` calls, or ``None`` if the probe needs none."""

    @abstractmethod
    def begin(self, *, reset_peak: bool = True) -> Any:
        """Take the starting reading of a task and return the state to keep.

        ``reset_peak`` asks probes that track a high-water mark to start a new
        one for this task (see :class:`taskmeter.probes.peaks.PeakRegister`).
        """

    @abstractmethod
    def read(self, state: Any, figures: Figures) -> None:
        """Write the figures of the interval since :meth:`begin` into ``figures``."""

    def end(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Release the per-task state; called once, after the last :meth:`read`."""

    def sample(self) -> None:  # noqa: B027 - optional hook
        """Take a periodic sample (called by the monitor thread)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def begin_probes(probes: Iterable[Probe], reset_peak: bool) -> ProbeStates:
    """Begin each probe for one task or span; a probe that raises is counted,
    logged and left out."""
    states = []
    for probe in probes:
        try:
            states.append((probe, probe.begin(reset_peak=reset_peak)))
        except Exception as exc:
            swallowed(f"probe.{probe.name}.begin", exc)
    return tuple(states)


def read_probes(states: ProbeStates, figures: Figures) -> None:
    """Have each begun probe write its figures; one that raises is counted and logged."""
    for probe, state in states:
        try:
            probe.read(state, figures)
        except Exception as exc:
            swallowed(f"probe.{probe.name}.read", exc)


def end_probes(states: ProbeStates) -> None:
    """End each begun probe; one that raises is counted and logged."""
    for probe, state in states:
        try:
            probe.end(state)
        except Exception as exc:
            swallowed(f"probe.{probe.name}.end", exc)
