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
from taskmeter.probes.gpu_energy import CounterIntegral, PowerIntegral
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


def counter_probe(nvml: Nvml, clock: Clock, interval_s: float = 1.0) -> NvmlEnergyProbe:
    """An energy probe on the test's clock, its counters read every ``interval_s``."""
    return use(NvmlEnergyProbe(nvml, clock=clock, counter_interval_s=interval_s))


def run_steadily(
    probe: NvmlEnergyProbe, clock: Clock, gpus: list[FakeGpu], seconds: int = 1
) -> None:
    """Each GPU uses its power for ``seconds``, its counter read by the probe every second."""
    for _ in range(seconds):
        for gpu in gpus:
            assert gpu.power_mw is not None
            gpu.use_energy(gpu.power_mw / 1000)
        clock.now += 1.0
        probe.sample()


def test_counter_gpus_give_the_counters_advance(spans: SpanCapture) -> None:
    """Under a steady load the counters are followed exactly; what they count before and
    after the task is not the task's."""
    gpus = [FakeGpu(gpu_uuid(0), power_mw=300_000), FakeGpu(gpu_uuid(1), power_mw=100_000)]
    fake, nvml = nvml_over(gpus)
    clock = Clock()
    probe = counter_probe(nvml, clock)
    assert probe.source == "nvml-counter" and probe.sample_interval == 1.0
    gpus[0].use_energy(500.0)  # before the task
    with Task("training") as task:
        run_steadily(probe, clock, gpus, seconds=4)
    gpus[1].use_energy(40.0)  # after
    assert task.gpu_power == pytest.approx(4 * 400.0, rel=1e-9)
    assert task.energy_sources == {"gpu": "nvml-counter"}
    attributes = spans.one("training").attributes or {}
    assert attributes["taskmeter.energy.gpu"] == pytest.approx(1600.0, rel=1e-9)
    assert attributes["taskmeter.energy.gpu.source"] == "nvml-counter"
    assert fake.calls["energy"] == 2 * (1 + 1 + 4)  # detection, first sample, one a second


def test_a_task_never_waits_for_an_energy_counter() -> None:
    """Reading a counter can take milliseconds (3.9 ms on an H100): tasks begun while the
    probe is sampling read the integral the samples keep, and NVML not at all."""
    gpus = [FakeGpu(gpu_uuid(0))]
    fake, nvml = nvml_over(gpus)
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("outer"):
        calls = dict(fake.calls)
        for _ in range(100):
            with Task("inner"):
                clock.now += 0.001
        run_steadily(probe, clock, gpus)
        assert fake.calls["energy"] == calls["energy"] + 1  # the sample's, none of a task's
        assert fake.calls.get("power", 0) == calls.get("power", 0)


