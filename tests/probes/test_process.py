"""The process probe: CPU and peak RSS from one getrusage per reading, figures unchanged."""

from __future__ import annotations

import resource
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

import taskmeter
from taskmeter import Task
from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe, PeakMemoryProbe, ProcessProbe
from taskmeter.probes import process as process_module
from taskmeter.probes.memory import LinuxRssHighWater

from ..helpers import MIB, burn_cpu, current_rss, touch_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def test_is_the_default_and_gives_both_figures() -> None:
    assert [p.name for p in taskmeter.active_probes()][:1] == ["process"]
    base = current_rss()
    with Task("burn and hold") as task:
        burn_cpu(0.2)
        block = touch_bytes(100 * MIB)
        del block
    # The burn is user time; faulting 100 MiB in is mostly system time.
    assert task.cpu_user_time == pytest.approx(0.2, abs=0.05)
    assert task.cpu_time is not None and task.cpu_time >= 0.2
    assert task.peak_memory == pytest.approx(base + 100 * MIB, rel=0.05)


def test_agrees_with_the_separate_probes() -> None:
    combined = ProcessProbe()
    cpu, memory = CpuTimeProbe(), PeakMemoryProbe()
    states = [combined.begin(), cpu.begin(), memory.begin()]
    block = touch_bytes(50 * MIB)
    burn_cpu(0.1)
    del block
    together, apart = Figures(), Figures()
    combined.read(states[0], together)
    cpu.read(states[1], apart)
    memory.read(states[2], apart)
    for probe, state in zip((combined, cpu, memory), states, strict=True):
        probe.end(state)
    assert together.cpu_time_s == pytest.approx(apart.cpu_time_s, abs=0.01)
    assert together.peak_memory_bytes == pytest.approx(apart.peak_memory_bytes, rel=0.01)


def test_one_getrusage_per_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_getrusage = resource.getrusage

    def counting(who: int) -> Any:
        nonlocal calls
        calls += 1
        return real_getrusage(who)

    monkeypatch.setattr(process_module, "_getrusage", counting)
    monkeypatch.setattr(resource, "getrusage", _forbidden)
    probe = ProcessProbe()
    outer = probe.begin()
    inner = probe.begin()  # folds the outer task's peak: no extra call
    probe.read(inner, Figures())
    probe.end(inner)
    probe.read(outer, Figures())
    probe.end(outer)
    assert calls == 4


def _forbidden(who: int) -> Any:
    raise AssertionError("getrusage called again instead of reusing the reading")


