"""A Measurement's unit in lsst.verify's spelling: astropy's ``s`` and ``byte``."""

from __future__ import annotations

from typing import Any

import pytest
from astropy import units as u

from taskmeter import time_method
from taskmeter.measure import CpuTimingMetric, Measurement, MemoryMetric, TimingMetric


class Isr:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    def run(self) -> int:
        return sum(range(10_000))


def test_measurements_give_lsst_verify_s_units_and_quantities() -> None:
    """lsst.verify records Quantities in ``u.s`` and ``u.byte``; ``By`` (UCUM, as
    OpenTelemetry writes it) is no astropy unit, so ``lsst_unit`` and ``quantity()``
    give the astropy ones, with the same value."""
    task = Isr()
    task.run()
    expected = {TimingMetric: u.s, CpuTimingMetric: u.s, MemoryMetric: u.byte}
    for spec_class, unit in expected.items():
        measurement = spec_class(target="run", package="ip_isr", metric="M").measure(task.metadata)
        assert u.Unit(measurement.lsst_unit) == unit
        quantity = measurement.quantity()
        assert quantity.unit == unit
        assert quantity.value == measurement.value
    with pytest.raises(ValueError, match="'By' did not parse"):
        u.Unit("By")


def test_other_units_pass_through_and_unknown_ones_are_named() -> None:
    """A unit astropy spells as UCUM does passes through; one it cannot read is a
    ValueError naming it."""
    assert Measurement("p.m", 2.0, "ms").quantity() == 2.0 * u.ms
    assert Measurement("p.m", 2.0, "ms").lsst_unit == "ms"
    with pytest.raises(ValueError, match=r"unit '\{error\}' of p\.m has no astropy form"):
        Measurement("p.m", 1.0, "{error}").quantity()
