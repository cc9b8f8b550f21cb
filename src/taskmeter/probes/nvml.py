"""NVIDIA GPUs through NVML: the library, loaded lazily and started once per process.

NVML comes from ``nvidia-ml-py`` (the ``gpu`` extra, module ``pynvml``) and
the driver's ``libnvidia-ml.so.1``.  Neither is needed to import taskmeter:
:class:`Nvml` imports the module on first use, and a missing module, library
or driver is a reason recorded in :attr:`Nvml.reason`, not an error.  Tests
inject a module of their own.

The GPUs of this process are those ``CUDA_VISIBLE_DEVICES`` leaves visible,
named by index, by (a unique prefix of) UUID (``GPU-...``), or as MIG devices
(``MIG-<uuid>``, or the older ``MIG-GPU-<uuid>/<gi>/<ci>``).  As in CUDA, the
first entry that names no device ends the list.  Indices are NVML's, which
follow PCI bus order; CUDA follows it too when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
(and on machines whose GPUs are all alike).

A GPU NVML cannot reach (lost, fallen off the bus; or not this process's, its
device node closed to it) is one this process cannot use either: it is left
out.  Beside such a GPU, which index is which is unknown (CUDA may or may not
count it), so indices, and UUID prefixes that might be its UUID's, give no
GPU at all, with a reason that says to name the GPUs by their whole UUID.

On Linux, where none of the NVIDIA driver's traces is found (its kernel
module's ``/proc/driver/nvidia``, ``/dev/nvidia*``, WSL's ``/dev/dxg``, or
``libnvidia-ml`` where the dynamic linker looks), NVML could not start and
``pynvml`` is not imported: that import alone takes 25 ms, which every task
process and ``taskmeter run`` would pay on a machine without a GPU.

NVML is started (``nvmlInit``) once per process and shut down at exit; once
shut down it is never started again in that process (a monitor tick or a
task finished later gets no device, and the GPU figures that would need a
reading are absent).  A forked child starts it again for itself on first
use: the parent's device handles are not reused.
"""

from __future__ import annotations

import atexit
import glob
import importlib
import importlib.util
import os
import re
import sys
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._log import debug_once

NVML_MODULE = "pynvml"
INSTALL_HINT = "pip install 'taskmeter[gpu]'"
DRIVER_TRACES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/dxg")
"""Paths (glob patterns) one of which exists where the NVIDIA driver is loaded (or WSL's GPU)."""
LINKER_CACHE = "/etc/ld.so.cache"
NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_FUNCTION_NOT_FOUND = 13
"""NVML return codes (``pynvml.NVMLError.value``) of a query this process can never have
answered here."""
_LEGACY_MIG = re.compile(r"^MIG-(GPU-[0-9A-Fa-f-]+)/(\d+)/(\d+)$")
_MIG_ENABLED = 1


@dataclass(frozen=True)
class GpuDevice:
    """A GPU (or MIG device) this process may use."""

    uuid: str
    """``GPU-...`` or ``MIG-...``."""
    handle: Any
    """The NVML handle to ask about processes (the MIG device's own for a MIG device)."""
    gpu_uuid: str
    """UUID of the physical GPU (the same for every MIG device on it)."""
    gpu_handle: Any
    """NVML handle of the physical GPU: energy and power are read there."""
    index: int
    """NVML index of the physical GPU."""

    @property
    def is_mig(self) -> bool:
        """Whether this is a MIG device (a slice of :attr:`gpu_uuid`)."""
        return self.uuid != self.gpu_uuid


