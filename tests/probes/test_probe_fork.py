"""Sampled probes work in a child forked while the monitor thread was inside one of them.

The monitor thread takes a probe's lock for each sample (RAPL counters, GPU
power, GPU memory); a fork at that moment copies the lock held, and the
child has no thread to release it.  Each test holds the lock on another
thread across the fork, then measures a task in the child under an alarm.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from taskmeter.figures import Figures
from taskmeter.probes import GpuMemoryProbe, NvmlEnergyProbe, Probe, RaplProbe
from taskmeter.probes.nvml import Nvml
from tests.fakes import FakeGpu, FakeNvml, FakePowercap, gpu_uuid, this_pid

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")

CHILD_SECONDS = 5


@contextmanager
def held_by_another_thread(lock: threading.Lock) -> Iterator[None]:
    """``lock`` held by a thread other than the caller's while the block runs."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


def status_of_child(body: Callable[[], bool]) -> int:
    """Fork; the child runs ``body`` (killed by SIGALRM if it hangs): 0 when it returned True."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        signal.alarm(CHILD_SECONDS)  # the default action ends the child
        ok = False
        try:
            ok = body()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return status


def measures_a_task(probe: Probe, figure: Callable[[Figures], object]) -> Callable[[], bool]:
    def body() -> bool:
        state = probe.begin()
        figures = Figures()
        probe.read(state, figures)
        probe.end(state)
        return figure(figures) is not None

    return body


def test_rapl_probe_in_a_child_forked_during_a_counter_read(tmp_path: Path) -> None:
    powercap = FakePowercap(tmp_path / "sys")
    powercap.zone("intel-rapl:0", "package-0")
    probe = RaplProbe(powercap.root)
    with held_by_another_thread(probe._lock):
        status = status_of_child(measures_a_task(probe, lambda f: f.energy_j.get("cpu")))
    assert status == 0, f"child status {status:#x} (SIGALRM: it hung)"


def test_gpu_energy_probe_in_a_child_forked_during_a_power_sample() -> None:
    nvml = Nvml(FakeNvml([FakeGpu(gpu_uuid(0), energy_mj=None)]), environ={})
    probe = NvmlEnergyProbe(nvml)
    assert probe.sampled_gpus
    with held_by_another_thread(probe._lock):
        status = status_of_child(measures_a_task(probe, lambda f: f.energy_j.get("gpu")))
    assert status == 0, f"child status {status:#x} (SIGALRM: it hung)"


def test_gpu_memory_probe_in_a_child_forked_during_a_memory_sample() -> None:
    gpu = FakeGpu(gpu_uuid(0))
    nvml = Nvml(FakeNvml([gpu]), environ={})
    probe = GpuMemoryProbe(nvml)
    level = probe._nvml_level
    assert level is not None

    def child() -> bool:
        gpu.processes = {this_pid(): 1 << 30}  # the child's own pid
        return measures_a_task(probe, lambda f: f.peak_gpu_memory_bytes)()

    with held_by_another_thread(level._lock):
        status = status_of_child(child)
    assert status == 0, f"child status {status:#x} (SIGALRM: it hung)"
