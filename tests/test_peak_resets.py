"""A task's reset of a process-wide high-water mark corrupts no other peak reading.

Each task resets the kernel's RSS mark, which also lowers ``ru_maxrss``: the
``MaxResidentSetSize`` keys of ``time_method``/``log_info`` and the peaks of
``time_this`` stay the process's peak since it started.  And the mark has one
register for the process, whichever probes read it, so a reset always folds
into every open task.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import taskmeter
from taskmeter import Task, time_method, time_this
from taskmeter._rusage import PROCESS_RSS_PEAK, read_usage
from taskmeter.measure import MemoryMetric
from taskmeter.probes import (
    GpuMemoryProbe,
    LinuxRssHighWater,
    PeakMemoryProbe,
    ProcessProbe,
    default_probes,
)
from taskmeter.probes.memory import default_high_water_source
from tests.fakes import LIBRARY_NOT_FOUND, FakeNvml
from tests.probes.test_gpu_memory import FakeCuda, torch_with

from .helpers import MIB, current_rss, touch_bytes

linux_proc = pytest.mark.skipif(
    not (
        isinstance(default_high_water_source(), LinuxRssHighWater)
        and default_high_water_source().resettable
    ),
    reason="needs a resettable /proc/self/clear_refs",
)

MAXRSS_INDEX = 3  # MaxResidentSetSize in read_usage()


@pytest.fixture
def fresh_process_peak() -> Iterator[int]:
    """This process as if it had just started at its current RSS: nothing folded into the
    lifetime peak, the kernel's mark reset by a task.  Yields the RSS then, in bytes."""
    before = PROCESS_RSS_PEAK.peak_bytes
    PROCESS_RSS_PEAK.peak_bytes = None
    with Task("reset the mark"):
        pass
    PROCESS_RSS_PEAK.peak_bytes = None
    base = current_rss()
    if resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 > base + 20 * MIB:
        pytest.skip("ru_maxrss is floored above the RSS (a large parent exec'ed this process)")
    yield base
    after = PROCESS_RSS_PEAK.peak_bytes
    if before is not None and (after is None or before > after):
        PROCESS_RSS_PEAK.peak_bytes = before


class Isr:
    """A pipeline task whose method touches 400 MiB, then opens a Task (writing output)."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    def run(self) -> None:
        block = touch_bytes(400 * MIB)
        del block
        with Task("write output"):
            pass


class Quiet:
    """A pipeline task whose method only opens a Task."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    @time_method
    def run(self) -> None:
        with Task("inner"):
            pass


@linux_proc
def test_memory_metric_of_a_method_with_a_task_inside_is_the_methods_peak(
    fresh_process_peak: int,
) -> None:
    """MemoryMetric (EndMaxResidentSetSize) of a method that touched 400 MiB and then
    ran a Task is base + 400 MiB, not the RSS after the Task's reset."""
    isr = Isr()
    isr.run()
    measured = MemoryMetric(target="run", package="pipe_tasks", metric="IsrMemory").measure(
        isr.metadata
    )
    assert measured is not None
    assert measured.value == pytest.approx(fresh_process_peak + 400 * MIB, rel=0.05)


@linux_proc
def test_end_max_rss_is_never_below_start_with_tasks_inside() -> None:
    """runEndMaxResidentSetSize >= runStartMaxResidentSetSize for every call whose method
    opens a Task, after the process touched 400 MiB (freed) before the calls."""
    block = touch_bytes(400 * MIB)
    del block
    quiet = Quiet()
    for _ in range(3):
        quiet.run()
    starts = quiet.metadata["runStartMaxResidentSetSize"]
    ends = quiet.metadata["runEndMaxResidentSetSize"]
    assert len(starts) == len(ends) == 3
    for start, end in zip(starts, ends, strict=True):
        assert end >= start
    assert starts[0] >= current_rss() + 0.95 * 400 * MIB


@linux_proc
def test_time_this_peak_delta_is_not_negative_across_a_task() -> None:
    """time_this(mem_usage=True) around a Task, after a 400 MiB peak: the peak delta is
    >= 0 (a reset no longer lowers the peak it reads at the end)."""
    block = touch_bytes(400 * MIB)
    del block
    with (
        time_this(msg="train", mem_usage=True, force_mem_usage=True, mem_unit="MiB") as timer,
        Task("train"),
    ):
        pass
    assert timer.mem_peak_delta is not None
    assert timer.mem_peak_delta >= 0