class Nvml:
    """The NVML library of this process, started on first use.

    Args:
        module: The ``pynvml`` module, or a stand-in with the same functions
            and ``NVMLError`` (default: import ``pynvml`` when first needed).
        environ: Where to read ``CUDA_VISIBLE_DEVICES`` (default ``os.environ``,
            read when NVML starts).
    """

    def __init__(self, module: Any | None = None, *, environ: Mapping[str, str] | None = None):
        self._injected = module
        self._environ = environ
        self._lock = threading.Lock()
        self._module: Any | None = None
        self._tried = False
        self._started_pid: int | None = None
        self._devices: tuple[GpuDevice, ...] = ()
        self._gpus: tuple[GpuDevice, ...] = ()
        self.reason: str | None = None
        """Why NVML cannot be used here (``None`` when it can, or before :meth:`start`)."""
        self._atexit = False
        self._shut_down = False
        _instances.add(self)

    def start(self) -> bool:
        """Start NVML and find this process's GPUs, once; return whether any GPU is usable."""
        if self._tried:
            return bool(self._devices)
        with self._lock:
            if not self._tried:
                self._start()
                self._tried = True
        return bool(self._devices)

    @property
    def shut_down(self) -> bool:
        """Whether :meth:`shutdown` ran in this process (NVML is then never started again)."""
        return self._shut_down

    @property
    def module(self) -> Any:
        """The NVML module (after a successful :meth:`start`)."""
        if self._module is None:
            raise RuntimeError("NVML is not started")
        return self._module

    def started_module(self) -> Any | None:
        """The NVML module if NVML is started and not shut down, else ``None`` (never raises;
        for the monitor thread, which may run while the process shuts NVML down)."""
        return self._module

    @property
    def error(self) -> type[Exception]:
        """The module's ``NVMLError`` class."""
        error: type[Exception] = self.module.NVMLError
        return error

    def devices(self) -> tuple[GpuDevice, ...]:
        """The GPUs (and MIG devices) this process may use; empty if NVML is unusable."""
        if not self._tried:
            self.start()
        return self._devices

    def gpus(self) -> tuple[GpuDevice, ...]:
        """One device per physical GPU among :meth:`devices` (for energy and power)."""
        if not self._tried:
            self.start()
        return self._gpus

    def _start(self) -> None:
        if self._shut_down:
            return
        module = self._injected
        if module is None:
            if importlib.util.find_spec(NVML_MODULE) is None:
                self.reason = f"nvidia-ml-py is not installed ({INSTALL_HINT})"
                return
            if not nvml_possible():
                self.reason = (
                    "no NVIDIA driver here (none of "
                    + ", ".join(DRIVER_TRACES)
                    + f", nor {NVML_LIBRARY} where the dynamic linker looks)"
                )
                return
            try:
                module = importlib.import_module(NVML_MODULE)
            except ImportError:
                self.reason = f"nvidia-ml-py is not installed ({INSTALL_HINT})"
                return
        try:
            module.nvmlInit()
        except module.NVMLError as exc:
            self.reason = f"NVML did not start ({exc}): no NVIDIA driver or library here?"
            return
        except OSError as exc:  # a broken library raises from ctypes
            self.reason = f"NVML did not start: {exc}"
            return
        self._module = module
        self._started_pid = os.getpid()
        if not self._atexit:
            atexit.register(self.shutdown)
            self._atexit = True
        environ = os.environ if self._environ is None else self._environ
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        try:
            self._devices = tuple(resolve_visible_devices(module, visible))
        except module.NVMLError as exc:
            self.reason = f"NVML could not list the GPUs: {exc}"
            return
        except AmbiguousDevicesError as exc:
            self.reason = str(exc)
            return
        physical: dict[str, GpuDevice] = {}
        for device in self._devices:
            physical.setdefault(device.gpu_uuid, device)
        self._gpus = tuple(physical.values())
        if not self._devices:
            self.reason = (
                "no GPU visible to this process"
                if visible is None
                else f"no GPU visible to this process (CUDA_VISIBLE_DEVICES={visible!r})"
            )
        elif visible is not None and _uses_indices(visible):
            _note_device_order(module, self._devices, environ)

    def shutdown(self) -> None:
        """Shut NVML down, if this process started it (registered to run at exit).

        For good: nothing starts it again in this process (a sampler's tick
        or a task that ends after this finds no device), as a library shut
        down at exit must not be initialised anew behind it.
        """
        with self._lock:
            module, pid = self._module, self._started_pid
            self._module = None
            self._started_pid = None
            self._devices = self._gpus = ()
            self._tried = True
            self._shut_down = True
            if self.reason is None:  # else the reason it never started stays
                self.reason = "NVML was shut down (the process is exiting)"
        if module is not None and pid == os.getpid():
            try:
                module.nvmlShutdown()
            except Exception as exc:
                debug_once("nvml.shutdown", "nvmlShutdown failed: %s", exc)

    def _after_fork_in_child(self) -> None:
        # The child starts NVML again for itself; the parent's handles are dropped.
        self._lock = threading.Lock()
        self._module = None
        self._started_pid = None
        self._devices = self._gpus = ()
        self._tried = False
        self._shut_down = False
        self.reason = None


