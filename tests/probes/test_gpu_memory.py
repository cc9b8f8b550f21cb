"""Peak GPU memory per task: PyTorch's high-water mark and NVML samples, both fold-before-reset."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

import taskmeter
from taskmeter import Task, _log
from taskmeter.probes import CpuTimeProbe, GpuMemoryProbe, ProbeUnavailableError
from taskmeter.probes.gpu_memory import SampledHighWater, process_gpu_memory
from taskmeter.probes.nvml import Nvml
from taskmeter.probes.torch_memory import TorchCudaHighWater
from taskmeter.testing import SpanCapture
from tests.fakes import (
    FUNCTION_NOT_FOUND,
    LIBRARY_NOT_FOUND,
    NO_PERMISSION,
    NOT_SUPPORTED,
    FakeGpu,
    FakeNvml,
    gpu_uuid,
    this_pid,
)

GIB = 1024**3


class FakeCuda:
    """``torch.cuda``'s allocator statistics: per-device current and peak allocated bytes."""

    def __init__(self, devices: int = 1, initialized: bool = True) -> None:
        self.initialized = initialized
        self.allocated = [0] * devices
        self.peak = [0] * devices
        self.resets = 0

    def allocate(self, device: int, size: int) -> None:
        self.allocated[device] += size
        self.peak[device] = max(self.peak[device], self.allocated[device])

    def free(self, device: int, size: int) -> None:
        self.allocated[device] -= size

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return len(self.allocated)

    def max_memory_allocated(self, device: int) -> int:
        return self.peak[device]

    def reset_peak_memory_stats(self, device: int) -> None:
        self.resets += 1
        self.peak[device] = self.allocated[device]


class FakeCudaWithNestedStats(FakeCuda):
    """A ``torch.cuda`` whose nested statistics carry the peak (as torch's do); its
    ``max_memory_allocated`` is not to be called (it is the slow way)."""

    def __init__(self, devices: int = 1, initialized: bool = True, keys: bool = True) -> None:
        super().__init__(devices, initialized)
        self.keys = keys
        self.slow_reads = 0

    def memory_stats_as_nested_dict(self, device: int) -> dict[str, object]:
        if not self.keys:
            return {}
        return {"allocated_bytes": {"all": {"peak": self.peak[device], "current": 0}}}

    def max_memory_allocated(self, device: int) -> int:
        self.slow_reads += 1
        return super().max_memory_allocated(device)


def torch_with(cuda: FakeCuda) -> TorchCudaHighWater:
    return TorchCudaHighWater(SimpleNamespace(cuda=cuda))


def no_nvml() -> Nvml:
    return Nvml(FakeNvml([], init_error=LIBRARY_NOT_FOUND), environ={})


def use(probe: GpuMemoryProbe) -> GpuMemoryProbe:
    taskmeter.set_probes([CpuTimeProbe(), probe])
    return probe


@pytest.mark.parametrize("fake", [FakeCuda, FakeCudaWithNestedStats])
def test_torch_peak_per_task_with_fold_before_reset(
    spans: SpanCapture, fake: type[FakeCuda]
) -> None:
    """Root holds A (5 GiB, freed) then B (1 GiB): A and the root report 5 GiB, B 1 GiB,
    although each task resets torch's process-wide peak when it starts."""
    cuda = fake()
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(cuda)))
    with Task("root") as root:
        with Task("A") as a:
            cuda.allocate(0, 5 * GIB)
            cuda.free(0, 5 * GIB)
        with Task("B") as b:
            cuda.allocate(0, 1 * GIB)
            cuda.free(0, 1 * GIB)
    assert (a.peak_gpu_memory, b.peak_gpu_memory, root.peak_gpu_memory) == (
        5 * GIB,
        1 * GIB,
        5 * GIB,
    )
    assert cuda.resets == 3
    attributes = spans.one("A").attributes or {}
    assert attributes["taskmeter.gpu.memory.peak"] == 5 * GIB


@pytest.mark.parametrize("fake", [FakeCuda, FakeCudaWithNestedStats])
def test_torch_peak_sums_devices(fake: type[FakeCuda]) -> None:
    cuda = fake(devices=2)
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(cuda)))
    with Task("two gpus") as task:
        cuda.allocate(0, 3 * GIB)
        cuda.allocate(1, 2 * GIB)
    assert task.peak_gpu_memory == 5 * GIB


@pytest.mark.parametrize("keys", [True, False], ids=["nested", "nested-without-the-peak"])
def test_torch_peak_is_read_from_the_nested_statistics_where_they_have_it(keys: bool) -> None:
    """The nested statistics are read (11 µs on an H100, where max_memory_allocated takes
    98 µs); a torch whose nested statistics lack the peak is read the usual way."""
    cuda = FakeCudaWithNestedStats(keys=keys)
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(cuda)))
    with Task("nested") as task:
        cuda.allocate(0, 3 * GIB)
    assert task.peak_gpu_memory == 3 * GIB
    assert (cuda.slow_reads == 0) is keys


