"""The :class:`Measurement`: one value of one metric, as lsst.verify records it."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ESTIMATOR", "Measurement"]

ESTIMATOR = "utils.timer.timeMethod"
"""The ``estimator`` note of Measurements derived from timer keys (lsst.verify's value)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """A value of the metric ``metric`` (``"package.metric"``).

    ``unit`` is UCUM as OpenTelemetry writes it (``"s"``, ``"By"``);
    ``notes`` say how the value was obtained (``estimator``, ``target``);
    ``extras`` hold side values such as the ``start`` and ``end`` timestamps;
    ``identifier`` is unique to this measurement.
    """

    metric: str
    value: float
    unit: str
    notes: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    identifier: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or "." not in self.metric:
            raise ValueError(f"metric must be 'package.metric', not {self.metric!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise TypeError(f"value must be a number, not {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"value must be finite, not {self.value!r}")
        if not isinstance(self.unit, str):
            raise TypeError(f"unit must be a str, not {self.unit!r}")
        object.__setattr__(self, "value", float(self.value))

    @property
    def package(self) -> str:
        """The metric's namespace (before the first dot)."""
        return self.metric.partition(".")[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "notes": dict(self.notes),
            "extras": dict(self.extras),
            "identifier": self.identifier,
        }
