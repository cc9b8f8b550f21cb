"""GPU energy in a forked worker that sets CUDA_VISIBLE_DEVICES to its own GPUs.

A pool worker forked from a parent that sees some GPUs often narrows (or
widens) its view before its first task.  NVML lists the child's GPUs anew from
its environment; the energy probe must measure exactly those, and a task open
across the change must have no GPU energy rather than a sum over other GPUs.
Each test forks for real; the child reports its figures through a pipe.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from collections.abc import Callable, Iterator

import pytest

import taskmeter
from taskmeter import Task, _log
from taskmeter.figures import Figures
from taskmeter.probes import CpuTimeProbe, NvmlEnergyProbe
from taskmeter.probes.gpu_energy import GPUS_CHANGED
from taskmeter.probes.nvml import Nvml
from tests.fakes import FakeGpu, FakeNvml, gpu_uuid

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")

CHILD_SECONDS = 10
VISIBLE = "CUDA_VISIBLE_DEVICES"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def visible(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """Set (or, with ``None``, unset) the parent's CUDA_VISIBLE_DEVICES for the test."""

    def set_visible(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(VISIBLE, raising=False)
        else:
            monkeypatch.setenv(VISIBLE, value)

    yield set_visible


def in_child(body: Callable[[], object]) -> object:
    """Fork; the child runs ``body`` (ended by SIGALRM if it hangs); its result, from JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        signal.alarm(CHILD_SECONDS)
        os.close(read_end)
        status = 1
        try:
            os.write(write_end, json.dumps(body()).encode())
            status = 0
        except BaseException:
            os.write(2, traceback.format_exc().encode())  # shown with the test's failure
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"child status {status:#x}"
    return json.loads(output)


def counter_gpus() -> list[FakeGpu]:
    """Two GPUs with energy counters, at 10 W and 100 W."""
    return [FakeGpu(gpu_uuid(0), power_mw=10_000), FakeGpu(gpu_uuid(1), power_mw=100_000)]


def run_steadily(probe: NvmlEnergyProbe, clock: Clock, gpus: list[FakeGpu]) -> None:
    """Each GPU uses its power for a second; then the probe reads the counters."""
    for gpu in gpus:
        assert gpu.power_mw is not None
        gpu.use_energy(gpu.power_mw / 1000)
    clock.now += 1.0
    probe.sample()


def sampled_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=100_000),
        FakeGpu(gpu_uuid(1), energy_mj=None, power_mw=250_000),
    ]


def probe_over(gpus: list[FakeGpu], clock: Clock | None = None) -> NvmlEnergyProbe:
    """An energy probe over NVML reading this process's CUDA_VISIBLE_DEVICES, in use."""
    probe = NvmlEnergyProbe(
        Nvml(FakeNvml(gpus)),
        clock=clock or Clock(),
        power_interval_s=3600.0,
        counter_interval_s=3600.0,
    )
    taskmeter.set_probes([CpuTimeProbe(), probe])
    return probe


def figures(task: Task) -> list[object]:
    return [task.gpu_power, task.energy_sources.get("gpu"), _log.error_counts.get(GPUS_CHANGED)]


@pytest.mark.parametrize(
    ("parent", "child", "joules"),
    [(None, "1", 200.0), ("0", "0,1", 220.0), ("0", "1", 200.0)],
    ids=["narrowed", "widened", "swapped-same-count"],
)
def test_a_worker_that_sets_its_gpus_gets_exactly_their_counter_energy(
    visible: Callable[[str | None], None], parent: str | None, child: str, joules: float
) -> None:
    """The child's first task measures the GPUs it made visible, found by UUID (a swap to
    another GPU of the same count too), not positions detected in the parent: 2 s at
    10 W and 100 W."""
    visible(parent)
    gpus = counter_gpus()
    clock = Clock()
    probe = probe_over(gpus, clock)
    with Task("parent") as task:
        run_steadily(probe, clock, gpus)
    assert task.gpu_power == pytest.approx(110.0 if parent is None else 10.0, rel=1e-9)

    def worker() -> object:
        os.environ[VISIBLE] = child
        with Task("worker") as task:
            run_steadily(probe, clock, gpus)
            run_steadily(probe, clock, gpus)
        return figures(task)

    assert in_child(worker) == [pytest.approx(joules, rel=1e-9), "nvml-counter", None]


@pytest.mark.parametrize(
    ("parent", "child", "joules"),
    [(None, "1", 500.0), ("0", "0,1", 700.0), ("0", "1", 500.0)],
    ids=["narrowed", "widened", "swapped-same-count"],
)
def test_a_worker_that_sets_its_gpus_gets_exactly_their_sampled_energy(
    visible: Callable[[str | None], None], parent: str | None, child: str, joules: float
) -> None:
    """Sampled power (no counters): the child samples the GPUs it made visible, 2 s at
    100 W and 250 W, and integrates exactly theirs."""
    visible(parent)
    clock = Clock()
    probe = probe_over(sampled_gpus(), clock)
    with Task("parent"):
        clock.now += 1.0
        probe.sample()

    def worker() -> object:
        os.environ[VISIBLE] = child
        with Task("worker") as task:
            clock.now += 2.0
            probe.sample()
        return figures(task)

    assert in_child(worker) == [pytest.approx(joules, rel=1e-9), "nvml-sampled", None]


def gpu_energy_read_in_this_process(probe: NvmlEnergyProbe, state: object) -> list[object]:
    """What the probe reads for a task begun as ``state`` (in the parent), and its errors."""
    figures = Figures()
    probe.read(state, figures)  # type: ignore[arg-type]
    probe.end(state)  # type: ignore[arg-type]
    changed = _log.error_counts.get(GPUS_CHANGED)
    return [figures.energy_j.get("gpu"), figures.energy_source.get("gpu"), changed]


@pytest.mark.parametrize("sampled", [False, True], ids=["counter", "sampled"])
@pytest.mark.parametrize(
    ("parent", "child", "sampled_j", "counter_j"),
    [(None, "1", 500.0, 200.0), ("0", "0,1", 700.0, 220.0), ("0", "1", 500.0, 200.0)],
)
def test_a_task_open_across_a_change_of_gpus_has_no_gpu_energy_not_a_partial_sum(
    visible: Callable[[str | None], None],
    sampled: bool,
    parent: str | None,
    child: str,
    sampled_j: float,
    counter_j: float,
) -> None:
    """A measurement begun in the parent and read in a child that changed its GPUs has no
    GPU energy (counted, with a warning once); the child's next task is measured exactly:
    2 s at 100 W and 250 W sampled, or at 10 W and 100 W counted."""
    visible(parent)
    clock = Clock()
    gpus = sampled_gpus() if sampled else counter_gpus()
    probe = probe_over(gpus, clock)
    state = probe.begin()
    assert state is not None

    def worker() -> object:
        os.environ[VISIBLE] = child
        if sampled:
            clock.now += 1.0
            probe.sample()
        else:
            run_steadily(probe, clock, gpus)
        changed = gpu_energy_read_in_this_process(probe, state)
        with Task("next") as after:
            if sampled:
                clock.now += 2.0
                probe.sample()
            else:
                run_steadily(probe, clock, gpus)
                run_steadily(probe, clock, gpus)
        return [changed, after.gpu_power]

    changed, after = in_child(worker)  # type: ignore[misc]
    probe.end(state)
    assert changed == [None, None, 1]
    assert after == pytest.approx(sampled_j if sampled else counter_j, rel=1e-9)


def test_a_task_open_across_a_fork_that_keeps_the_gpus_is_still_measured(
    visible: Callable[[str | None], None],
) -> None:
    """Only a change of GPUs drops the figure: a child that keeps its parent's GPUs reads
    the parent's measurement as the counters' advance: 2 s at 10 W and 100 W."""
    visible("0,1")
    gpus = counter_gpus()
    clock = Clock()
    probe = probe_over(gpus, clock)
    state = probe.begin()

    def worker() -> object:
        run_steadily(probe, clock, gpus)
        run_steadily(probe, clock, gpus)
        return gpu_energy_read_in_this_process(probe, state)

    result = in_child(worker)
    probe.end(state)
    assert result == [pytest.approx(220.0, rel=1e-9), "nvml-counter", None]
