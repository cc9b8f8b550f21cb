"""Measure task metadata with many specs at once: what ``taskmeter measure`` runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import MetricComputationError, NoWorkFound
from .measurement import Measurement
from .metadata import Metadata
from .specs import MetricSpec

__all__ = ["MeasurementReport", "measure_metadata"]


@dataclass(slots=True)
class MeasurementReport:
    """The outcome of every spec on one metadata object."""

    measurements: list[Measurement] = field(default_factory=list)
    """The Measurements, in the order of the specs."""
    no_work: list[tuple[MetricSpec, str]] = field(default_factory=list)
    """Specs whose target left no keys (:class:`NoWorkFound`), with the reason."""
    errors: list[tuple[MetricSpec, str]] = field(default_factory=list)
    """Specs whose keys gave no value (:class:`MetricComputationError`), with the reason."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "measurements": [m.to_dict() for m in self.measurements],
            "no_work_found": [_entry(spec, reason) for spec, reason in self.no_work],
            "errors": [_entry(spec, reason) for spec, reason in self.errors],
        }


def _entry(spec: MetricSpec, reason: str) -> dict[str, str]:
    return {"metric": spec.metric_name, "target": spec.target, "reason": reason}


def measure_metadata(metadata: object, specs: Iterable[MetricSpec]) -> MeasurementReport:
    """Apply every spec to ``metadata`` (any form :class:`~taskmeter.measure.Metadata` reads).

    A spec with no work or an error does not stop the others; both are
    reported.  ``TypeError`` if ``metadata`` is not metadata or a spec is not
    a spec.
    """
    view = Metadata.of(metadata)
    report = MeasurementReport()
    for spec in specs:
        if not isinstance(spec, MetricSpec):
            raise TypeError(f"not a metric spec: {spec!r}")
        try:
            report.measurements.append(spec.measure(view))
        except NoWorkFound as exc:
            report.no_work.append((spec, str(exc)))
        except MetricComputationError as exc:
            report.errors.append((spec, str(exc)))
    return report
