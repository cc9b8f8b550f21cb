"""Peak GPU memory of this process during each task (``taskmeter.gpu.memory.peak``).

Two sources, each a high-water mark kept right for nested and sequential
tasks by a :class:`~taskmeter.probes.peaks.PeakRegister`: PyTorch's, one for
the process and shared by every probe; a sampled NVML mark, one per probe
(each probe samples and resets its own):

* **PyTorch** (:mod:`taskmeter.probes.torch_memory`): the peak memory its
  allocator gave to tensors, exact, when the program uses torch with CUDA.
  This is LensKit's figure, and it wins when present.
* **NVML**: the memory the driver charges to this process (its compute
  processes' ``usedGpuMemory`` on every visible GPU or MIG device), which
  includes the CUDA context and cached blocks.  The driver keeps no peak, so
  the monitor samples it while a task is open: spikes shorter than the
  sampling interval are missed, and a task shorter than it reports the level
  at its start.  In a container without the host's PID namespace NVML lists
  host PIDs that do not match this process; the figure is then absent.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from .. import _process
from .._log import debug_once, swallowed
from ..figures import Figures
from .errors import ProbeUnavailableError
from .nvml import Nvml, default_nvml, unsupported
from .peaks import HighWaterSource, PeakRegister, PeakTracker
from .sampling import SampledProbe
from .torch_memory import torch_register

DEFAULT_MEMORY_INTERVAL_S = 0.2
"""Seconds between samples of this process's GPU memory through NVML."""


class SampledHighWater:
    """A high-water mark kept from periodic samples; a reset restarts it at the last sample.

    A sample that knows nothing (``None``: a failed query, the GPU lost) keeps
    the mark (the samples before it were real), but the level is unknown from
    then on: a reset before the next good sample restarts the mark at nothing,
    so a task begun then is not charged the level of a sample from before it.
    """

    resettable = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.level: int | None = None
        self._mark: int | None = None

    def observe(self, level: int | None) -> None:
        """Record a sample (``None``: nothing known now)."""
        with self._lock:
            self.level = level
            if level is not None and (self._mark is None or level > self._mark):
                self._mark = level

    def high_water(self, usage: Any = None) -> int | None:
        """The highest sample since the last reset."""
        return self._mark

    def reset(self) -> None:
        """Restart the mark at the last sample (at nothing if it knew nothing)."""
        with self._lock:
            self._mark = self.level

    def after_fork_in_child(self) -> None:
        """Make the lock anew: the monitor thread may have held it at the fork."""
        self._lock = threading.Lock()


class _GpuMemoryState:
    __slots__ = ("nvml", "token", "torch")

    def __init__(self, token: int, torch: PeakTracker, nvml: PeakTracker | None) -> None:
        self.token = token
        self.torch = torch
        self.nvml = nvml