@linux_proc
def test_read_usage_is_the_larger_of_ru_maxrss_and_the_lifetime_peak(
    fresh_process_peak: int,
) -> None:
    """MaxResidentSetSize is ru_maxrss while it is the larger, and the peak folded in at
    a reset once the reset has lowered ru_maxrss below it."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert read_usage()[MAXRSS_INDEX] >= own
    with Task("big"):
        block = touch_bytes(300 * MIB)
        del block
    with Task("after"):  # resets the mark: ru_maxrss falls to the RSS now
        lowered = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert lowered < fresh_process_peak + 100 * MIB
        assert read_usage()[MAXRSS_INDEX] == pytest.approx(fresh_process_peak + 300 * MIB, rel=0.05)


@linux_proc
def test_probes_replaced_inside_a_running_root_keep_its_peak() -> None:
    """set_probes(default_probes()) while a root task runs: the new probes' resets fold
    into the root, which reports base + 400 MiB when its subtask A touched 400 MiB."""
    base = current_rss()
    with Task("root") as root:
        taskmeter.set_probes(default_probes())
        with Task("A") as a:
            block = touch_bytes(400 * MIB)
            del block
        with Task("B"):
            pass
    assert a.peak_memory == pytest.approx(base + 400 * MIB, rel=0.05)
    assert root.peak_memory == pytest.approx(base + 400 * MIB, rel=0.05)


@linux_proc
def test_two_memory_probes_side_by_side_keep_the_roots_peak() -> None:
    """ProcessProbe and PeakMemoryProbe over the process's mark: each one's resets fold
    into the other's trackers, so the root reports base + 400 MiB."""
    taskmeter.set_probes([ProcessProbe(), PeakMemoryProbe()])
    base = current_rss()
    with Task("root") as root:
        with Task("A") as a:
            block = touch_bytes(400 * MIB)
            del block
        with Task("B") as b:
            pass
    assert a.peak_memory == pytest.approx(base + 400 * MIB, rel=0.05)
    assert root.peak_memory == pytest.approx(base + 400 * MIB, rel=0.05)
    assert b.peak_memory is not None and b.peak_memory < base + 100 * MIB


def test_one_register_per_physical_mark() -> None:
    """Every probe over this process's RSS mark (default or an explicit /proc/self
    source) shares one register; a tree a test built gets its own, apart from it."""
    shared = ProcessProbe().register
    assert PeakMemoryProbe().register is shared
    assert ProcessProbe(LinuxRssHighWater()).register is shared
    # This process named by its id is /proc/self too.
    assert ProcessProbe(LinuxRssHighWater(pid=os.getpid())).register is shared
    fake = LinuxRssHighWater(procfs="/nonexistent-procfs", pid=1)
    assert ProcessProbe(fake).register is not shared
    assert PeakMemoryProbe(fake).register is not shared


def no_nvml() -> Any:
    from taskmeter.probes.nvml import Nvml

    return Nvml(FakeNvml([], init_error=LIBRARY_NOT_FOUND), environ={})


def test_pytorch_peaks_have_one_register_for_every_gpu_memory_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two GpuMemoryProbes over the program's torch (a fake with CUDA initialised): a task
    of the second probe resets the peak after folding it into the first probe's root, which
    keeps the 3 GiB its subtask allocated; stand-in sources stay apart."""
    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    first = GpuMemoryProbe(no_nvml())
    second = GpuMemoryProbe(no_nvml())
    taskmeter.set_probes([first])
    with Task("root") as root:
        taskmeter.set_probes([second])
        with Task("A") as a:
            cuda.allocate(0, 3 << 30)
            cuda.free(0, 3 << 30)
        with Task("B") as b:
            pass
    assert a.peak_gpu_memory == 3 << 30
    assert b.peak_gpu_memory == 0
    assert root.peak_gpu_memory == 3 << 30
    assert first.torch_register is second.torch_register
    stand_in = GpuMemoryProbe(no_nvml(), torch_source=torch_with(FakeCuda()))
    assert stand_in.torch_register is not first.torch_register


@linux_proc
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_starts_its_lifetime_peak_at_its_own_ru_maxrss() -> None:
    """After the parent folded a 400 MiB peak, a forked child's MaxResidentSetSize is its
    own ru_maxrss (not the parent's peak), and its tasks' resets fold its own peaks."""
    with Task("parent's big"):
        block = touch_bytes(400 * MIB)
        del block
    with Task("parent's reset"):
        pass
    parent_peak = PROCESS_RSS_PEAK.peak_bytes
    assert parent_peak is not None and parent_peak >= current_rss() + 0.95 * 400 * MIB
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read_fd)
            result: dict[str, Any] = {
                "folded": PROCESS_RSS_PEAK.peak_bytes,
                "usage": read_usage()[MAXRSS_INDEX],
                "own": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
            base = current_rss()
            with Task("child root") as root:
                with Task("child A"):
                    child_block = touch_bytes(200 * MIB)
                    del child_block
                with Task("child B"):
                    pass
            result.update(base=base, root=root.peak_memory, after=read_usage()[MAXRSS_INDEX])
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    child = json.loads(data)
    assert child["folded"] is None
    assert child["usage"] == pytest.approx(child["own"], abs=4 * MIB)
    assert child["usage"] < parent_peak - 300 * MIB
    assert child["root"] == pytest.approx(child["base"] + 200 * MIB, rel=0.05)
    assert child["after"] >= child["base"] + 0.95 * 200 * MIB
