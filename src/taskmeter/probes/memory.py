"""Peak resident set size (RSS) per task.

On Linux the kernel keeps the process's RSS high-water mark (``VmHWM`` in
``/proc/<pid>/status``) and resets it when ``5`` is written to
``/proc/<pid>/clear_refs``.  :class:`LinuxRssHighWater` exposes that register;
:class:`~taskmeter.probes.peaks.PeakRegister` turns it into a correct peak for
every open task.

Reading ``VmHWM`` costs a few microseconds (the kernel formats the whole
status file), so the hot path uses ``getrusage``'s ``ru_maxrss`` instead,
which is ``max(VmHWM, S)`` where ``S`` is a floor the kernel set when the
program was exec'ed (the peak of the image it replaced, e.g. a large parent
that used ``vfork``).  After each reset the source checks ``ru_maxrss``
against the current RSS: while ``S`` is below it, ``ru_maxrss`` *is* the
high-water mark; otherwise the source reads ``VmHWM`` until the next reset.

Elsewhere ``ru_maxrss`` cannot be reset: a task's peak is then the peak of the
process since it started (macOS reports it in bytes, other Unixes in KiB).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._log import debug_once
from .._rusage import PROCESS_RSS_PEAK
from ..figures import Figures
from .base import Probe
from .peaks import HighWaterSource, PeakRegister, PeakTracker, shared_register

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def maxrss_unit(platform: str = sys.platform) -> int:
    """Bytes per unit of ``ru_maxrss``: bytes on macOS, KiB on Linux and the BSDs."""
    return 1 if platform == "darwin" else 1024


_MAXRSS_UNIT = maxrss_unit()


def parse_vm_hwm(status: bytes) -> int | None:
    """The ``VmHWM`` line of a ``/proc/<pid>/status`` text, in bytes."""
    start = status.find(b"VmHWM:")
    if start < 0:
        return None
    end = status.find(b"\n", start)
    fields = status[start + 6 : end if end >= 0 else None].split()
    if not fields or not fields[0].isdigit():
        return None
    unit = fields[1].lower() if len(fields) > 1 else b"kb"
    scale = {b"kb": 1024, b"mb": 1024**2, b"gb": 1024**3, b"b": 1}.get(unit)
    if scale is None:
        return None
    return int(fields[0]) * scale


class _WriteHoldingGil:
    """libc ``write`` called without releasing the GIL (``os.write`` where unavailable).

    ``os.write`` releases the GIL around the system call.  For a call this short
    (about half a microsecond) that only hands the interpreter to another
    thread: with the SDK's batch span processor running, measured in
    ``bench/bench_task.py``, it cost about 17 us per task in thread switches.
    The foreign function is called without ``argtypes``, which would double
    the cost of the call: an int and a bytes object convert to ``int`` and
    ``char *`` by themselves, and the length is passed as a ready-made
    ``size_t`` (:attr:`one`, for the one-byte writes of the hot path).
    """

    def __init__(self) -> None:
        self.write: Any = None
        self.one: Any = 1
        try:
            import ctypes

            write = ctypes.PyDLL(None, use_errno=True).write
            write.restype = ctypes.c_ssize_t
            self._size = ctypes.c_size_t
            self._get_errno = ctypes.get_errno
            self.one = ctypes.c_size_t(1)
            self.write = write
        except (ImportError, OSError, AttributeError):  # pragma: no cover - exotic libc
            self.write = None

    def __call__(self, fd: int, data: bytes) -> int:
        write = self.write
        if write is None:  # pragma: no cover - exotic libc
            return os.write(fd, data)
        written = int(write(fd, data, self._size(len(data))))
        if written < 0:
            raise self.last_error()
        return written

    def last_error(self) -> OSError:
        """The error of the last failed call (from ``errno``)."""
        errno = self._get_errno()
        return OSError(errno, os.strerror(errno))


_write_holding_gil = _WriteHoldingGil()


class LinuxRssHighWater(HighWaterSource):
    """The kernel's RSS high-water mark of one process, resettable via ``clear_refs``.

    ``procfs`` and ``pid`` can point the source at a directory tree a test
    built; the ``getrusage`` shortcut is used only for the real ``/proc/self``.
    """

    def __init__(self, procfs: str | os.PathLike[str] = "/proc", pid: int | str = "self") -> None:
        # This process's own id is its /proc/self (which a forked child's is too).
        own = str(pid) in ("self", str(os.getpid()))
        self._dir = Path(procfs) / ("self" if own else str(pid))
        self._fast = resource is not None and own and Path(procfs) == Path("/proc")
        self._lock = threading.Lock()
        self._status_fd: int | None = None
        self._statm_fd: int | None = None
        self._clear_fd: int | None = None
        self._resettable: bool | None = None
        # True while ru_maxrss equals VmHWM (until the next reset); None: not checked.
        self._rusage_exact: bool | None = None
        # An upper bound of the exec-time floor S of ru_maxrss, and S itself
        # once a reading showed it (see high_water()).
        self._floor_bound: int | None = None
        self._floor: int | None = None
        _fork_safe_sources.add(self)

    @property
    def resettable(self) -> bool:
        if self._resettable is None:
            self._resettable = self._open_clear_refs()
        return self._resettable

    @property
    def is_own_process(self) -> bool:
        """Whether this is the real ``/proc/self`` mark (not a tree a test built)."""
        return self._fast

    def high_water(self, usage: Any = None) -> int | None:
        if not self._fast or self._rusage_exact is False:
            return self._read_vm_hwm()
        if usage is None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
        maxrss = int(usage.ru_maxrss) * 1024
        if self._rusage_exact:
            return maxrss
        # Not known since the last reset.  ru_maxrss = max(S, H): H the mark,
        # S a floor the kernel set at exec (the peak of the image it replaced,
        # e.g. a large parent that used vfork).  It is H when it reaches a
        # level already proven >= S, when it exceeds a floor found before, or
        # when it is no more than the RSS now (H >= RSS); otherwise read VmHWM
        # until the next reset.  Residual case: S equal, to the page, to the
        # RSS of an earlier check; a task that peaks below S is then reported
        # at S.
        bound, floor = self._floor_bound, self._floor
        if (bound is not None and maxrss >= bound) or (floor is not None and maxrss > floor):
            self._rusage_exact = True
            return maxrss
        if maxrss <= self._current_rss():
            self._rusage_exact = True
            self._floor_bound = maxrss if bound is None else min(bound, maxrss)
            return maxrss
        value = self._read_vm_hwm()
        if value is not None and maxrss <= value:
            self._rusage_exact = True
            self._floor_bound = maxrss if bound is None else min(bound, maxrss)
            return maxrss
        self._rusage_exact = False
        if value is not None:
            self._floor = maxrss  # S itself: ru_maxrss > H
        return value

    def reset(self) -> None:
        fd = self._clear_fd
        if fd is None:
            if not self.resettable:
                return
            fd = self._clear_fd
            assert fd is not None
        try:
            # The foreign function itself, without the wrapper's frame: 0.7 us
            # a reset (1.6 us when it went through a wrapper with argtypes).
            write = _write_holding_gil.write
            if write is None:  # pragma: no cover - exotic libc
                os.write(fd, b"5")
            elif write(fd, b"5", _write_holding_gil.one) < 0:
                raise _write_holding_gil.last_error()
        except OSError as exc:
            self._resettable = False
            debug_once(
                "memory.reset",
                "cannot reset the RSS high-water mark via %s (%s); task peaks include "
                "what ran before them",
                self._dir / "clear_refs",
                exc,
            )
            return
        # Whether ru_maxrss is the new mark is worked out at the next reading.
        self._rusage_exact = None

    def _open_clear_refs(self) -> bool:
        try:
            self._clear_fd = os.open(self._dir / "clear_refs", os.O_WRONLY)
        except OSError as exc:
            debug_once(
                "memory.clear_refs",
                "cannot open %s (%s); task peaks include what ran before them",
                self._dir / "clear_refs",
                exc,
            )
            return False
        return True

    def _read_vm_hwm(self) -> int | None:
        with self._lock:
            if self._status_fd is None:
                try:
                    self._status_fd = os.open(self._dir / "status", os.O_RDONLY)
                except OSError as exc:
                    debug_once("memory.status", "cannot read %s: %s", self._dir / "status", exc)
                    return None
            data = os.pread(self._status_fd, 8192, 0)
        return parse_vm_hwm(data)

    def _current_rss(self) -> int:
        if self._statm_fd is None:
            self._statm_fd = os.open(self._dir / "statm", os.O_RDONLY)
        fields = os.pread(self._statm_fd, 256, 0).split()
        return int(fields[1]) * _PAGE_SIZE

    def after_fork_in_child(self) -> None:
        """Reopen ``/proc/self`` files: the inherited ones name the parent."""
        self._close_files()
        self._lock = threading.Lock()
        self._status_fd = self._statm_fd = self._clear_fd = None
        self._resettable = None
        self._rusage_exact = None
        self._floor_bound = None
        self._floor = None

    def _close_files(self, _close: Callable[[int], None] = os.close) -> None:
        # ``os.close`` bound here: called from __del__, possibly at interpreter
        # exit, when this module's globals may already be gone (None).
        # getattr: an __init__ interrupted (a Ctrl-C) before it set them all.
        for fd in (
            getattr(self, "_status_fd", None),
            getattr(self, "_statm_fd", None),
            getattr(self, "_clear_fd", None),
        ):
            if fd is not None:
                try:  # noqa: SIM105 - not contextlib.suppress: the module's globals may be gone
                    _close(fd)
                except OSError:
                    pass

    def __del__(self) -> None:
        self._close_files()


class RusageHighWater(HighWaterSource):
    """``ru_maxrss`` where it cannot be reset: the peak since the process started."""

    resettable = False

    def high_water(self, usage: Any = None) -> int | None:
        if resource is None:  # pragma: no cover - Windows
            return _psutil_peak()
        if usage is None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
        return int(usage.ru_maxrss) * _MAXRSS_UNIT

    def reset(self) -> None:
        return None


def _psutil_peak() -> int | None:  # pragma: no cover - Windows
    import psutil

    info = psutil.Process().memory_info()
    peak = getattr(info, "peak_wset", None)
    return int(peak) if peak is not None else None


def default_high_water_source() -> HighWaterSource:
    """The best RSS high-water mark this platform offers."""
    if sys.platform.startswith("linux") and Path("/proc/self/status").exists():
        return LinuxRssHighWater()
    return RusageHighWater()


_OWN_RSS_MARK = "rss:self"


def rss_register(source: HighWaterSource | None = None) -> PeakRegister:
    """The register to track RSS peaks through, for a probe given ``source``.

    This process's own mark (``source`` ``None``, or a :class:`LinuxRssHighWater`
    on the real ``/proc/self``) is one for the whole process, and so is its
    register, whichever probe asks: a reset folds into the tasks of every
    probe, and keeps the process's lifetime peak (:data:`PROCESS_RSS_PEAK`,
    which ``ru_maxrss`` readings elsewhere use).  The source that made the
    register first is the one it reads and resets: two objects over one mark
    would each misjudge what the other's resets did.  Any other source (a
    tree a test built) gets a register of its own.
    """
    if source is None:
        return shared_register(_OWN_RSS_MARK, default_high_water_source, lifetime=PROCESS_RSS_PEAK)
    if isinstance(source, LinuxRssHighWater) and source.is_own_process:
        return shared_register(_OWN_RSS_MARK, lambda: source, lifetime=PROCESS_RSS_PEAK)
    return PeakRegister(source)


class PeakMemoryProbe(Probe):
    """Peak RSS of this process during each task, in bytes."""

    name = "memory"

    def __init__(self, source: HighWaterSource | None = None) -> None:
        self.register = rss_register(source)

    def begin(self, *, reset_peak: bool = True) -> PeakTracker:
        return self.register.open(reset=reset_peak)

    def read(self, state: PeakTracker, figures: Figures) -> None:
        figures.peak_memory_bytes = self.register.peak(state)

    def end(self, state: PeakTracker) -> None:
        self.register.close(state)

    def finish(self, state: PeakTracker, figures: Figures) -> None:
        figures.peak_memory_bytes = self.register.finish(state)


_fork_safe_sources: weakref.WeakSet[LinuxRssHighWater] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for source in list(_fork_safe_sources):
        source.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