def nvml_possible() -> bool:
    """Whether NVML might start here, judged from a few paths without loading it.

    Elsewhere than on Linux, always.  On Linux, when the NVIDIA kernel driver
    (or WSL's GPU device) shows, or its NVML library is where the dynamic
    linker looks (``LD_LIBRARY_PATH``, the linker's cache: the driver may be
    installed with its module loaded on first use).  When in doubt (the
    cache cannot be read), ``True``.
    """
    if not sys.platform.startswith("linux"):
        return True
    if any(glob.glob(pattern) for pattern in DRIVER_TRACES):
        return True
    for directory in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if directory and os.path.exists(os.path.join(directory, NVML_LIBRARY)):
            return True
    try:
        with open(LINKER_CACHE, "rb") as cache:
            return NVML_LIBRARY.encode() in cache.read()
    except OSError:
        return True


class AmbiguousDevicesError(Exception):
    """``CUDA_VISIBLE_DEVICES`` cannot be resolved for sure beside a GPU NVML cannot reach."""


def resolve_visible_devices(module: Any, visible: str | None) -> list[GpuDevice]:
    """The devices ``CUDA_VISIBLE_DEVICES=visible`` leaves visible, as CUDA reads it.

    ``None`` means every GPU.  Entries are indices, ``GPU-`` UUIDs (or unique
    prefixes), ``MIG-`` UUIDs or ``MIG-GPU-<uuid>/<gi>/<ci>``; the first entry
    that names no device ends the list, and repeats are dropped.  GPUs NVML
    cannot reach are left out; beside one, an index or a UUID prefix raises
    :class:`AmbiguousDevicesError` (it might name that GPU, or count it).
    """
    gpus = []
    unreachable: list[str] = []
    for index in range(module.nvmlDeviceGetCount()):
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(module.nvmlDeviceGetUUID(handle))
        except module.NVMLError as exc:
            unreachable.append(f"GPU {index} ({exc})")
            continue
        gpus.append((index, handle, uuid))
    if unreachable:
        debug_once(
            "nvml.unreachable",
            "NVML cannot reach %s: left out, as this process cannot use it",
            ", ".join(unreachable),
        )
    if visible is None:
        return [GpuDevice(uuid, handle, uuid, handle, index) for index, handle, uuid in gpus]
    devices: list[GpuDevice] = []
    for entry in visible.split(","):
        entry = entry.strip()
        if unreachable and _may_name_another(module, gpus, entry):
            raise AmbiguousDevicesError(
                f"CUDA_VISIBLE_DEVICES={visible!r} names {entry!r}, which cannot be resolved "
                f"for sure while NVML cannot reach {', '.join(unreachable)}; name the GPUs "
                "by their whole UUID (nvidia-smi -L)"
            )
        device = _resolve_entry(module, gpus, entry)
        if device is None:
            break
        if all(d.uuid != device.uuid for d in devices):
            devices.append(device)
    return devices


def _may_name_another(module: Any, gpus: list[tuple[int, Any, str]], entry: str) -> bool:
    """Whether ``entry`` may mean another GPU than the reachable ones say: an index (CUDA
    may count an unreachable GPU), or a UUID prefix that is no reachable GPU's whole
    UUID (it may be an unreachable GPU's, or one of its MIG devices')."""
    if entry.isdigit():
        return True
    upper = entry.upper()
    if _LEGACY_MIG.match(entry) is not None or not upper.startswith(("GPU-", "MIG-")):
        return False
    if upper.startswith("GPU-"):
        return all(uuid.upper() != upper for _, _, uuid in gpus)
    return all(
        mig_uuid.upper() != upper
        for _, handle, _ in gpus
        for _, mig_uuid in _mig_devices(module, handle)
    )


