"""The processes a command started, read from ``/proc``: their number, RSS and peaks.

``taskmeter run`` samples the tree of its descendants to show a live status
and to take the figures the kernel does not keep for a tree: the peak of the
*summed* RSS of all its processes, and each process's own high-water mark
(``VmHWM``) while it is alive.  The ``procfs`` root is a constructor
argument, so tests can point the sampler at a tree they built.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the sampler uses."""

    __slots__ = ("pid", "ppid", "rss_bytes", "start_ticks", "system_s", "user_s")

    def __init__(
        self, pid: int, ppid: int, user_s: float, system_s: float, rss_bytes: int, start_ticks: int
    ) -> None:
        self.pid = pid
        self.ppid = ppid
        self.user_s = user_s
        self.system_s = system_s
        self.rss_bytes = rss_bytes
        self.start_ticks = start_ticks

    @property
    def cpu_s(self) -> float:
        """User plus system time."""
        return self.user_s + self.system_s


def parse_stat(data: bytes) -> ProcStat | None:
    """Parse one ``/proc/<pid>/stat`` line; ``None`` if it is not one.

    ``user_s`` and ``system_s`` are the times of the process and of the
    children it has waited for (``utime + cutime``, ``stime + cstime``).
    """
    open_paren = data.find(b"(")
    close_paren = data.rfind(b")")  # the command name may itself contain ")"
    if open_paren < 0 or close_paren < open_paren:
        return None
    fields = data[close_paren + 2 :].split()
    if len(fields) < 22:
        return None
    try:
        pid = int(data[:open_paren])
        return ProcStat(
            pid=pid,
            ppid=int(fields[1]),
            user_s=(int(fields[11]) + int(fields[13])) / _CLOCK_TICKS,
            system_s=(int(fields[12]) + int(fields[14])) / _CLOCK_TICKS,
            rss_bytes=int(fields[21]) * _PAGE_SIZE,
            start_ticks=int(fields[19]),
        )
    except ValueError:
        return None


class TreeSample:
    """One reading of the tree: its live processes, their summed RSS and CPU."""

    __slots__ = ("pids", "rss_bytes", "system_s", "user_s")

    def __init__(self, pids: list[int], rss_bytes: int, user_s: float, system_s: float) -> None:
        self.pids = pids
        self.rss_bytes = rss_bytes
        self.user_s = user_s
        self.system_s = system_s

    @property
    def cpu_s(self) -> float:
        """User plus system time of the live processes (and what they reaped)."""
        return self.user_s + self.system_s


class ProcessTreeSampler:
    """Samples the descendants of ``root_pid`` (not ``root_pid`` itself).

    Keeps the peak of the summed RSS over all samples
    (:attr:`peak_tree_rss_bytes`) and the largest ``VmHWM`` of any process
    seen (:attr:`peak_process_rss_bytes`).  Both are ``None`` until a sample
    saw a process.  A process that lives and dies between two samples is
    not seen; the summed RSS can miss a peak that lasts less than the
    interval, and counts a page shared by several processes once in each.
    """

    def __init__(self, root_pid: int, procfs: str | os.PathLike[str] = "/proc") -> None:
        self.root_pid = root_pid
        self.procfs = Path(procfs)
        self.peak_tree_rss_bytes: int | None = None
        self.peak_process_rss_bytes: int | None = None
        self.samples = 0
        self.last_cost_s = 0.0
        """CPU seconds the last sample used (the caller spaces samples by it).  CPU,
        not wall time: on a busy machine a scan waits for a core, and counting the
        wait would space the samples out (a second apart and more) just when the
        command competes for the CPU, and miss its peaks."""
        self.available = (self.procfs / "self" / "stat").exists() or (
            self.procfs / str(root_pid) / "stat"
        ).exists()

    def sample(self) -> TreeSample | None:
        """Read the tree now; ``None`` where ``/proc`` cannot be read."""
        if not self.available:
            return None
        began = time.thread_time()
        stats = self._descendants()
        rss = sum(s.rss_bytes for s in stats)
        user = sum(s.user_s for s in stats)
        system = sum(s.system_s for s in stats)
        if stats:
            self.samples += 1
            if self.peak_tree_rss_bytes is None or rss > self.peak_tree_rss_bytes:
                self.peak_tree_rss_bytes = rss
            for stat in stats:
                self._note_high_water(stat.pid)
        self.last_cost_s = time.thread_time() - began
        return TreeSample([s.pid for s in stats], rss, user, system)

    def descendant_pids(self) -> list[int]:
        """The pids of the live descendants now."""
        return [s.pid for s in self._descendants()] if self.available else []

    def child_pids(self) -> list[int]:
        """The pids of the live children of ``root_pid`` now (not their descendants)."""
        root = self.root_pid
        return [s.pid for s in self._descendants() if s.ppid == root] if self.available else []

    def _descendants(self) -> list[ProcStat]:
        children: dict[int, list[ProcStat]] = {}
        try:
            names = os.listdir(self.procfs)
        except OSError:
            return []
        for name in names:
            if not name.isdigit():
                continue
            stat = self._read_stat(name)
            if stat is not None:
                children.setdefault(stat.ppid, []).append(stat)
        found: list[ProcStat] = []
        frontier = [self.root_pid]
        while frontier:
            pid = frontier.pop()
            for child in children.get(pid, ()):
                found.append(child)
                frontier.append(child.pid)
        return found

    def _read_stat(self, name: str) -> ProcStat | None:
        try:
            with open(self.procfs / name / "stat", "rb") as handle:
                return parse_stat(handle.read())
        except OSError:
            return None  # the process ended meanwhile

    def _note_high_water(self, pid: int) -> None:
        from ..probes.memory import parse_vm_hwm

        try:
            with open(self.procfs / str(pid) / "status", "rb") as handle:
                peak = parse_vm_hwm(handle.read())
        except OSError:
            return
        if peak is not None and (
            self.peak_process_rss_bytes is None or peak > self.peak_process_rss_bytes
        ):
            self.peak_process_rss_bytes = peak
