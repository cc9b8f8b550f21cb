"""On a machine with an NVIDIA GPU: taskmeter's figures against torch and NVML read directly.

Skipped where torch has no CUDA device or NVML does not start (marked ``gpu``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

import taskmeter
from taskmeter import Task
from taskmeter.probes import CpuTimeProbe, GpuMemoryProbe, Nvml, NvmlEnergyProbe, default_probes
from taskmeter.probes.gpu_memory import process_gpu_memory

pytestmark = pytest.mark.gpu

GIB = 1024**3


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    torch.zeros(1, device="cuda")  # create the context before any task
    torch.cuda.synchronize()
    return torch


@pytest.fixture(scope="module")
def nvml(torch: Any) -> Nvml:
    pynvml = pytest.importorskip("pynvml")
    library = Nvml(pynvml)
    if not library.start():
        pytest.skip(f"NVML unusable here: {library.reason}")
    return library


def test_default_probes_measure_gpu_memory_and_energy(torch: Any, nvml: Nvml) -> None:
    taskmeter.set_probes(default_probes("nvml"))
    with Task("gpu work") as task:
        x = torch.ones(GIB // 4, device="cuda")
        torch.cuda.synchronize()
        del x
    assert task.peak_gpu_memory is not None and task.peak_gpu_memory >= GIB
    assert task.gpu_power is not None and task.gpu_power > 0
    assert task.energy_sources["gpu"] in ("nvml-counter", "nvml-sampled", "nvml-counter+sampled")


def test_peak_gpu_memory_is_torchs_peak_per_task(torch: Any, nvml: Nvml) -> None:
    """A (2 GiB at its peak, freed) then B (128 MiB) under a root: each within 5 % of what
    torch reports for it and of the bytes allocated; the root keeps A's peak."""
    taskmeter.set_probes([CpuTimeProbe(), GpuMemoryProbe(nvml)])
    base = torch.cuda.memory_allocated()
    with Task("root") as root:
        with Task("A") as a:
            x = torch.ones(GIB // 4, device="cuda")  # 1 GiB of float32
            y = x * 2  # another GiB
            torch.cuda.synchronize()
            torch_peak_a = torch.cuda.max_memory_allocated()
            del x, y
        with Task("B") as b:
            z = torch.ones(32 * 1024**2, device="cuda")  # 128 MiB
            torch.cuda.synchronize()
            torch_peak_b = torch.cuda.max_memory_allocated()
            del z
    assert a.peak_gpu_memory == pytest.approx(torch_peak_a, rel=0.05)
    assert a.peak_gpu_memory == pytest.approx(base + 2 * GIB, rel=0.05)
    assert b.peak_gpu_memory == pytest.approx(torch_peak_b, rel=0.05)
    assert b.peak_gpu_memory == pytest.approx(base + 128 * 1024**2, rel=0.05)
    assert root.peak_gpu_memory == pytest.approx(base + 2 * GIB, rel=0.05)


class NoTorch:
    """A torch source that never answers, to see NVML's figure alone."""

    resettable = False

    def high_water(self) -> None:
        return None

    def reset(self) -> None:
        return None


def test_nvml_process_memory_matches_nvml_read_directly(torch: Any, nvml: Nvml) -> None:
    pid = os.getpid()
    if process_gpu_memory(nvml, pid) is None:
        pytest.skip("NVML does not list this process (a container with its own PID namespace?)")
    probe = GpuMemoryProbe(nvml, torch_source=NoTorch(), interval_s=0.05)
    taskmeter.set_probes([probe])
    with Task("nvml memory") as task:
        x = torch.ones(GIB // 2, device="cuda")  # 2 GiB
        torch.cuda.synchronize()
        direct = process_gpu_memory(nvml, pid)
        count = probe.sample_count
        deadline = time.monotonic() + 10
        while probe.sample_count < count + 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        del x
    assert direct is not None
    assert task.peak_gpu_memory == pytest.approx(direct, rel=0.05)


def busy_gpu(torch: Any, seconds: float) -> None:
    a = torch.randn(8192, 8192, device="cuda")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(10):
            a = torch.tanh(a @ a)
        torch.cuda.synchronize()


def counters(nvml: Nvml) -> Callable[[], float]:
    module = nvml.module

    def joules() -> float:
        return (
            sum(module.nvmlDeviceGetTotalEnergyConsumption(g.gpu_handle) for g in nvml.gpus()) / 1e3
        )

    return joules


def test_gpu_energy_matches_the_nvml_counter_read_directly(torch: Any, nvml: Nvml) -> None:
    probe = NvmlEnergyProbe(nvml, method="counter")
    if not probe.available:
        pytest.skip(f"no energy counter: {probe.reason}")
    taskmeter.set_probes([CpuTimeProbe(), probe])
    direct = counters(nvml)
    before = direct()
    with Task("matmuls") as task:
        busy_gpu(torch, 8.0)
    after = direct()
    assert task.energy_sources == {"gpu": "nvml-counter"}
    assert task.gpu_power == pytest.approx(after - before, rel=0.05)


def test_short_tasks_share_the_counters_energy(torch: Any, nvml: Nvml) -> None:
    """Tasks of 20 ms, shorter than the counter's steps (100 ms on an H100), each get
    energy at a power near what the GPU can draw, none 0 J and none a whole step (a 1 ms
    task got 18 J, 18 kW, from differencing the counter); the task around them is the
    counter's advance."""
    probe = NvmlEnergyProbe(nvml, method="counter")
    if not probe.available:
        pytest.skip(f"no energy counter: {probe.reason}")
    taskmeter.set_probes([CpuTimeProbe(), probe])
    direct = counters(nvml)
    limit_w = (
        sum(nvml.module.nvmlDeviceGetEnforcedPowerLimit(g.gpu_handle) for g in nvml.gpus()) / 1e3
    )
    before = direct()
    with Task("steps") as outer:
        busy_gpu(torch, 1.0)
        shorts = []
        x = torch.randn(4096, 4096, device="cuda")
        for _ in range(200):
            with Task("short") as short:
                deadline = time.monotonic() + 0.02
                while time.monotonic() < deadline:
                    x = torch.tanh(x @ x)
                    torch.cuda.synchronize()
            shorts.append(short)
        busy_gpu(torch, 1.0)
    after = direct()
    for short in shorts:
        assert short.gpu_power is not None and short.duration is not None
        assert 0 < short.gpu_power <= 2 * limit_w * short.duration
    assert outer.gpu_power == pytest.approx(after - before, rel=0.05)
    inside = sum(s.gpu_power or 0.0 for s in shorts)
    assert inside <= outer.gpu_power


def test_sampled_power_agrees_with_the_counter(torch: Any, nvml: Nvml) -> None:
    """The fallback for GPUs without a counter, checked on one that has it.  NVML's power is
    an average over about a second, so the tolerance is wider: 10 % over 10 s of load."""
    if not NvmlEnergyProbe(nvml, method="counter").available:
        pytest.skip("no energy counter to compare with")
    probe = NvmlEnergyProbe(nvml, method="sampled", power_interval_s=0.05)
    taskmeter.set_probes([CpuTimeProbe(), probe])
    direct = counters(nvml)
    before = direct()
    with Task("sampled matmuls") as task:
        busy_gpu(torch, 10.0)
    after = direct()
    assert task.energy_sources == {"gpu": "nvml-sampled"}
    assert task.gpu_power == pytest.approx(after - before, rel=0.10)
