"""GPU energy from a fake NVML: counters that advance by known joules, power the test sets."""

from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import taskmeter
from taskmeter import Task, _log
from taskmeter.probes import CpuTimeProbe, NvmlEnergyProbe, ProbeUnavailableError
from taskmeter.probes.gpu_energy import PowerIntegral
from taskmeter.probes.nvml import Nvml
from taskmeter.testing import SpanCapture
from tests.fakes import GPU_IS_LOST, LIBRARY_NOT_FOUND, FakeGpu, FakeNvml, gpu_uuid


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def nvml_over(gpus: list[FakeGpu], visible: str | None = None) -> tuple[FakeNvml, Nvml]:
    fake = FakeNvml(gpus)
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    return fake, Nvml(fake, environ=environ)


def use(probe: NvmlEnergyProbe) -> NvmlEnergyProbe:
    taskmeter.set_probes([CpuTimeProbe(), probe])
    return probe


def test_counter_gpus_give_the_counters_advance(spans: SpanCapture) -> None:
    gpus = [FakeGpu(gpu_uuid(0)), FakeGpu(gpu_uuid(1))]
    _, nvml = nvml_over(gpus)
    probe = use(NvmlEnergyProbe(nvml))
    assert probe.source == "nvml-counter" and probe.sample_interval is None
    gpus[0].use_energy(500.0)  # before the task
    with Task("training") as task:
        gpus[0].use_energy(812.345)
        gpus[1].use_energy(100.0)
    gpus[1].use_energy(40.0)  # after
    assert task.gpu_power == pytest.approx(912.345, abs=1e-3)
    assert task.energy_sources == {"gpu": "nvml-counter"}
    attributes = spans.one("training").attributes or {}
    assert attributes["taskmeter.energy.gpu"] == pytest.approx(912.345, abs=1e-3)
    assert attributes["taskmeter.energy.gpu.source"] == "nvml-counter"


def test_only_visible_gpus_are_counted() -> None:
    gpus = [FakeGpu(gpu_uuid(0)), FakeGpu(gpu_uuid(1)), FakeGpu(gpu_uuid(2))]
    _, nvml = nvml_over(gpus, visible=f"2,{gpu_uuid(0)}")
    use(NvmlEnergyProbe(nvml))
    with Task("two of three") as task:
        for gpu in gpus:
            gpu.use_energy(10.0)
    assert task.gpu_power == pytest.approx(20.0, abs=1e-3)


def test_mig_devices_count_their_gpu_once() -> None:
    migs = [FakeGpu("MIG-aaaaaaaa-0000", gi=1), FakeGpu("MIG-bbbbbbbb-0000", gi=2)]
    gpu = FakeGpu(gpu_uuid(0), migs=migs)
    _, nvml = nvml_over([gpu], visible="MIG-aaaaaaaa-0000,MIG-bbbbbbbb-0000")
    use(NvmlEnergyProbe(nvml))
    with Task("on two slices") as task:
        gpu.use_energy(300.0)
    assert task.gpu_power == pytest.approx(300.0, abs=1e-3)


def test_sampled_power_is_integrated_holding_each_sample_until_the_next() -> None:
    """No energy counter: power sampled by the probe's hook is integrated, each sample's
    power held until the next; a change made just after a sample is seen at the next
    one (the resolution of sampling)."""
    gpu = FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=200_000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock))
    assert probe.source == "nvml-sampled" and probe.sample_interval == pytest.approx(0.1)
    with Task("sampled") as task:
        for _ in range(10):  # 10 s at 200 W
            clock.now += 1.0
            probe.sample()
        gpu.power_mw = 300_000
        for _ in range(5):  # 300 W from here on, first read 1 s later
            clock.now += 1.0
            probe.sample()
    expected = 10 * 200.0 + 1 * 200.0 + 4 * 300.0
    assert task.gpu_power == pytest.approx(expected, rel=1e-9)
    assert task.energy_sources == {"gpu": "nvml-sampled"}


