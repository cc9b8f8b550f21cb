"""Fold-before-reset: every open task keeps its true peak across resets."""

from __future__ import annotations

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

    def high_water(self) -> int:
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