def usage(maxrss_bytes: int) -> SimpleNamespace:
    return SimpleNamespace(ru_maxrss=maxrss_bytes // 1024)


class TestExecFloor:
    """ru_maxrss = max(S, H): taken as the mark only when S cannot exceed H."""

    def source(self, monkeypatch: pytest.MonkeyPatch, rss: int, vm_hwm: int) -> LinuxRssHighWater:
        source = LinuxRssHighWater()
        monkeypatch.setattr(source, "_current_rss", lambda: rss)
        monkeypatch.setattr(source, "_read_vm_hwm", lambda: vm_hwm)
        return source

    def test_at_most_the_rss_now_is_the_mark(self, monkeypatch: pytest.MonkeyPatch) -> None:
        source = self.source(monkeypatch, rss=100 * MIB, vm_hwm=100 * MIB)
        assert source.high_water(usage(80 * MIB)) == 80 * MIB
        source.reset()
        assert source.high_water(usage(90 * MIB)) == 90 * MIB  # >= the proven bound

    def test_above_vm_hwm_reveals_the_floor(self, monkeypatch: pytest.MonkeyPatch) -> None:
        source = self.source(monkeypatch, rss=40 * MIB, vm_hwm=50 * MIB)
        assert source.high_water(usage(600 * MIB)) == 50 * MIB  # S = 600 MiB
        assert source.high_water(usage(600 * MIB)) == 50 * MIB  # still VmHWM
        source.reset()
        monkeypatch.setattr(source, "_read_vm_hwm", lambda: 30 * MIB)
        assert source.high_water(usage(600 * MIB)) == 30 * MIB  # H below S: VmHWM
        source.reset()
        assert source.high_water(usage(700 * MIB)) == 700 * MIB  # above S: the mark


def test_a_getrusage_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(who: int) -> Any:
        raise OSError("getrusage failed")

    taskmeter.set_probes([ProcessProbe()])
    monkeypatch.setattr(process_module, "_getrusage", failing)
    with Task("still runs") as task:
        pass
    assert task.status.value == "finished"
    assert task.cpu_time is None and task.peak_memory is None
    assert task.duration is not None


def test_finish_gives_what_read_then_end_gives_and_closes_the_tracker() -> None:
    """ProcessProbe.finish (one lock for the peak and the close) against read + end."""
    probe = ProcessProbe()
    fused_state, apart_state = probe.begin(), probe.begin(reset_peak=False)
    # Above glibc's largest dynamic mmap threshold (32 MiB): freeing a smaller
    # block would raise the threshold, and later tests' blocks would reuse
    # resident heap memory instead of raising the RSS.
    block = touch_bytes(50 * MIB)
    burn_cpu(0.05)
    del block
    fused, apart = Figures(), Figures()
    probe.finish(fused_state, fused)
    probe.read(apart_state, apart)
    probe.end(apart_state)
    assert probe.register.open_count == 0
    assert fused.cpu_user_s == pytest.approx(apart.cpu_user_s, abs=0.01)
    assert fused.cpu_system_s == pytest.approx(apart.cpu_system_s, abs=0.01)
    assert fused.peak_memory_bytes is not None and apart.peak_memory_bytes is not None
    assert fused.peak_memory_bytes >= 50 * MIB
    assert fused.peak_memory_bytes == pytest.approx(apart.peak_memory_bytes, rel=0.01)


def test_a_getrusage_failure_at_finish_still_closes_the_tracker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracker left open would be folded into on every later reset, for ever."""
    from taskmeter import _log
    from taskmeter.probes.base import begin_probes, finish_probes

    probe = ProcessProbe()
    states = begin_probes([probe], True)
    assert probe.register.open_count == 1

    def failing(who: int) -> Any:
        raise OSError("getrusage failed")

    monkeypatch.setattr(process_module, "_getrusage", failing)
    before = _log.error_counts.get("probe.process.read", 0)
    figures = Figures()
    finish_probes(states, figures)
    assert probe.register.open_count == 0
    assert figures.cpu_user_s is None and figures.peak_memory_bytes is None
    assert _log.error_counts.get("probe.process.read", 0) == before + 1


def test_a_changed_read_or_end_is_not_bypassed_by_the_inherited_finish() -> None:
    """finish_probes uses a class's finish() only where read() and end() are that class's."""
    from taskmeter.probes.base import begin_probes, finish_probes

    calls: list[str] = []

    class OwnRead(ProcessProbe):
        def read(self, state: Any, figures: Figures) -> None:
            calls.append("read")
            super().read(state, figures)

    class OwnEnd(ProcessProbe):
        def end(self, state: Any) -> None:
            calls.append("end")
            super().end(state)

    replaced = ProcessProbe()
    original_read = replaced.read

    def read_on_instance(state: Any, figures: Figures) -> None:
        calls.append("instance read")
        original_read(state, figures)

    replaced.read = read_on_instance  # type: ignore[method-assign]
    probes = [OwnRead(), OwnEnd(), replaced, ProcessProbe()]
    figures = Figures()
    finish_probes(begin_probes(probes, True), figures)
    assert calls == ["read", "end", "instance read"]
    assert all(probe.register.open_count == 0 for probe in probes)
    assert figures.cpu_user_s is not None and figures.peak_memory_bytes is not None


class _MarkSource:
    """A resettable high-water mark under the test's control: ``mark`` is the level, the
    reading is the ``ru_maxrss`` of the usage it is given (in KiB, as Linux's)."""

    resettable = True

    def __init__(self) -> None:
        self.mark = 100
        self.level_after_reset = 50

    def high_water(self, usage: Any = None) -> int | None:
        return int(usage.ru_maxrss) if usage is not None else self.mark

    def reset(self) -> None:
        self.mark = self.level_after_reset


def test_a_task_starting_folds_the_mark_read_at_the_reset_into_the_open_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task that starts while another thread holds the high-water register reads the
    mark once it holds it, just before its reset: a peak reached meanwhile (by other
    threads) is folded into every open task, not lost with a reading taken earlier."""
    source = _MarkSource()
    probe = ProcessProbe(source)  # type: ignore[arg-type]
    monkeypatch.setattr(
        process_module,
        "_getrusage",
        lambda who: SimpleNamespace(ru_utime=0.0, ru_stime=0.0, ru_maxrss=source.mark),
    )
    outer = probe.begin()
    probe.register._lock.acquire()  # another thread's reading or reset, in progress
    starter = threading.Thread(target=probe.begin)
    starter.start()
    time.sleep(0.2)  # the starting task waits for the register
    source.mark = 200  # the peak reached meanwhile; then it falls back
    probe.register._lock.release()
    starter.join(5)
    figures = Figures()
    probe.finish(outer, figures)
    assert figures.peak_memory_bytes == 200