def test_sampled_begin_and_end_between_samples_are_extrapolated() -> None:
    gpu = FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=150_000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock))
    with Task("outer"):
        clock.now += 0.25
        with Task("inner") as inner:
            clock.now += 0.5
            probe.sample()
            clock.now += 0.5
    assert inner.gpu_power == pytest.approx(150.0 * 1.0, rel=1e-9)


def test_monitor_samples_power_only_while_a_task_is_open() -> None:
    gpu = FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=50_000)
    fake, nvml = nvml_over([gpu])
    probe = use(NvmlEnergyProbe(nvml, power_interval_s=0.01))
    with Task("sampled by the monitor") as task:
        deadline = time.monotonic() + 5.0
        while probe.sample_count < 5:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert probe.sampling
    probe.tick()  # the sampler's next tick finds no open task and removes itself
    assert not probe.sampling
    calls = fake.calls["power"]
    time.sleep(0.05)
    assert fake.calls["power"] == calls  # no sampling after the task
    assert task.duration is not None and task.gpu_power is not None
    assert task.gpu_power == pytest.approx(50.0 * task.duration, rel=0.05)


def test_mixed_gpus_name_both_methods() -> None:
    counter = FakeGpu(gpu_uuid(0))
    sampled = FakeGpu(gpu_uuid(1), energy_mj=None, power_mw=100_000)
    _, nvml = nvml_over([counter, sampled])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock))
    with Task("mixed") as task:
        counter.use_energy(70.0)
        clock.now += 2.0
        probe.sample()
    assert task.gpu_power == pytest.approx(70.0 + 200.0, rel=1e-9)
    assert task.energy_sources == {"gpu": "nvml-counter+sampled"}


def test_gpu_without_counter_or_power_means_no_figure_not_a_partial_sum() -> None:
    gpus = [FakeGpu(gpu_uuid(0)), FakeGpu(gpu_uuid(1), energy_mj=None, power_mw=None)]
    _, nvml = nvml_over(gpus)
    probe = use(NvmlEnergyProbe(nvml))
    assert not probe.available and probe.reason is not None and "GPU 1" in probe.reason
    with Task("unmeasurable") as task:
        gpus[0].use_energy(5.0)
    assert task.gpu_power is None
    with pytest.raises(ProbeUnavailableError, match="neither an energy counter"):
        NvmlEnergyProbe(nvml, required=True)


def test_missing_library_is_quiet_and_explicit_use_is_an_error() -> None:
    nvml = Nvml(FakeNvml([], init_error=LIBRARY_NOT_FOUND), environ={})
    probe = use(NvmlEnergyProbe(nvml))
    with Task("no driver") as task:
        pass
    assert task.gpu_power is None and task.cpu_time is not None
    assert not probe.available
    with pytest.raises(ProbeUnavailableError, match="NVML did not start"):
        NvmlEnergyProbe(nvml, required=True)


def test_nvml_error_during_a_task_is_counted_and_other_figures_survive() -> None:
    gpu = FakeGpu(gpu_uuid(0))
    _, nvml = nvml_over([gpu])
    use(NvmlEnergyProbe(nvml))
    with Task("gpu lost") as task:
        gpu.failing = True
    assert task.status.value == "finished"
    assert task.gpu_power is None and task.cpu_time is not None
    assert _log.error_counts["probe.nvml-energy.read"] == 1


def test_counter_going_backwards_gives_no_figure() -> None:
    gpu = FakeGpu(gpu_uuid(0))
    _, nvml = nvml_over([gpu])
    use(NvmlEnergyProbe(nvml))
    with Task("driver reloaded") as task:
        gpu.energy_mj = 5
    assert task.gpu_power is None


def test_power_integral_before_any_sample_is_unknown() -> None:
    integral = PowerIntegral()
    assert integral.at(1.0) is None
    integral.add(1.0, 100.0)
    integral.add(3.0, 200.0)
    assert integral.at(3.0) == pytest.approx(200.0)  # 100 W held from 1 s to 3 s
    assert integral.at(4.0) == pytest.approx(400.0)


