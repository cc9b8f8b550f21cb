"""Energy of this process's GPUs during each task, from NVML.

NVML is read on the monitor thread only, while a task is open; a task's
begin and end read integrals the samples keep, under a lock, and never wait
for NVML.  (Reading a GPU's energy counter can take milliseconds of CPU: 3.9 ms
per read on an H100 under driver 580, which read at both ends of every task
cost each task 7.8 ms.)

Where a GPU has a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded; Volta and newer) the counter is read
every ``counter_interval_s`` (0.5 s), and a :class:`CounterIntegral` follows
it: between reads it rises at the counter's average power over the last
interval, corrected so that it catches up with the counter by the next read.
The integral is continuous and never decreases, so the figures of
back-to-back tasks add up to the task around them; over a task longer than
a few intervals it is the counter's advance, to within the energy of about
one interval at either end.  The counter itself moves in steps (every
100 ms on an H100): a task shorter than that gets a share of the power the
counter shows, where differencing the counter at its ends gave 0 J or a
whole step.

Otherwise the power (``nvmlDeviceGetPowerUsage``, milliwatts) is sampled every
``power_interval_s`` and integrated by a :class:`PowerIntegral`, each
sample's power held until the next.

A task's begin and end fall between samples and are read the same way, from
the last sample, so none is negative, however short.  A sample that fails (the
GPU lost, say) or a counter that goes backwards (the driver reloaded) leaves
the energy from the last good sample on unknown: the tasks open across it
report no GPU energy rather than an extrapolation over the gap, and the
integral starts again at the next good sample.  ``taskmeter.energy.gpu.source``
says which: ``nvml-counter``, ``nvml-sampled``, or ``nvml-counter+sampled`` on
a mix.

The figure covers whole GPUs: other processes on them, and every MIG slice of
a GPU, are included; a GPU shared by two visible MIG devices is counted once.
A task read after NVML was shut down (at exit) has no figure: the integrals
would be extrapolated past their last sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._log import count_more, debug_once, swallowed, warn_once
from ..figures import Figures
from .errors import ProbeUnavailableError
from .nvml import GpuDevice, Nvml, default_nvml
from .sampling import SampledProbe

DEFAULT_POWER_INTERVAL_S = 0.1
"""Seconds between power samples of GPUs without an energy counter."""
DEFAULT_COUNTER_INTERVAL_S = 0.5
"""Seconds between reads of the GPUs' energy counters."""
MAX_INTERVAL_S = 86_400.0
"""Longest interval between samples accepted (a day)."""
GPUS_CHANGED = "probe.nvml-energy.gpus-changed"
"""Error count of tasks with no GPU energy because this process's GPUs changed while they
were open."""


class PowerIntegral:
    """Energy integrated from power samples, each sample's power held until the next
    (and past the last one): the integral of a step function.  Read at a time no
    earlier than the last sample, :meth:`at` is that integral up to then, which
    later samples do not change, and it never decreases."""

    __slots__ = ("energy_j", "gaps", "power_w", "time_s")

    def __init__(self) -> None:
        self.time_s: float | None = None
        self.power_w = 0.0
        self.energy_j = 0.0
        self.gaps = 0
        """Times a sample failed: the energy from the sample before it to the next is unknown."""

    def add(self, time_s: float, power_w: float) -> None:
        """Record a power sample taken at ``time_s`` (monotonic seconds)."""
        if self.time_s is not None and time_s > self.time_s:
            self.energy_j += self.power_w * (time_s - self.time_s)
        self.time_s = time_s
        self.power_w = power_w

    def at(self, time_s: float) -> float | None:
        """The integral up to ``time_s``; ``None`` before the first sample (or the
        first after a failed one)."""
        if self.time_s is None:
            return None
        return self.energy_j + self.power_w * (time_s - self.time_s)

    def interrupt(self) -> None:
        """A sample could not be taken: the integral stops at the last good sample
        (:meth:`at` is ``None``) and goes on from the next one; :attr:`gaps` counts it."""
        self.time_s = None
        self.gaps += 1


