"""Peak GPU memory of a command's process tree, sampled through NVML.

The GPU memory probe of a ``Task`` measures the process it runs in; under
``taskmeter run`` that is taskmeter, which uses no GPU.  The command's figure
is the peak, over run's samples, of the GPU memory NVML charges to the
command's processes (their ``usedGpuMemory`` summed over the processes and
the visible devices).  A peak shorter than the sampling interval can be
missed, as for the tree's summed RSS.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._log import swallowed

if TYPE_CHECKING:
    from ..probes.base import Probe
    from ..probes.nvml import Nvml


class TreeGpuMemory:
    """The peak of the GPU memory NVML charges to a set of processes, over samples.

    :attr:`peak_bytes` stays ``None`` until a sample finds one of the
    processes on a GPU's list (as a ``Task`` of a process NVML does not list
    has no figure); a sample that fails counts for nothing.
    """

    def __init__(self, nvml: Nvml) -> None:
        self.nvml = nvml
        self.peak_bytes: int | None = None
        self.last_cost_s = 0.0
        """CPU seconds the last sample used (the caller spaces samples by it)."""

    def sample(self, pids: Iterable[int]) -> None:
        """Read the GPU memory of ``pids`` now and keep the peak; never raises."""
        from ..probes.gpu_memory import processes_gpu_memory

        began = time.thread_time()
        try:
            used = processes_gpu_memory(self.nvml, frozenset(pids))
        except Exception as exc:
            swallowed("run.gpu-memory", exc)
            used = None
        if used is not None and (self.peak_bytes is None or used > self.peak_bytes):
            self.peak_bytes = used
        self.last_cost_s = time.thread_time() - began


def tree_gpu_memory(probes: Iterable[Probe]) -> TreeGpuMemory | None:
    """A sampler over the NVML of the first GPU memory probe that uses it, if any."""
    from ..probes.gpu_memory import GpuMemoryProbe

    for probe in probes:
        if isinstance(probe, GpuMemoryProbe) and probe.nvml is not None:
            return TreeGpuMemory(probe.nvml)
    return None