def test_reset_hwm_false_keeps_the_earlier_torch_peak() -> None:
    cuda = FakeCuda()
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(cuda)))
    with Task("first"):
        cuda.allocate(0, 4 * GIB)
        cuda.free(0, 4 * GIB)
    with Task("second", reset_hwm=False) as second:
        pass
    assert second.peak_gpu_memory == 4 * GIB


def test_cuda_initialised_during_the_task_is_picked_up() -> None:
    cuda = FakeCuda(initialized=False)
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(cuda)))
    with Task("initialises cuda") as task:
        cuda.initialized = True
        cuda.allocate(0, 2 * GIB)
    assert task.peak_gpu_memory == 2 * GIB


def test_torch_without_cuda_gives_none_not_zero() -> None:
    use(GpuMemoryProbe(no_nvml(), torch_source=torch_with(FakeCuda(initialized=False))))
    with Task("cpu only") as task:
        pass
    assert task.peak_gpu_memory is None


def test_real_cpu_torch_gives_none() -> None:
    """The real torch module, imported but without CUDA: the figure is absent."""
    pytest.importorskip("torch")
    use(GpuMemoryProbe(no_nvml()))
    with Task("cpu torch") as task:
        pass
    assert task.peak_gpu_memory is None


def test_probe_never_imports_torch() -> None:
    code = (
        "import sys, taskmeter\n"
        "from taskmeter.probes import GpuMemoryProbe\n"
        "taskmeter.set_probes([GpuMemoryProbe(use_nvml=False)])\n"
        "with taskmeter.Task('t'):\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def gpus_with_process(used: dict[int, int | None]) -> tuple[list[FakeGpu], Nvml]:
    gpus = [FakeGpu(gpu_uuid(0), processes=dict(used)), FakeGpu(gpu_uuid(1))]
    return gpus, Nvml(FakeNvml(gpus), environ={})


def test_nvml_samples_give_per_task_peaks_with_fold_before_reset() -> None:
    pid = this_pid()
    gpus, nvml = gpus_with_process({pid: 600 * 1024**2, 999_999: 7 * GIB})
    probe = use(GpuMemoryProbe(nvml, torch_source=torch_with(FakeCuda(initialized=False))))

    def level(size: int) -> None:
        gpus[0].processes[pid] = size
        probe.sample()

    with Task("root") as root:
        with Task("A") as a:
            level(3 * GIB)
            level(1 * GIB)
        with Task("B") as b:
            level(2 * GIB)
            level(1 * GIB)
    assert (a.peak_gpu_memory, b.peak_gpu_memory, root.peak_gpu_memory) == (
        3 * GIB,
        2 * GIB,
        3 * GIB,
    )


def test_nvml_counts_this_process_on_every_visible_device() -> None:
    pid = this_pid()
    gpus, nvml = gpus_with_process({pid: 1 * GIB})
    gpus[1].processes[pid] = 2 * GIB
    assert process_gpu_memory(nvml, pid) == 3 * GIB


def test_nvml_sampled_by_the_monitor_while_a_task_is_open() -> None:
    pid = this_pid()
    gpus, nvml = gpus_with_process({pid: 1 * GIB})
    probe = use(GpuMemoryProbe(nvml, interval_s=0.01))
    with Task("monitored") as task:
        gpus[0].processes[pid] = 4 * GIB
        count = probe.sample_count
        deadline = time.monotonic() + 5.0
        while probe.sample_count < count + 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        gpus[0].processes[pid] = 1 * GIB
    assert task.peak_gpu_memory == 4 * GIB
    probe.tick()  # the sampler's next tick finds no open task and removes itself
    assert not probe.sampling


def test_torch_figure_wins_over_nvml() -> None:
    """With torch on CUDA the figure is torch's (LensKit's meaning), not the driver's."""
    pid = this_pid()
    _, nvml = gpus_with_process({pid: 3 * GIB})
    cuda = FakeCuda()
    use(GpuMemoryProbe(nvml, torch_source=torch_with(cuda)))
    with Task("torch") as task:
        cuda.allocate(0, 2 * GIB)
    assert task.peak_gpu_memory == 2 * GIB


def test_process_missing_from_nvml_list_gives_none() -> None:
    """In a container NVML lists host PIDs: no match means no figure, not zero."""
    _, nvml = gpus_with_process({424242: 5 * GIB})
    use(GpuMemoryProbe(nvml, torch_source=torch_with(FakeCuda(initialized=False))))
    with Task("container") as task:
        pass
    assert task.peak_gpu_memory is None


def test_usage_not_reported_by_the_driver_gives_none() -> None:
    _, nvml = gpus_with_process({this_pid(): None})
    assert process_gpu_memory(nvml, this_pid()) is None


def test_nvml_error_while_sampling_is_counted() -> None:
    gpus, nvml = gpus_with_process({this_pid(): GIB})
    gpus[1].failing = True
    assert process_gpu_memory(nvml, this_pid()) is None
    assert _log.error_counts["probe.gpu-memory.sample"] == 1


def test_nvml_explicitly_required_but_missing_is_an_error() -> None:
    with pytest.raises(ProbeUnavailableError, match="NVML did not start"):
        GpuMemoryProbe(no_nvml(), required=True)


def test_sampled_high_water_resets_to_the_last_sample() -> None:
    """A reset restarts at the last sample; one that knew nothing keeps the mark but
    leaves the level unknown, so a reset then restarts at nothing."""
    mark = SampledHighWater()
    assert mark.high_water() is None
    mark.observe(10)
    mark.observe(30)
    mark.observe(20)
    mark.reset()
    assert mark.high_water() == 20
    mark.observe(25)
    mark.observe(None)
    assert mark.high_water() == 25
    mark.reset()
    assert mark.high_water() is None
    mark.observe(5)
    assert mark.high_water() == 5


def test_no_sample_restarts_nvml_after_its_shutdown_at_exit() -> None:
    """A sampler tick after NVML's exit-time shutdown neither starts NVML again nor
    changes the open task's peak: it keeps the samples taken while NVML ran."""
    pid = this_pid()
    gpus = [FakeGpu(gpu_uuid(0), processes={pid: 2 * GIB})]
    fake = FakeNvml(gpus)
    nvml = Nvml(fake, environ={})
    probe = use(GpuMemoryProbe(nvml, torch_source=torch_with(FakeCuda(initialized=False))))
    with Task("open at exit") as task:
        gpus[0].processes[pid] = 3 * GIB
        probe.sample()
        nvml.shutdown()  # what atexit runs
        gpus[0].processes[pid] = 5 * GIB
        probe.tick()  # the monitor, still running
        probe.sample()
        assert process_gpu_memory(nvml, pid) is None
        with Task("started after the shutdown") as late:
            probe.sample()
    assert (fake.init_calls, fake.shutdown_calls, fake.initialised) == (1, 1, 0)
    assert task.peak_gpu_memory == 3 * GIB
    assert late.peak_gpu_memory is None  # no sample of its own: absent, not the last one
    assert _log.error_counts == {}


def test_a_task_begun_after_a_failed_sample_reports_no_stale_peak() -> None:
    """Once a sample fails (the GPU lost), the level is unknown: a task begun then, with no
    good sample of its own, has no figure, not the level of the last good sample; the
    tasks open before keep the peaks they saw."""
    pid = this_pid()
    gpus, nvml = gpus_with_process({pid: 4 * GIB})
    probe = use(
        GpuMemoryProbe(
            nvml, torch_source=torch_with(FakeCuda(initialized=False)), interval_s=3600.0
        )
    )
    with Task("root") as root:
        with Task("before") as before:
            probe.sample()
        gpus[0].failing = True
        probe.sample()
        with Task("after") as after:
            probe.sample()
        gpus[0].failing = False
        gpus[0].processes[pid] = 1 * GIB
        with Task("back") as back:
            probe.sample()
    assert (root.peak_gpu_memory, before.peak_gpu_memory) == (4 * GIB, 4 * GIB)
    assert after.peak_gpu_memory is None
    assert back.peak_gpu_memory == 1 * GIB


@pytest.mark.parametrize("code", [NOT_SUPPORTED, FUNCTION_NOT_FOUND, NO_PERMISSION])
def test_process_list_unsupported_by_the_board_is_absent_and_said_once_quietly(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A board (or a driver older than pynvml) that cannot list GPU processes: the figure
    is absent, the reason said once at debug level, and no error is counted or warned
    about on every sample, as for any figure this machine cannot give."""
    pid = this_pid()
    gpus, nvml = gpus_with_process({pid: GIB})
    gpus[0].processes_error = code
    probe = use(
        GpuMemoryProbe(
            nvml, torch_source=torch_with(FakeCuda(initialized=False)), interval_s=3600.0
        )
    )
    caplog.set_level("DEBUG", logger="taskmeter")
    with Task("old board") as task:
        for _ in range(3):
            probe.sample()
    assert task.peak_gpu_memory is None
    assert _log.error_counts == {}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    said = [r.getMessage() for r in caplog.records if "cannot list" in r.getMessage()]
    assert len(said) == 1 and f"GPU 0 ({gpu_uuid(0)})" in said[0], said