class CounterIntegral:
    """Energy that follows a GPU's energy counter, read every so often: continuous and
    never decreasing, so that later reads do not change what :meth:`at` gave before.

    After each read it rises at the counter's average power over the last
    interval; for the first ``catch_up_s`` it also makes up the difference from
    the counter's advance (at no less than zero power, when it is ahead).  At
    each read it is then behind or ahead of the counter by the change in the
    counter's average power between the last two intervals times the interval
    (zero under a steady load), so over a task it is the counter's advance to
    within the energy of about one interval at either end; within an
    interval it shares out the counter's power.

    Args:
        catch_up_s: Seconds over which a difference from the counter is made
            up (the interval between reads).
    """

    __slots__ = (
        "catch_up_s",
        "catch_up_w",
        "counter_j",
        "energy_j",
        "gaps",
        "offset_j",
        "power_w",
        "time_s",
    )

    def __init__(self, catch_up_s: float) -> None:
        self.catch_up_s = catch_up_s
        self.time_s: float | None = None
        self.energy_j = 0.0
        """The integral at :attr:`time_s`."""
        self.power_w = 0.0
        """Its rate from :attr:`time_s` on, once :attr:`catch_up_s` have passed."""
        self.catch_up_w = 0.0
        """Its rate for the first :attr:`catch_up_s` after :attr:`time_s`."""
        self.counter_j = 0.0
        """The counter at the last read."""
        self.offset_j = 0.0
        """The counter minus the integral that follows it, since the last anchoring."""
        self.gaps = 0
        """Times a read failed or the counter went backwards: the energy from the read
        before it to the next is unknown."""

    def add(
        self, time_s: float, counter_j: float, power_w: float | None = None, *, resume: bool = False
    ) -> None:
        """Record a counter read (joules) at ``time_s`` (monotonic seconds).

        ``power_w`` (the GPU's power now, where known) sets the rate after the
        first read, or the first after a gap, when there is no interval yet
        to take the counter's power over.  ``resume``: the counter went unread
        since the last read because no task was open; the integral follows it
        again from here (as after a first read), continuing from its value
        now, rather than making up within the next interval what the counter
        advanced meanwhile (or holding still until the counter caught up).
        """
        if self.time_s is None:
            self._anchor(time_s, counter_j, power_w)
            return
        elapsed = time_s - self.time_s
        if elapsed <= 0:
            return
        if resume:
            self.energy_j = self._value(elapsed)
            self._anchor(time_s, counter_j, power_w)
            return
        advance = counter_j - self.counter_j
        if advance < 0:  # the driver reloaded: the counter restarted
            debug_once("nvml.counter", "a GPU energy counter went backwards (reset?)")
            self.interrupt()
            self._anchor(time_s, counter_j, power_w)
            return
        energy = self._value(elapsed)
        behind = (counter_j - self.offset_j) - energy
        self.time_s = time_s
        self.energy_j = energy
        self.counter_j = counter_j
        self.power_w = advance / elapsed
        self.catch_up_w = max(self.power_w + behind / self.catch_up_s, 0.0)

    def _anchor(self, time_s: float, counter_j: float, power_w: float | None) -> None:
        """Follow the counter from here, continuing the integral where it was."""
        self.offset_j = counter_j - self.energy_j
        self.counter_j = counter_j
        self.time_s = time_s
        self.power_w = self.catch_up_w = max(power_w or 0.0, 0.0)

    def _value(self, elapsed: float) -> float:
        first = min(elapsed, self.catch_up_s)
        return self.energy_j + self.catch_up_w * first + self.power_w * (elapsed - first)

    def at(self, time_s: float) -> float | None:
        """The integral up to ``time_s``; ``None`` before the first read (or the first
        after a failed one)."""
        if self.time_s is None:
            return None
        return self._value(time_s - self.time_s)

    def interrupt(self) -> None:
        """A read failed: the integral is unknown until the next read anchors it again."""
        self.time_s = None
        self.gaps += 1