def _resolve_entry(module: Any, gpus: list[tuple[int, Any, str]], entry: str) -> GpuDevice | None:
    if entry.isdigit():
        number = int(entry)
        if number >= len(gpus):
            return None
        index, handle, uuid = gpus[number]
        return GpuDevice(uuid, handle, uuid, handle, index)
    upper = entry.upper()
    if upper.startswith("GPU-"):
        matches = [g for g in gpus if g[2].upper().startswith(upper)]
        if len(matches) != 1:
            return None
        index, handle, uuid = matches[0]
        return GpuDevice(uuid, handle, uuid, handle, index)
    legacy = _LEGACY_MIG.match(entry)
    if legacy is not None:
        parent_uuid = legacy.group(1).upper()
        gi, ci = int(legacy.group(2)), int(legacy.group(3))
        for index, handle, uuid in gpus:
            if uuid.upper() == parent_uuid:
                for mig_handle, mig_uuid in _mig_devices(module, handle):
                    if (
                        module.nvmlDeviceGetGpuInstanceId(mig_handle) == gi
                        and module.nvmlDeviceGetComputeInstanceId(mig_handle) == ci
                    ):
                        return GpuDevice(mig_uuid, mig_handle, uuid, handle, index)
        return None
    if upper.startswith("MIG-"):
        found = [
            GpuDevice(mig_uuid, mig_handle, uuid, handle, index)
            for index, handle, uuid in gpus
            for mig_handle, mig_uuid in _mig_devices(module, handle)
            if mig_uuid.upper().startswith(upper)
        ]
        return found[0] if len(found) == 1 else None
    return None


def _mig_devices(module: Any, handle: Any) -> list[tuple[Any, str]]:
    """The MIG devices of a GPU whose MIG mode is on (empty otherwise)."""
    try:
        current = module.nvmlDeviceGetMigMode(handle)[0]
    except module.NVMLError:
        return []  # not a MIG-capable GPU
    if current != _MIG_ENABLED:
        return []
    found = []
    for slot in range(module.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = module.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except module.NVMLError:
            continue  # an empty slot
        found.append((mig, _text(module.nvmlDeviceGetUUID(mig))))
    return found


def _uses_indices(visible: str) -> bool:
    return any(entry.strip().isdigit() for entry in visible.split(","))


def _note_device_order(
    module: Any, devices: tuple[GpuDevice, ...], environ: Mapping[str, str]
) -> None:
    if environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return
    try:
        names = {_text(module.nvmlDeviceGetName(h)) for _, h, _ in _all_gpus(module)}
    except module.NVMLError:
        return
    if len(names) > 1:
        debug_once(
            "nvml.order",
            "CUDA_VISIBLE_DEVICES uses indices on a machine with different GPUs (%s): "
            "taskmeter reads them in PCI bus order, CUDA only with "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID; use GPU UUIDs to be sure",
            ", ".join(sorted(names)),
        )


def _all_gpus(module: Any) -> list[tuple[int, Any, str]]:
    return [
        (i, module.nvmlDeviceGetHandleByIndex(i), "") for i in range(module.nvmlDeviceGetCount())
    ]


def unsupported(error: BaseException) -> bool:
    """Whether an ``NVMLError`` says the query can never work here (``Not Supported`` by
    the board, ``Function Not Found`` in a driver older than ``pynvml``, or
    ``Insufficient Permissions``, as for a MIG-enabled GPU's whole process list)."""
    code = getattr(error, "value", None)
    return code in (
        NVML_ERROR_NOT_SUPPORTED,
        NVML_ERROR_FUNCTION_NOT_FOUND,
        NVML_ERROR_NO_PERMISSION,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_instances: weakref.WeakSet[Nvml] = weakref.WeakSet()
_default: Nvml | None = None
_default_lock = threading.Lock()


def default_nvml() -> Nvml:
    """The process's :class:`Nvml` over the real ``pynvml`` (created on first use)."""
    global _default
    nvml = _default
    if nvml is None:
        with _default_lock:
            if _default is None:
                _default = Nvml()
            nvml = _default
    return nvml


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for nvml in list(_instances):
        nvml._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