class GpuMemoryProbe(SampledProbe):
    """Peak GPU memory of this process during each task, in bytes.

    Args:
        nvml: The NVML library (default: the process's, over ``pynvml``).
        use_nvml: Sample this process's GPU memory through NVML (when it works).
        torch_source: The PyTorch high-water source (default: the real one,
            live only if the program imported torch and initialised CUDA).
        required: Raise :class:`ProbeUnavailableError` if NVML cannot be used.
        interval_s: Seconds between NVML samples while a task is open.
    """

    name = "gpu-memory"

    def __init__(
        self,
        nvml: Nvml | None = None,
        *,
        use_nvml: bool = True,
        torch_source: HighWaterSource | None = None,
        required: bool = False,
        interval_s: float = DEFAULT_MEMORY_INTERVAL_S,
    ) -> None:
        super().__init__()
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.torch_register = torch_register(torch_source)
        self.nvml: Nvml | None = None
        self.nvml_register: PeakRegister | None = None
        self._nvml_level: SampledHighWater | None = None
        if use_nvml:
            nvml = nvml if nvml is not None else default_nvml()
            if nvml.start():
                self.nvml = nvml
                self._nvml_level = SampledHighWater()
                self.nvml_register = PeakRegister(self._nvml_level)
                self.sample_interval = interval_s
            elif required:
                raise ProbeUnavailableError(
                    f"GPU memory through NVML asked for but unavailable: {nvml.reason}"
                )
            else:
                debug_once("nvml.memory", "no GPU memory through NVML: %s", nvml.reason)

    def begin(self, *, reset_peak: bool = True) -> _GpuMemoryState:
        register = self.nvml_register
        if register is not None and self.nvml is not None and self.nvml.shut_down:
            # No sample can be taken any more: the last one is no figure of this task.
            register = None
        token = self._task_opened() if register is not None else 0
        try:
            torch = self.torch_register.open(reset=reset_peak)
            nvml = register.open(reset=reset_peak) if register is not None else None
        except BaseException:
            if register is not None:
                self._task_closed(token)
            raise
        return _GpuMemoryState(token, torch, nvml)

    def read(self, state: _GpuMemoryState, figures: Figures) -> None:
        # A task open when NVML was shut down (at exit) keeps the peak of the
        # samples taken while it ran (sampled, as always); none is taken after.
        peak = self.torch_register.peak(state.torch)
        if peak is None and state.nvml is not None and self.nvml_register is not None:
            peak = self.nvml_register.peak(state.nvml)
        if peak is not None:
            figures.peak_gpu_memory_bytes = peak

    def end(self, state: _GpuMemoryState) -> None:
        self.torch_register.close(state.torch)
        if state.nvml is not None and self.nvml_register is not None:
            self.nvml_register.close(state.nvml)
            self._task_closed(state.token)

    def _sampling_started(self) -> None:
        self.sample()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        if self._nvml_level is not None:
            self._nvml_level.after_fork_in_child()

    def sample(self) -> None:
        """Sample this process's GPU memory (bytes, all visible devices) through NVML."""
        nvml, level = self.nvml, self._nvml_level
        if nvml is None or level is None:
            return
        level.observe(process_gpu_memory(nvml, _process.current_pid()))


def process_gpu_memory(nvml: Nvml, pid: int) -> int | None:
    """GPU memory NVML charges to process ``pid`` on the visible devices, in bytes.

    ``None`` when the process is on no visible device's list, or when the
    driver does not report its usage.
    """
    listed = _listed_gpu_memory(nvml, {pid})
    if listed is None:
        return None
    total, found, others = listed
    if not found:
        if others:
            debug_once(
                "nvml.memory.pid",
                "this process (pid %d) is not among the GPU processes NVML lists; in a "
                "container without the host PID namespace NVML reports host PIDs",
                pid,
            )
        return None
    return total


def processes_gpu_memory(nvml: Nvml, pids: Collection[int]) -> int | None:
    """GPU memory NVML charges to the processes ``pids``, summed over them and the devices.

    ``None`` when none of them is on a visible device's list (they use no
    GPU, or NVML lists host PIDs that do not match them), when the driver
    does not report the usage of one of them, or when NVML cannot be queried.
    """
    listed = _listed_gpu_memory(nvml, pids)
    if listed is None:
        return None
    total, found, _ = listed
    return total if found else None


def _listed_gpu_memory(nvml: Nvml, pids: Collection[int]) -> tuple[int, bool, bool] | None:
    """The GPU memory of ``pids`` on the visible devices' process lists.

    Returns the bytes, whether any of ``pids`` was listed, and whether other
    processes were; ``None`` when there is no reading (NVML unusable or shut
    down, a list that cannot be read, a usage the driver does not report).
    """
    devices = nvml.devices()
    module = nvml.started_module()
    if not devices or module is None:  # unusable, or shut down (at exit)
        return None
    total = 0
    found = False
    others = False
    for device in devices:
        try:
            processes = module.nvmlDeviceGetComputeRunningProcesses(device.handle)
        except module.NVMLError as exc:
            if nvml.shut_down:  # shut down meanwhile: no reading, nothing amiss
                return None
            if unsupported(exc):  # a lasting property of the board: no figure, said once
                debug_once(
                    f"nvml.memory.unsupported.{device.uuid}",
                    "NVML cannot list the processes on GPU %d (%s): %s; no GPU memory "
                    "figure through NVML",
                    device.index,
                    device.uuid,
                    exc,
                )
            else:
                swallowed("probe.gpu-memory.sample", exc)
            return None
        for process in processes:
            if process.pid not in pids:
                others = True
                continue
            used = process.usedGpuMemory
            if used is None:
                debug_once("nvml.memory.na", "NVML does not report a process's GPU memory")
                return None
            total += int(used)
            found = True
    return total, found, others