class _GpuSet:
    """The GPUs the probe detected, and how each one's energy is read.

    Positions index :meth:`Nvml.gpus` as it was listed then; :meth:`lists` says
    whether a listing is still of the same GPUs (by UUID), so that a position
    never indexes another list (a forked child that set ``CUDA_VISIBLE_DEVICES``
    lists its GPUs anew).
    """

    __slots__ = (
        "counter_gpus",
        "counter_integrals",
        "counters_read_at",
        "integrals",
        "listed",
        "power_integrals",
        "reason",
        "resume_counters",
        "sampled_gpus",
        "source",
        "uuids",
    )

    def __init__(
        self,
        listed: tuple[GpuDevice, ...],
        *,
        reason: str | None = None,
        counter_gpus: tuple[int, ...] = (),
        sampled_gpus: tuple[int, ...] = (),
        counter_interval_s: float = DEFAULT_COUNTER_INTERVAL_S,
    ) -> None:
        self.listed = listed
        self.uuids = _uuids(listed)
        self.reason = reason
        self.counter_gpus = counter_gpus
        self.sampled_gpus = sampled_gpus
        self.counter_integrals = [CounterIntegral(counter_interval_s) for _ in counter_gpus]
        self.power_integrals = [PowerIntegral() for _ in sampled_gpus]
        self.integrals: list[CounterIntegral | PowerIntegral] = [
            *self.counter_integrals,
            *self.power_integrals,
        ]
        self.counters_read_at: float | None = None
        self.resume_counters = False
        """Whether the counters went unread while no task was open (the next read resumes
        following them)."""
        self.source: str | None = None
        if reason is None:
            if counter_gpus and sampled_gpus:
                self.source = "nvml-counter+sampled"
            elif counter_gpus:
                self.source = "nvml-counter"
            else:
                self.source = "nvml-sampled"

    def lists(self, gpus: tuple[GpuDevice, ...]) -> bool:
        """Whether ``gpus`` (a listing from :meth:`Nvml.gpus`) are these GPUs, in this order."""
        if gpus is self.listed:
            return True
        if _uuids(gpus) != self.uuids:
            return False
        self.listed = gpus  # the same GPUs listed again (after a fork): compare fast next time
        return True


def _uuids(gpus: tuple[GpuDevice, ...]) -> tuple[str, ...]:
    return tuple(gpu.gpu_uuid for gpu in gpus)


class _GpuEnergyState:
    __slots__ = ("gaps", "gpus", "start_j", "token")

    def __init__(self, gpus: _GpuSet, token: int, start_j: list[float | None], gaps: int) -> None:
        self.gpus = gpus
        self.token = token
        """The sampler's token."""
        self.start_j = start_j
        """Each GPU's integral when the task began."""
        self.gaps = gaps


