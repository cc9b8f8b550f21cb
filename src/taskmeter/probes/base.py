"""The one interface between a task and the sources of its figures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..figures import Figures


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
