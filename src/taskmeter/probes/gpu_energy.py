"""Energy of this process's GPUs during each task, from NVML.

Where a GPU has a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded; Volta and newer) a task's energy is the
counter's difference, read when the task begins and when it is read: exact to
the counter's own update rate.  Otherwise the power (``nvmlDeviceGetPowerUsage``,
milliwatts) is sampled on the monitor thread while a task is open and
integrated, each sample's power held until the next.  A task's begin and end
fall between samples and are read the same way, from the last sample, so the
figures of back-to-back tasks add up to the task around them and none is
negative, however short.  A sample that fails (the GPU lost, say) leaves the
energy from the last good one on unknown: the tasks open across it report no
GPU energy rather than the last power extrapolated over the gap, and the
integral starts again at the next good sample.  ``taskmeter.energy.gpu.source`` says which:
``nvml-counter``, ``nvml-sampled``, or ``nvml-counter+sampled`` on a mix.

The figure covers whole GPUs: other processes on them, and every MIG slice of
a GPU, are included; a GPU shared by two visible MIG devices is counted once.
A task read after NVML was shut down (at exit) has no figure: no counter can
be read, and sampled power would be extrapolated past the last sample.
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


class _GpuSet:
    """The GPUs the probe detected, and how each one's energy is read.

    Positions index :meth:`Nvml.gpus` as it was listed then; :meth:`lists` says
    whether a listing is still of the same GPUs (by UUID), so that a position
    never indexes another list (a forked child that set ``CUDA_VISIBLE_DEVICES``
    lists its GPUs anew).
    """

    __slots__ = ("counter_gpus", "integrals", "listed", "reason", "sampled_gpus", "source", "uuids")

    def __init__(
        self,
        listed: tuple[GpuDevice, ...],
        *,
        reason: str | None = None,
        counter_gpus: tuple[int, ...] = (),
        sampled_gpus: tuple[int, ...] = (),
    ) -> None:
        self.listed = listed
        self.uuids = _uuids(listed)
        self.reason = reason
        self.counter_gpus = counter_gpus
        self.sampled_gpus = sampled_gpus
        self.integrals = [PowerIntegral() for _ in sampled_gpus]
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
    __slots__ = ("counters_mj", "gaps", "gpus", "sampled_j", "token")

    def __init__(
        self,
        gpus: _GpuSet,
        token: int | None,
        counters_mj: list[int],
        sampled_j: list[float | None],
        gaps: int,
    ) -> None:
        self.gpus = gpus
        self.token = token
        """The sampler's token, ``None`` when the task needs no sampling."""
        self.counters_mj = counters_mj
        self.sampled_j = sampled_j
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
        method: str = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not power_interval_s > 0:
            raise ValueError(f"power_interval_s must be positive, got {power_interval_s!r}")
        if method not in ("auto", "counter", "sampled"):
            raise ValueError(f"method must be 'auto', 'counter' or 'sampled', got {method!r}")
        self.method = method
        self.nvml = nvml if nvml is not None else default_nvml()
        self.power_interval_s = power_interval_s
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
        return _GpuSet(gpus, counter_gpus=tuple(counters), sampled_gpus=tuple(sampled))

    def _use_sampler_for(self, gpus: _GpuSet) -> None:
        self.sample_interval = self.power_interval_s if gpus.sampled_gpus else None

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

    def _read_counters(self, gpus: _GpuSet) -> list[int] | None:
        """The counters, in millijoules; ``None`` once NVML is shut down (at exit), or when
        this process's GPUs are no longer ``gpus``."""
        if not gpus.counter_gpus:
            return []
        listed = self.nvml.gpus()
        module = self.nvml.started_module()
        if module is None or not gpus.lists(listed):
            return None
        energy = module.nvmlDeviceGetTotalEnergyConsumption
        try:
            return [int(energy(listed[p].gpu_handle)) for p in gpus.counter_gpus]
        except module.NVMLError:
            if self.nvml.shut_down:  # shut down meanwhile
                return None
            raise

    def _integrals_now(self, gpus: _GpuSet) -> tuple[list[float | None], int]:
        """Each sampled GPU's integral now, and the failed samples so far.  The time is
        taken under the lock, as :meth:`sample` takes its own: the integral is never
        read at a time before its last sample's."""
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
        token = self._task_opened() if gpus.sampled_gpus else None
        try:
            counters = self._read_counters(gpus)
        except BaseException:
            if token is not None:
                self._task_closed(token)
            raise
        if counters is None:
            if token is not None:
                self._task_closed(token)
            return None
        sampled, gaps = self._integrals_now(gpus)
        return _GpuEnergyState(gpus, token, counters, sampled, gaps)

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
        total_j = 0.0
        if gpus.counter_gpus:
            counters = self._read_counters(gpus)
            if counters is None:
                return
            for start, now in zip(state.counters_mj, counters, strict=True):
                if now < start:
                    debug_once("nvml.counter", "a GPU energy counter went backwards (reset?)")
                    return
                total_j += (now - start) / 1000
        if gpus.sampled_gpus:
            sampled, gaps = self._integrals_now(gpus)
            if gaps != state.gaps:
                debug_once(
                    "nvml.energy.gap",
                    "a GPU's power could not be sampled while a task was open: "
                    "that task has no GPU energy",
                )
                return
            for start_j, now_j in zip(state.sampled_j, sampled, strict=True):
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
        if state is not None and state.token is not None:
            self._task_closed(state.token)

    def _sampling_started(self) -> None:
        self.sample()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._lock = threading.Lock()  # the monitor thread may have held it at the fork

    def sample(self) -> None:
        """Take a power sample of every GPU without an energy counter."""
        nvml = self.nvml
        gpus = self._gpus
        listed = nvml.gpus()
        module = nvml.started_module()
        # Unusable, shut down (at exit), or other GPUs than detected (the next task detects them).
        if not listed or module is None or not gpus.lists(listed):
            return
        power = module.nvmlDeviceGetPowerUsage
        readings: list[tuple[int, float | None]] = []
        for slot, position in enumerate(gpus.sampled_gpus):
            try:
                readings.append((slot, power(listed[position].gpu_handle) / 1000))
            except module.NVMLError as exc:
                if nvml.shut_down:  # shut down meanwhile
                    return
                swallowed("probe.nvml-energy.sample", exc)
                readings.append((slot, None))
        with self._lock:
            now = self._clock()
            for slot, watts in readings:
                if watts is None:
                    gpus.integrals[slot].interrupt()
                else:
                    gpus.integrals[slot].add(now, watts)