class NvmlEnergyProbe(SampledProbe):
    """Energy of the GPUs this process may use, during each task (``taskmeter.energy.gpu``).

    The GPUs are detected when the probe is made, and again when a task begins
    and this process's GPUs are no longer those (by UUID): a forked worker
    that sets ``CUDA_VISIBLE_DEVICES`` to its own GPU before its first task
    measures that GPU.  A task begun on other GPUs than it is read on (it was
    open across such a fork) has no GPU energy, never a sum over a different
    set of GPUs.

    Args:
        nvml: The NVML library (default: the process's, over ``pynvml``).
        required: Raise :class:`ProbeUnavailableError` if no GPU energy can be
            measured, instead of leaving the figure ``None``.
        power_interval_s: Seconds between power samples, for GPUs without an
            energy counter.
        counter_interval_s: Seconds between reads of the energy counters.
        method: ``"auto"`` (the counter where a GPU has one, else sampled
            power), ``"counter"`` (counters only: no figure if a GPU lacks
            one) or ``"sampled"`` (sampled power even where a counter exists,
            e.g. to compare the two).
        clock: Monotonic clock in seconds (for tests).
    """

    name = "nvml-energy"

    def __init__(
        self,
        nvml: Nvml | None = None,
        *,
        required: bool = False,
        power_interval_s: float = DEFAULT_POWER_INTERVAL_S,
        counter_interval_s: float = DEFAULT_COUNTER_INTERVAL_S,
        method: str = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        for name, value in (
            ("power_interval_s", power_interval_s),
            ("counter_interval_s", counter_interval_s),
        ):
            if not 0 < value < MAX_INTERVAL_S:
                raise ValueError(
                    f"{name} must be positive and under {MAX_INTERVAL_S:.0f} s, got {value!r}"
                )
        if method not in ("auto", "counter", "sampled"):
            raise ValueError(f"method must be 'auto', 'counter' or 'sampled', got {method!r}")
        self.method = method
        self.nvml = nvml if nvml is not None else default_nvml()
        self.power_interval_s = power_interval_s
        self.counter_interval_s = counter_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._gpus = self._detect()
        if self._gpus.reason is not None:
            if required:
                raise ProbeUnavailableError(
                    f"GPU energy asked for but unavailable: {self._gpus.reason}"
                )
            debug_once("nvml.energy", "no GPU energy: %s", self._gpus.reason)
        self._use_sampler_for(self._gpus)

    @property
    def available(self) -> bool:
        """Whether the GPU energy figure can be taken."""
        return self._gpus.reason is None

    @property
    def reason(self) -> str | None:
        """Why no GPU energy can be measured here (``None`` when it can)."""
        return self._gpus.reason

    @property
    def source(self) -> str | None:
        """``nvml-counter``, ``nvml-sampled`` or ``nvml-counter+sampled`` (``None`` when
        unavailable)."""
        return self._gpus.source

    @property
    def counter_gpus(self) -> tuple[int, ...]:
        """Positions in ``nvml.gpus()`` of the GPUs read through their energy counter."""
        return self._gpus.counter_gpus

    @property
    def sampled_gpus(self) -> tuple[int, ...]:
        """Positions in ``nvml.gpus()`` of the GPUs whose power is sampled."""
        return self._gpus.sampled_gpus

    def _detect(self) -> _GpuSet:
        nvml = self.nvml
        if not nvml.start():
            return _GpuSet(nvml.gpus(), reason=nvml.reason or "no GPU")
        module, error = nvml.module, nvml.error
        gpus = nvml.gpus()
        counters, sampled = [], []
        for position, gpu in enumerate(gpus):
            counter_error: object = "not used: method='sampled'"
            if self.method != "sampled":
                try:
                    module.nvmlDeviceGetTotalEnergyConsumption(gpu.gpu_handle)
                    counters.append(position)
                    continue
                except error as exc:
                    counter_error = exc
            if self.method == "counter":
                return _GpuSet(
                    gpus,
                    reason=f"GPU {gpu.index} ({gpu.gpu_uuid}) has no energy counter "
                    f"({counter_error})",
                )
            try:
                module.nvmlDeviceGetPowerUsage(gpu.gpu_handle)
                sampled.append(position)
            except error as exc:
                # A sum that leaves out a GPU would be wrong: no figure at all.
                return _GpuSet(
                    gpus,
                    reason=f"GPU {gpu.index} ({gpu.gpu_uuid}) has neither an energy counter "
                    f"({counter_error}) nor a power reading ({exc})",
                )
        return _GpuSet(
            gpus,
            counter_gpus=tuple(counters),
            sampled_gpus=tuple(sampled),
            counter_interval_s=self.counter_interval_s,
        )

    def _use_sampler_for(self, gpus: _GpuSet) -> None:
        if gpus.reason is not None:
            self.sample_interval = None
        elif gpus.sampled_gpus:
            self.sample_interval = min(self.power_interval_s, self.counter_interval_s)
        else:
            self.sample_interval = self.counter_interval_s

    def _gpus_now(self) -> _GpuSet:
        """The GPUs to measure with: detected again when this process's GPUs are no longer
        those detected (a forked child that set ``CUDA_VISIBLE_DEVICES``)."""
        detected = self._gpus
        listed = self.nvml.gpus()
        if detected.lists(listed) or (not listed and self.nvml.shut_down):
            return detected
        with self._lock:
            if self._gpus is detected:
                self._gpus = self._detect()
                self._use_sampler_for(self._gpus)
                debug_once(
                    "nvml.energy.redetected",
                    "the GPUs of this process changed (%s, were %s): GPU energy is measured "
                    "on these from now on%s",
                    ", ".join(self._gpus.uuids) or "none",
                    ", ".join(detected.uuids) or "none",
                    "" if self._gpus.reason is None else f", or not: {self._gpus.reason}",
                )
            return self._gpus

    def _integrals_now(self, gpus: _GpuSet) -> tuple[list[float | None], int]:
        """Each GPU's integral now, and the failed samples so far.  The time is taken
        under the lock, as :meth:`sample` takes its own: an integral is never read at
        a time before its last sample's."""
        with self._lock:
            now = self._clock()
            integrals = gpus.integrals
            return [i.at(now) for i in integrals], sum(i.gaps for i in integrals)

    def begin(self, *, reset_peak: bool = True) -> _GpuEnergyState | None:
        if self.nvml.shut_down:
            return None
        gpus = self._gpus_now()
        if gpus.reason is not None:
            return None
        token = self._task_opened()  # the first task's sampler takes a first sample here
        start, gaps = self._integrals_now(gpus)
        return _GpuEnergyState(gpus, token, start, gaps)

    def read(self, state: _GpuEnergyState | None, figures: Figures) -> None:
        if state is None:
            return
        if self.nvml.shut_down:
            debug_once("nvml.energy.shutdown", "no GPU energy for tasks read after NVML shut down")
            return
        gpus = state.gpus
        if self._gpus_now() is not gpus:
            self._gpus_changed_during_a_task()
            return
        now, gaps = self._integrals_now(gpus)
        if gaps != state.gaps:
            debug_once(
                "nvml.energy.gap",
                "a GPU's energy could not be read while a task was open: "
                "that task has no GPU energy",
            )
            return
        total_j = 0.0
        for start_j, now_j in zip(state.start_j, now, strict=True):
            if start_j is None or now_j is None:
                return
            total_j += max(now_j - start_j, 0.0)  # (rounding)
        assert gpus.source is not None
        figures.set_energy("gpu", total_j, gpus.source)

    def _gpus_changed_during_a_task(self) -> None:
        count_more(GPUS_CHANGED, 1)
        warn_once(
            GPUS_CHANGED,
            "the GPUs of this process changed while a task was open (CUDA_VISIBLE_DEVICES "
            "set in a forked child?): that task has no GPU energy, as a sum over other GPUs "
            "than it began with would be wrong",
        )

    def end(self, state: _GpuEnergyState | None) -> None:
        if state is not None:
            self._task_closed(state.token)

    def _sampling_started(self) -> None:
        # No task was open since the sampler stopped: the counters' advance meanwhile is
        # no task's, and the next read (now) takes them up again without making it up.
        gpus = self._gpus
        with self._lock:
            gpus.resume_counters = True
            gpus.counters_read_at = None
        self.sample()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._lock = threading.Lock()  # the monitor thread may have held it at the fork

    def sample(self) -> None:
        """Read the energy counters (when due) and sample the power of the GPUs without one."""
        nvml = self.nvml
        gpus = self._gpus
        listed = nvml.gpus()
        module = nvml.started_module()
        # Unusable, shut down (at exit), or other GPUs than detected (the next task detects them).
        if not listed or module is None or not gpus.lists(listed):
            return
        counters: list[tuple[CounterIntegral, float, float | None] | None] = []
        resume = False
        if gpus.counter_gpus and self._counters_due(gpus):
            resume = gpus.resume_counters
            energy = module.nvmlDeviceGetTotalEnergyConsumption
            for integral, position in zip(gpus.counter_integrals, gpus.counter_gpus, strict=True):
                handle = listed[position].gpu_handle
                try:
                    counter_j = energy(handle) / 1000
                except module.NVMLError as exc:
                    if nvml.shut_down:  # shut down meanwhile
                        return
                    swallowed("probe.nvml-energy.sample", exc)
                    counters.append(None)
                    continue
                # The power now sets the rate until the next read, where there is no last one.
                power_w = (
                    None
                    if integral.time_s is not None and not resume
                    else self._power_or_none(handle)
                )
                counters.append((integral, counter_j, power_w))
        readings: list[float | None] = []
        power = module.nvmlDeviceGetPowerUsage
        for position in gpus.sampled_gpus:
            try:
                readings.append(power(listed[position].gpu_handle) / 1000)
            except module.NVMLError as exc:
                if nvml.shut_down:  # shut down meanwhile
                    return
                swallowed("probe.nvml-energy.sample", exc)
                readings.append(None)
        with self._lock:
            now = self._clock()
            if counters:
                gpus.counters_read_at = now
                gpus.resume_counters = False
            for slot, reading in enumerate(counters):
                if reading is None:
                    gpus.counter_integrals[slot].interrupt()
                else:
                    integral, counter_j, power_w = reading
                    integral.add(now, counter_j, power_w, resume=resume)
            for power_integral, watts in zip(gpus.power_integrals, readings, strict=True):
                if watts is None:
                    power_integral.interrupt()
                else:
                    power_integral.add(now, watts)

    def _counters_due(self, gpus: _GpuSet) -> bool:
        """Whether the counters are to be read at this sample: not before about an
        interval since the last read.  The GPUs without a counter may have the monitor
        sample more often; and the monitor's first tick can follow the first sample at
        once.  A counter moves in steps (of 100 ms on an H100): the power it shows over
        a few milliseconds is one step or none, 0 W or thousands of watts."""
        if gpus.counters_read_at is None:
            return True
        slack = min(self.power_interval_s, self.counter_interval_s) / 2
        return self._clock() - gpus.counters_read_at >= self.counter_interval_s - slack

    def _power_or_none(self, handle: object) -> float | None:
        module = self.nvml.started_module()
        if module is None:
            return None
        try:
            return float(module.nvmlDeviceGetPowerUsage(handle)) / 1000
        except module.NVMLError:
            return None
