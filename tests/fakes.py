"""Stand-ins for hardware this machine lacks: a powercap tree and an NVML module.

Both are driven by the test, which knows exactly how many joules (or bytes)
it made them report: that is the ground truth the probes are checked against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# ---------------------------------------------------------------- powercap


class FakeZone:
    """One powercap zone whose ``energy_uj`` the test advances by known joules."""

    def __init__(self, path: Path, name: str, range_j: float, energy_j: float) -> None:
        self.path = path
        self.range_uj = round(range_j * 1e6)
        self.total_uj = round(energy_j * 1e6)
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.range_uj}\n")
        (path / "enabled").write_text("1\n")
        self._write()

    def advance(self, joules: float) -> None:
        """Let ``joules`` be consumed: the counter moves on, wrapping at its range."""
        self.total_uj += round(joules * 1e6)
        self._write()

    @property
    def raw_uj(self) -> int:
        return self.total_uj % self.range_uj

    def consume_unreadable(self, joules: float) -> None:
        """Let ``joules`` be consumed while ``energy_uj`` cannot be read (no number in it)."""
        self.total_uj += round(joules * 1e6)
        with (self.path / "energy_uj").open("r+") as f:
            f.seek(0)
            f.truncate()
            f.write("\n")

    def _write(self) -> None:
        # In place (same inode), as the kernel's file would be: the probe keeps it open.
        with (self.path / "energy_uj").open(
            "r+" if (self.path / "energy_uj").exists() else "w"
        ) as f:
            f.seek(0)
            f.truncate()
            f.write(f"{self.raw_uj}\n")


class FakePowercap:
    """A ``/sys/class/powercap`` layout: zones under ``devices/``, links to them in ``class/``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "class"
        self.devices = base / "devices"
        self.root.mkdir(parents=True)
        self.devices.mkdir()

    def zone(
        self,
        entry: str,
        name: str,
        *,
        range_j: float = 262_143.328850,
        energy_j: float = 1000.0,
    ) -> FakeZone:
        """Add zone ``entry`` (``intel-rapl:0``, or ``intel-rapl:0:2`` inside its parent)."""
        control_type, *indices = entry.split(":")
        control_dir = self.devices / control_type
        if not control_dir.exists():
            control_dir.mkdir()
            (control_dir / "enabled").write_text("1\n")
            (self.root / control_type).symlink_to(control_dir)
        parent = control_dir
        for depth in range(1, len(indices)):
            parent = parent / ":".join([control_type, *indices[:depth]])
        zone = FakeZone(parent / entry, name, range_j, energy_j)
        (self.root / entry).symlink_to(zone.path)
        return zone


# ---------------------------------------------------------------- NVML


class FakeNvmlError(Exception):
    """``pynvml.NVMLError``: carries an NVML return code."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {
            UNINITIALIZED: "Uninitialized",
            3: "Not Supported",
            4: "Insufficient Permissions",
            12: "NVML Shared Library Not Found",
            13: "Function Not Found",
            15: "GPU is lost",
        }.get(self.value, f"NVML error {self.value}")


UNINITIALIZED = 1


NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15


@dataclass(eq=False)
class FakeGpu:
    """A GPU (or MIG device) as the fake NVML reports it."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    energy_mj: int | None = 1_000_000
    """Total-energy counter; ``None``: the GPU has none (pre-Volta)."""
    power_mw: int | None = 100_000
    processes: dict[int, int | None] = field(default_factory=dict)
    """Compute processes: pid -> used bytes (``None``: not available)."""
    processes_error: int | None = None
    """The error the process list raises (``NOT_SUPPORTED`` on old boards, ...)."""
    migs: list[FakeGpu] | None = None
    """MIG devices when MIG mode is on."""
    gi: int = 0
    ci: int = 0
    failing: bool = False
    """Every query raises ``GPU is lost``."""
    handle_error: int | None = None
    """The error ``nvmlDeviceGetHandleByIndex`` raises for this GPU (``GPU_IS_LOST``,
    ``NO_PERMISSION`` where the process may not open its device node)."""

    def use_energy(self, joules: float) -> None:
        assert self.energy_mj is not None
        self.energy_mj += round(joules * 1000)


class FakeNvml:
    """The subset of ``pynvml`` that taskmeter calls, over :class:`FakeGpu` objects."""

    NVMLError = FakeNvmlError

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self.initialised = 0
        """``nvmlInit`` calls not yet matched by ``nvmlShutdown`` (NVML counts them)."""
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _check(self, gpu: FakeGpu) -> None:
        self._check_initialised()
        if gpu.failing:
            raise FakeNvmlError(GPU_IS_LOST)

    def _check_initialised(self) -> None:
        # As NVML after its last nvmlShutdown.  (Queries before any nvmlInit
        # are let through: tests resolve devices without starting the fake.)
        if self.shutdown_calls and not self.initialised:
            raise FakeNvmlError(UNINITIALIZED)

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._check_initialised()
        self.shutdown_calls += 1
        self.initialised = max(self.initialised - 1, 0)

    def nvmlDeviceGetCount(self) -> int:
        self._check_initialised()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check_initialised()
        if not 0 <= index < len(self.gpus):
            raise FakeNvmlError(2)
        gpu = self.gpus[index]
        if gpu.handle_error is not None:
            raise FakeNvmlError(gpu.handle_error)
        return gpu

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return handle.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._count("energy")
        self._check(handle)
        if handle.energy_mj is None or handle in self._mig_set():  # MIG devices have none
            raise FakeNvmlError(NOT_SUPPORTED)
        return handle.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._count("power")
        self._check(handle)
        if handle.power_mw is None:
            raise FakeNvmlError(NOT_SUPPORTED)
        return handle.power_mw

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[Any]:
        self._count("processes")
        self._check(handle)
        if handle.processes_error is not None:
            raise FakeNvmlError(handle.processes_error)
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in handle.processes.items()
        ]

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        if handle.migs is None:
            raise FakeNvmlError(NOT_SUPPORTED)
        return [1, 1]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeGpu:
        assert handle.migs is not None
        if index >= len(handle.migs):
            raise FakeNvmlError(NOT_FOUND)
        return handle.migs[index]

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeGpu) -> int:
        return handle.gi

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeGpu) -> int:
        return handle.ci

    def _mig_set(self) -> list[FakeGpu]:
        return [m for g in self.gpus for m in (g.migs or [])]


def gpu_uuid(n: int) -> str:
    """A well-formed GPU UUID, distinct for each ``n``."""
    return f"GPU-{n:08x}-d72c-4106-c12f-20bd9faed9f6"


def this_pid() -> int:
    return os.getpid()
