"""The :class:`Measurement`: one value of one metric, as lsst.verify records it."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ESTIMATOR", "Measurement"]

ESTIMATOR = "utils.timer.timeMethod"
"""The ``estimator`` note of Measurements derived from timer keys (lsst.verify's value)."""

_LSST_UNITS = {"By": "byte"}
"""UCUM units whose astropy name (the one lsst.verify writes) differs."""


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

    @property
    def lsst_unit(self) -> str:
        """The unit as lsst.verify names it (astropy's): ``s``, ``byte`` for ``By``."""
        return _LSST_UNITS.get(self.unit, self.unit)

    def quantity(self) -> Any:
        """The value as an astropy ``Quantity`` (``value * u.byte``, ``value * u.s``), the
        form ``lsst.verify.Measurement(metric, quantity)`` takes.

        Raises:
            ImportError: astropy is not installed.
            ValueError: astropy cannot read the unit.
        """
        try:
            from astropy import units  # type: ignore[import-untyped]  # optional; LSST has it
        except ImportError as exc:
            raise ImportError("Measurement.quantity() needs astropy (pip install astropy)") from exc

        try:
            unit = units.Unit(self.lsst_unit)
        except ValueError as exc:
            raise ValueError(
                f"unit {self.unit!r} of {self.metric} has no astropy form: {exc}"
            ) from None
        return self.value * unit

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