def test_a_task_shorter_than_a_counter_step_gets_its_share_of_the_power() -> None:
    """The counter moves in steps (every 100 ms on an H100): differencing it at a short
    task's ends gave 0 J, or a whole step.  Between reads the integral shares out the
    counter's power: 30 ms at 400 W is 12 J, wherever the steps fall."""
    gpu = FakeGpu(gpu_uuid(0), power_mw=400_000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = counter_probe(nvml, clock, interval_s=0.5)
    figures = []
    with Task("outer"):
        for _ in range(8):  # 400 W, the counter stepping by 40 J every 0.1 s, read at 0.5 s
            for _ in range(5):
                with Task("short") as short:
                    clock.now += 0.03
                figures.append(short.gpu_power)
                clock.now += 0.07
                gpu.use_energy(40.0)
            probe.sample()
    assert figures == [pytest.approx(12.0, rel=1e-9)] * 40


@pytest.mark.parametrize(("busy_w", "idle_w"), [(300, 50), (50, 300)])
def test_an_idle_spell_between_tasks_is_no_tasks_energy(busy_w: int, idle_w: int) -> None:
    """With no task open the counters go unread (the sampler stops); what the GPU used
    meanwhile, at another power than before, is no task's: the tasks after it get their
    own energy, neither that spell's (at 300 W) nor nothing until the counter catches up
    with the power held over the spell (at 50 W)."""
    gpu = FakeGpu(gpu_uuid(0), power_mw=busy_w * 1000)
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("before") as before:
        run_steadily(probe, clock, [gpu], seconds=4)
    assert before.gpu_power == pytest.approx(4 * busy_w, rel=1e-9)
    assert probe.release_if_idle() and not probe.sampling  # the monitor's next tick
    gpu.power_mw = idle_w * 1000
    gpu.use_energy(idle_w * 3600.0)  # an hour, used by another process
    clock.now += 3600.0
    figures = []
    for _ in range(3):
        with Task("after") as after:
            run_steadily(probe, clock, [gpu], seconds=4)
        figures.append(after.gpu_power)
    assert figures == [pytest.approx(4 * idle_w, rel=1e-9)] * 3


def test_only_visible_gpus_are_counted() -> None:
    gpus = [FakeGpu(gpu_uuid(n), power_mw=10_000) for n in range(3)]
    _, nvml = nvml_over(gpus, visible=f"2,{gpu_uuid(0)}")
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("two of three") as task:
        run_steadily(probe, clock, gpus, seconds=2)
    assert task.gpu_power == pytest.approx(40.0, rel=1e-9)


def test_mig_devices_count_their_gpu_once() -> None:
    migs = [FakeGpu("MIG-aaaaaaaa-0000", gi=1), FakeGpu("MIG-bbbbbbbb-0000", gi=2)]
    gpu = FakeGpu(gpu_uuid(0), migs=migs, power_mw=300_000)
    _, nvml = nvml_over([gpu], visible="MIG-aaaaaaaa-0000,MIG-bbbbbbbb-0000")
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("on two slices") as task:
        run_steadily(probe, clock, [gpu])
    assert task.gpu_power == pytest.approx(300.0, rel=1e-9)


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
    """Power is sampled every 0.25 s, the counter read every second."""
    counter = FakeGpu(gpu_uuid(0), power_mw=35_000)
    sampled = FakeGpu(gpu_uuid(1), energy_mj=None, power_mw=100_000)
    fake, nvml = nvml_over([counter, sampled])
    clock = Clock()
    probe = use(NvmlEnergyProbe(nvml, clock=clock, power_interval_s=0.25, counter_interval_s=1.0))
    assert probe.sample_interval == 0.25
    with Task("mixed") as task:
        for _ in range(8):
            counter.use_energy(35.0 / 4)
            clock.now += 0.25
            probe.sample()
    assert task.gpu_power == pytest.approx(2 * 35.0 + 2 * 100.0, rel=1e-9)
    assert task.energy_sources == {"gpu": "nvml-counter+sampled"}
    assert fake.calls["energy"] == 2 + 1 + 2  # detection (of both), first sample, once a second


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
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("gpu lost") as task:
        gpu.failing = True
        clock.now += 1.0
        probe.sample()
    assert task.status.value == "finished"
    assert task.gpu_power is None and task.cpu_time is not None
    assert _log.error_counts["probe.nvml-energy.sample"] == 1


def test_counter_going_backwards_gives_no_figure() -> None:
    """A counter that restarts (the driver reloaded): the task open across it has no figure;
    the next one is measured from the restarted counter."""
    gpu = FakeGpu(gpu_uuid(0))
    _, nvml = nvml_over([gpu])
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("driver reloaded") as task:
        gpu.energy_mj = 5
        clock.now += 1.0
        probe.sample()
    assert task.gpu_power is None
    with Task("after") as after:
        run_steadily(probe, clock, [gpu], seconds=2)
    assert after.gpu_power == pytest.approx(200.0, rel=1e-9)


def test_power_integral_before_any_sample_is_unknown() -> None:
    integral = PowerIntegral()
    assert integral.at(1.0) is None
    integral.add(1.0, 100.0)
    integral.add(3.0, 200.0)
    assert integral.at(3.0) == pytest.approx(200.0)  # 100 W held from 1 s to 3 s
    assert integral.at(4.0) == pytest.approx(400.0)


@pytest.mark.parametrize("name", ["power_interval_s", "counter_interval_s"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, 1e9])
def test_sampling_intervals_must_be_positive_and_finite(name: str, value: float) -> None:
    _, nvml = nvml_over([FakeGpu(gpu_uuid(0))])
    with pytest.raises(ValueError, match=name):
        NvmlEnergyProbe(nvml, **{name: value})


def test_counter_integral_follows_a_step_in_power_within_one_interval() -> None:
    """Idle at 100 W, then 500 W from a read on: the integral lags the counter by the
    change in power times the interval at the next read, and has caught up at the one
    after; it never decreases."""
    integral = CounterIntegral(catch_up_s=1.0)
    integral.add(0.0, 1000.0, power_w=100.0)
    integral.add(1.0, 1100.0)
    assert integral.at(1.0) == pytest.approx(100.0)
    integral.add(2.0, 1600.0)  # 500 W from t=1 s
    assert integral.at(2.0) == pytest.approx(200.0)  # 400 J behind
    integral.add(3.0, 2100.0)
    assert integral.at(3.0) == pytest.approx(1100.0)  # caught up: the counter's 1100 J
    integral.add(4.0, 2600.0)
    assert integral.at(4.0) == pytest.approx(1600.0)
    assert integral.at(3.5) == pytest.approx(1350.0)


def test_counter_integral_ahead_of_the_counter_waits_for_it() -> None:
    """A first power reading too high (500 W, the counter shows 100 W): the integral is
    ahead, and stays flat rather than going back until the counter catches up."""
    integral = CounterIntegral(catch_up_s=1.0)
    integral.add(0.0, 0.0, power_w=500.0)
    integral.add(1.0, 100.0)  # 400 J ahead
    assert integral.at(1.0) == pytest.approx(500.0)
    assert integral.at(2.0) == pytest.approx(500.0)  # flat for the catch-up second
    integral.add(2.0, 200.0)
    integral.add(3.0, 300.0)
    values = [integral.at(3.0 + k / 10) for k in range(40)]
    assert all(b >= a for a, b in itertools.pairwise(values))  # type: ignore[operator]


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.01, max_value=3.0),  # seconds to the next event
            st.floats(min_value=0.0, max_value=700.0),  # the GPU's power until then
            st.booleans(),  # whether the event is a counter read (else a task's read)
        ),
        min_size=2,
        max_size=60,
    ),
    st.floats(min_value=0.0, max_value=700.0),
)
def test_counter_integral_never_decreases_and_stays_within_an_interval_of_the_counter(
    events: list[tuple[float, float, bool]], first_power: float
) -> None:
    """Any load, counter reads at any intervals: the integral never decreases, reads
    between reads add up, and at each counter read it is within the energy of about one
    interval (at the highest power) of the counter's advance."""
    interval = 1.0
    integral = CounterIntegral(catch_up_s=interval)
    counter = 0.0
    integral.add(0.0, counter, power_w=first_power)
    now, last = 0.0, 0.0
    longest = interval
    for step, watts, is_counter_read in events:
        now += step
        counter += watts * step
        value = integral.at(now)
        assert value is not None and value >= last - 1e-9
        last = value
        if is_counter_read:
            longest = max(longest, now - (integral.time_s or 0.0))
            integral.add(now, counter)
            assert abs(integral.at(now) - counter) <= 2 * 700.0 * longest + 1e-6  # type: ignore[operator]