def test_power_interval_must_be_positive() -> None:
    _, nvml = nvml_over([FakeGpu(gpu_uuid(0))])
    with pytest.raises(ValueError, match="power_interval_s"):
        NvmlEnergyProbe(nvml, power_interval_s=0)


def test_method_sampled_ignores_counters_and_counter_refuses_sampling() -> None:
    counter_gpu = FakeGpu(gpu_uuid(0), power_mw=80_000)
    _, nvml = nvml_over([counter_gpu])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, method="sampled", clock=clock))
    with Task("forced sampling") as task:
        counter_gpu.use_energy(1.0)
        clock.now += 3.0
        probe.sample()
    assert task.gpu_power == pytest.approx(240.0, rel=1e-9)
    assert task.energy_sources == {"gpu": "nvml-sampled"}
    _, old = nvml_over([FakeGpu(gpu_uuid(1), energy_mj=None)])
    with pytest.raises(ProbeUnavailableError, match="no energy counter"):
        NvmlEnergyProbe(old, method="counter", required=True)
    with pytest.raises(ValueError, match="method"):
        NvmlEnergyProbe(old, method="guess")


@pytest.mark.parametrize("counter", [True, False], ids=["counter", "sampled"])
def test_energy_read_after_nvml_shutdown_is_absent_and_nvml_stays_down(counter: bool) -> None:
    """A task that ends after NVML's exit-time shutdown has no GPU energy (no counter can
    be read; sampled power would be extrapolated past its last sample), never a wrong
    one, and neither its end nor a sampler tick starts NVML again."""
    gpu = FakeGpu(gpu_uuid(0), energy_mj=1_000_000 if counter else None, power_mw=100_000)
    fake, nvml = nvml_over([gpu])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock))
    with Task("finished before") as before:
        if counter:
            gpu.use_energy(7.0)
        clock.now += 1.0
        probe.sample()
    with Task("open at exit") as task:
        clock.now += 1.0
        probe.sample()
        nvml.shutdown()  # what atexit runs
        if counter:
            gpu.use_energy(50.0)
        clock.now += 60.0
        probe.tick()  # the monitor, still running
        with Task("started after the shutdown") as late:
            clock.now += 1.0
    assert before.gpu_power == pytest.approx(7.0 if counter else 100.0, abs=1e-3)
    assert task.gpu_power is None and late.gpu_power is None
    assert "gpu" not in task.energy_sources
    assert (fake.init_calls, fake.shutdown_calls) == (1, 1)
    assert _log.error_counts == {}


def test_nvml_is_not_started_again_after_its_shutdown() -> None:
    fake, nvml = nvml_over([FakeGpu(gpu_uuid(0))])
    assert nvml.start()
    nvml.shutdown()
    assert not nvml.start()
    assert nvml.devices() == () and nvml.gpus() == ()
    assert nvml.shut_down and nvml.reason is not None and "shut down" in nvml.reason
    assert (fake.init_calls, fake.shutdown_calls) == (1, 1)


def test_sampled_gpu_lost_mid_task_gives_no_figure_not_an_extrapolation() -> None:
    """A GPU whose power can no longer be read (lost, here) has unknown energy from its last
    sample on: the task open across the failed samples gets no figure, not the last power
    extrapolated over the rest of the task (300 W x 100 s); once samples come back, a
    task begun after them is measured right."""
    gpu = FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=300_000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock, power_interval_s=3600.0))
    with Task("lost") as lost:
        clock.now += 1.0
        probe.sample()
        gpu.failing = True
        for _ in range(99):
            clock.now += 1.0
            probe.sample()
    assert lost.gpu_power is None
    gpu.failing = False
    gpu.power_mw = 100_000
    probe.sample()
    with Task("back") as back:
        clock.now += 2.0
        probe.sample()
    assert back.gpu_power == pytest.approx(200.0, rel=1e-9)


