"""Fold-before-reset: every open task keeps its true peak across resets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from taskmeter._rusage import LifetimePeak
from taskmeter.probes.peaks import PeakRegister


class FakeHighWater:
    """A high-water mark the test drives: ``level`` is the current usage."""

    def __init__(self, resettable: bool = True) -> None:
        self.resettable = resettable
        self.level = 0
        self.mark = 0
        self.resets = 0

    def use(self, level: int) -> None:
        self.level = level
        self.mark = max(self.mark, level)

    def high_water(self, usage: object = None) -> int:
        return self.mark

    def reset(self) -> None:
        self.resets += 1
        self.mark = self.level


def test_siblings_are_separated_and_parent_keeps_peak() -> None:
    source = FakeHighWater()
    register = PeakRegister(source)
    source.use(10)
    root = register.open()
    a = register.open()
    source.use(510)
    source.use(10)
    a_peak = register.peak(a)
    register.close(a)
    b = register.open()
    source.use(110)
    source.use(10)
    assert (a_peak, register.peak(b), register.peak(root)) == (510, 110, 510)


def test_peak_after_many_resets_is_max_of_all_intervals() -> None:
    source = FakeHighWater()
    register = PeakRegister(source)
    root = register.open()
    for level in (30, 70, 20, 50):
        child = register.open()
        source.use(level)
        source.use(0)
        register.close(child)
    assert register.peak(root) == 70
    assert source.resets == 5


def test_no_reset_requested_keeps_earlier_usage() -> None:
    source = FakeHighWater()
    register = PeakRegister(source)
    first = register.open()
    source.use(100)
    source.use(0)
    register.close(first)
    second = register.open(reset=False)
    assert register.peak(second) == 100


def test_unresettable_source_gives_process_peak() -> None:
    source = FakeHighWater(resettable=False)
    register = PeakRegister(source)
    source.use(300)
    source.use(0)
    task = register.open()
    source.use(5)
    assert register.peak(task) == 300
    assert source.resets == 0


def test_forget_all_drops_trackers() -> None:
    register = PeakRegister(FakeHighWater())
    register.open()
    register.open()
    register.forget_all()
    assert register.open_count == 0


def test_finish_is_peak_then_close_and_closes_when_the_reading_fails() -> None:
    class Source:
        resettable = True

        def __init__(self) -> None:
            self.level = 100
            self.fail = False

        def high_water(self, usage: object = None) -> int:
            if self.fail:
                raise OSError("unreadable")
            return self.level

        def reset(self) -> None:
            self.level = 10

    source = Source()
    register = PeakRegister(source)
    outer = register.open()
    source.level = 500
    inner = register.open()  # folds 500 into outer, resets to 10
    source.level = 50
    assert register.finish(inner) == 50
    assert register.finish(outer) == 500
    assert register.open_count == 0
    failing = register.open()
    source.fail = True
    with pytest.raises(OSError):
        register.finish(failing)
    assert register.open_count == 0


def test_lifetime_is_folded_before_every_reset_and_forgotten_in_a_child() -> None:
    """A register with a lifetime holder folds ru_maxrss of the reading it was given into
    it before every reset, with no task open around as with some (the largest wins), not
    when it does not reset, and forget_all (a forked child) starts it again at None."""
    lifetime = LifetimePeak()
    register = PeakRegister(FakeHighWater(), lifetime=lifetime)
    first = register.open(usage=SimpleNamespace(ru_maxrss=300))
    register.close(first)
    assert lifetime.peak_bytes == 300 * 1024
    outer = register.open(usage=SimpleNamespace(ru_maxrss=100))
    inner = register.open(usage=SimpleNamespace(ru_maxrss=200))
    assert lifetime.peak_bytes == 300 * 1024
    register.open(reset=False, usage=SimpleNamespace(ru_maxrss=900))
    assert lifetime.peak_bytes == 300 * 1024
    register.open(read_usage=lambda: SimpleNamespace(ru_maxrss=400))
    assert lifetime.peak_bytes == 400 * 1024
    register.close(inner)
    register.close(outer)
    register.forget_all()
    assert lifetime.peak_bytes is None