@given(
    st.floats(min_value=0.0, max_value=700.0),
    st.lists(st.floats(min_value=0.01, max_value=3.0), min_size=1, max_size=30),
)
def test_counter_integral_is_exact_under_a_steady_load(watts: float, steps: list[float]) -> None:
    integral = CounterIntegral(catch_up_s=0.5)
    integral.add(0.0, 0.0, power_w=watts)
    now = 0.0
    for step in steps:
        now += step
        integral.add(now, watts * now)
        assert integral.at(now) == pytest.approx(watts * now, rel=1e-9, abs=1e-9)
        assert integral.at(now + 0.25) == pytest.approx(watts * (now + 0.25), rel=1e-9, abs=1e-9)


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
    probe = counter_probe(nvml, clock)
    with Task("finished before") as before:
        if counter:
            gpu.use_energy(100.0)
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
    assert before.gpu_power == pytest.approx(100.0, rel=1e-9)
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
    gpus = [FakeGpu(gpu_uuid(n), power_mw=mw) for n, mw in enumerate((10_000, 500_000, 32_500))]
    gpus[1].handle_error = GPU_IS_LOST
    _, nvml = nvml_over(gpus)
    clock = Clock()
    probe = counter_probe(nvml, clock)
    with Task("two of three reachable") as task:
        run_steadily(probe, clock, gpus, seconds=2)
    assert task.gpu_power == pytest.approx(2 * 42.5, rel=1e-9)


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