def test_one_lost_gpu_of_two_sampled_leaves_no_partial_sum() -> None:
    """Two sampled GPUs, one lost mid-task: no figure (a sum without it would be wrong)."""
    gpus = [
        FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=100_000),
        FakeGpu(gpu_uuid(1), energy_mj=None, power_mw=100_000),
    ]
    _, nvml = nvml_over(gpus)
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock, power_interval_s=3600.0))
    with Task("one lost") as task:
        clock.now += 1.0
        gpus[1].failing = True
        probe.sample()
        clock.now += 1.0
        gpus[1].failing = False
        probe.sample()
    assert task.gpu_power is None


def test_a_gpu_lost_before_the_start_leaves_the_others_measured() -> None:
    """One of three GPUs lost before NVML started: the task's figure is the energy of the
    two this process can use, exactly."""
    gpus = [FakeGpu(gpu_uuid(0)), FakeGpu(gpu_uuid(1)), FakeGpu(gpu_uuid(2))]
    gpus[1].handle_error = GPU_IS_LOST
    _, nvml = nvml_over(gpus)
    use(NvmlEnergyProbe(nvml))
    with Task("two of three reachable") as task:
        for joules, gpu in zip((10.0, 500.0, 32.5), gpus, strict=True):
            gpu.use_energy(joules)
    assert task.gpu_power == pytest.approx(42.5, abs=1e-3)


def test_sampled_short_task_across_a_power_drop_is_neither_zero_nor_lost() -> None:
    """A task begun and ended between samples, across one where the power fell from 100 W
    to 0 W: each sample's power holds until the next, for the task's ends as between
    samples, so the figure is the 4 J the samples tell (100 W from 0.06 s to 0.10 s),
    not a negative difference clamped to 0; and back-to-back tasks add up to the task
    around them."""
    gpu = FakeGpu(gpu_uuid(0), energy_mj=None, power_mw=100_000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    clock.now = 0.0
    probe = use(NvmlEnergyProbe(nvml, clock=clock, power_interval_s=3600.0))
    with Task("outer") as outer:
        clock.now = 0.06
        with Task("short") as short:
            clock.now = 0.10
            gpu.power_mw = 0
            probe.sample()
            clock.now = 0.11
        with Task("next") as after:
            clock.now = 0.15
            gpu.power_mw = 50_000
            probe.sample()
            clock.now = 0.25
    assert short.gpu_power == pytest.approx(4.0, rel=1e-9)
    assert after.gpu_power == pytest.approx(50.0 * 0.10, rel=1e-9)
    assert outer.gpu_power == pytest.approx(6.0 + 4.0 + 5.0, rel=1e-9)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.001, max_value=5.0),  # time since the previous event
            st.one_of(st.none(), st.floats(min_value=0.0, max_value=700.0)),  # None: a read
        ),
        min_size=2,
        max_size=40,
    )
)
def test_sampled_energy_between_any_two_reads_is_the_held_power_integral(
    events: list[tuple[float, float | None]],
) -> None:
    """Samples and reads in any order: between two reads the energy is the integral of
    the power each sample held until the next (computed here independently), never
    negative, and back-to-back intervals add up to the whole."""
    integral = PowerIntegral()
    integral.add(0.0, 100.0)
    samples = [(0.0, 100.0)]
    reads: list[tuple[float, float]] = []
    now = 0.0
    for step, power in events:
        now += step
        if power is None:
            value = integral.at(now)
            assert value is not None
            reads.append((now, value))
        else:
            integral.add(now, power)
            samples.append((now, power))

    def held(start: float, end: float) -> float:
        total = 0.0
        for (t0, watts), (t1, _) in zip(samples, [*samples[1:], (math.inf, 0.0)], strict=True):
            total += watts * max(0.0, min(end, t1) - max(start, t0))
        return total

    for (t0, e0), (t1, e1) in itertools.pairwise(reads):
        assert e1 - e0 >= -1e-9
        assert e1 - e0 == pytest.approx(held(t0, t1), rel=1e-9, abs=1e-9)
    if len(reads) >= 2:
        parts = sum(e1 - e0 for (_, e0), (_, e1) in itertools.pairwise(reads))
        assert parts == pytest.approx(reads[-1][1] - reads[0][1], rel=1e-9, abs=1e-9)
