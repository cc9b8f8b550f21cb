"""CPU, DRAM and platform energy from the RAPL counters in ``/sys/class/powercap``.

Linux exposes Intel's (and, through the same driver, AMD's) *Running Average
Power Limit* energy counters as powercap zones::

    /sys/class/powercap/intel-rapl:0/          name = package-0
        energy_uj, max_energy_range_uj
        intel-rapl:0:0/                        name = core    (part of package-0)
        intel-rapl:0:2/                        name = dram    (not part of it)
    /sys/class/powercap/intel-rapl:1/          name = psys    (the platform)
    /sys/class/powercap/intel-rapl-mmio:0/     name = package-0 (the same counter again)

The ``cpu`` figure is the sum of the package zones (plus the DRAM zones when
asked); ``core`` and ``uncore`` are parts of their package and never added.
A physical domain seen through two interfaces (``intel-rapl`` and
``intel-rapl-mmio``) is counted once.  ``psys``, when asked, is the
``system`` figure: the sum of every top-level platform zone, as for packages.
The kernel names the first ``psys`` and those of further packages ``psys-N``
(N the physical package id, or the TPMI domain id), each its own top-level
zone.

``energy_uj`` wraps to zero after ``max_energy_range_uj``; on AMD that can
take only minutes.  Each counter is extended past its wraps by reading it at
least :data:`SAMPLES_PER_WRAP` times per wrap period, the period computed from
the range and a conservative maximum power.  The probe registers that sample
with the monitor thread while one of its tasks is open; if the counters still
went unread for longer than a wrap period (the process was stopped, say, or
reading them failed meanwhile), or a counter went backwards instead of
wrapping (a drop of less than half its range), the tasks that spanned the gap
report no energy rather than a wrong one.  So do the tasks open across a
system suspend: the monotonic clock of the wrap check stops meanwhile, and
the firmware may clear the counters on resume (which would look like a wrap).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .._log import debug_once
from ..figures import Figures
from .errors import ProbeUnavailableError
from .sampling import SampledProbe

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
RAPL_DOMAINS = ("package", "dram", "psys")
"""The RAPL domains a :class:`RaplProbe` can add up: package and DRAM into ``cpu``,
psys into ``system``."""
DEFAULT_MAX_POWER_W = 1000.0
"""A power no single RAPL domain reaches; it bounds how fast a counter can wrap."""
SAMPLES_PER_WRAP = 4
"""Counter reads per (shortest) wrap period while a task is open."""
SUSPEND_TOLERANCE_S = 1.0
"""More suspended time than this between two readings is a system suspend (less is
the jitter of reading two clocks one after the other)."""

README_FIX = (
    "since Linux 5.10 energy_uj is readable by root only; grant read access as shown in "
    "the README section 'GPU memory and energy' (e.g. sudo chmod a+r "
    "/sys/class/powercap/intel-rapl*:*/energy_uj), or run as root"
)

_ZONE = re.compile(r"^(?P<type>[a-z][a-z0-9-]*):(?P<index>\d+)$")
_PSYS = re.compile(r"^psys(-\d+)?$")
"""The platform zones' names: ``psys``, and ``psys-N`` for packages other than the first."""
_CONTROL_TYPE_RANK = {"intel-rapl": 0, "intel-rapl-tpmi": 1, "intel-rapl-mmio": 2}


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone that counts energy."""

    path: Path
    name: str
    """The zone's ``name`` file: ``package-0``, ``dram``, ``psys``, ``core``, ..."""
    domain: str
    """``package``, ``dram`` or ``psys``; empty for parts of a package (``core``, ``uncore``)."""
    key: str
    """The physical domain, the same whichever interface shows it (``package-0/dram``)."""
    control_type: str
    """``intel-rapl``, ``intel-rapl-mmio``, ..."""
    max_energy_range_uj: int


def suspended_s() -> float:
    """Seconds the system has spent suspended since it booted (``CLOCK_BOOTTIME`` less
    ``CLOCK_MONOTONIC``, Linux); ``0.0`` where that cannot be told."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:  # pragma: no cover - not Linux
        return 0.0
    return time.clock_gettime(boottime) - time.clock_gettime(time.CLOCK_MONOTONIC)


def zone_domain(name: str) -> str:
    """The RAPL domain a zone's ``name`` stands for ('' for parts of a package)."""
    if name.startswith("package"):
        return "package"
    if name.startswith("dram"):
        return "dram"
    if _PSYS.match(name):
        return "psys"
    return ""


def find_rapl_zones(root: str | os.PathLike[str] = DEFAULT_POWERCAP_ROOT) -> list[RaplZone]:
    """Every RAPL zone under ``root``, each physical domain once, in a stable order.

    Top-level zones (``intel-rapl:0``) and their subzones (``intel-rapl:0:2``,
    found inside the parent's directory) are listed; where two interfaces show
    the same domain (the same name), the ``intel-rapl`` (MSR) one is kept.
    Within one interface every zone is a domain of its own.
    """
    base = Path(root)
    try:
        entries = sorted(os.listdir(base), key=_entry_order)
    except OSError:
        return []
    by_type: dict[str, list[RaplZone]] = {}
    for entry in entries:
        match = _ZONE.match(entry)
        if match is None or "rapl" not in match["type"]:
            continue
        zone = _read_zone(base / entry, match["type"], parent=None)
        if zone is None:
            continue
        zones = by_type.setdefault(match["type"], [])
        zones.append(zone)
        child_name = re.compile(re.escape(entry) + r":\d+")
        try:
            children = sorted(os.listdir(base / entry), key=_entry_order)
        except OSError:
            continue
        for child in children:
            if child_name.fullmatch(child):
                sub = _read_zone(base / entry / child, match["type"], parent=zone.name)
                if sub is not None:
                    zones.append(sub)
    found: dict[str, RaplZone] = {}
    for control_type in sorted(by_type, key=_control_type_rank):
        # The first interface (by rank) to show a domain keeps it; a name seen
        # twice within one interface is two zones (a second key for the second).
        own: dict[str, RaplZone] = {}
        for zone in by_type[control_type]:
            key = zone.key
            if key in own:
                key = f"{key}@{zone.path.name}"
                zone = replace(zone, key=key)
            own[key] = zone
        for key, zone in own.items():
            found.setdefault(key, zone)
    return sorted(found.values(), key=lambda z: (z.key, z.control_type))


def _entry_order(entry: str) -> tuple[str, tuple[int, ...]]:
    """``intel-rapl:10`` after ``intel-rapl:9``: by control type, then numerically."""
    control_type, _, rest = entry.partition(":")
    indices = tuple(int(part) if part.isdigit() else -1 for part in rest.split(":"))
    return control_type, indices


def _control_type_rank(control_type: str) -> tuple[int, str]:
    return _CONTROL_TYPE_RANK.get(control_type, len(_CONTROL_TYPE_RANK)), control_type


def _read_zone(path: Path, control_type: str, parent: str | None) -> RaplZone | None:
    try:
        name = (path / "name").read_text().strip()
        range_uj = int((path / "max_energy_range_uj").read_text().strip())
    except (OSError, ValueError) as exc:
        debug_once(f"rapl.zone.{path}", "skipping powercap zone %s: %s", path, exc)
        return None
    if not (path / "energy_uj").exists() or range_uj <= 0:
        debug_once(f"rapl.zone.{path}", "skipping powercap zone %s: no energy counter", path)
        return None
    key = name if parent is None else f"{parent}/{name}"
    domain = zone_domain(name)
    if parent is not None and domain != "dram":
        domain = ""  # a part of its parent (core, uncore, a die): counted there
    return RaplZone(path, name, domain, key, control_type, range_uj)


class _Counter:
    """One zone's ``energy_uj``, extended past its wraps: microjoules since it was opened.

    Between two reads a counter advances by at most a quarter of its range
    (:data:`SAMPLES_PER_WRAP`), so a drop of at least half the range is a wrap,
    and a smaller drop is the counter going backwards (reset by the firmware,
    or wrapping below the ``max_energy_range_uj`` the driver reports): the
    energy since the last read is then unknown, and :attr:`jumps` counts it.
    """

    __slots__ = ("fd", "jumps", "last_raw", "offset_uj", "range_uj", "zone")

    def __init__(self, zone: RaplZone) -> None:
        self.zone = zone
        self.range_uj = zone.max_energy_range_uj
        self.fd = os.open(zone.path / "energy_uj", os.O_RDONLY)
        try:
            self.last_raw = self._raw()
        except Exception:
            os.close(self.fd)
            raise
        self.offset_uj = -self.last_raw
        self.jumps = 0
        """Times the counter went backwards instead of wrapping."""

    def _raw(self) -> int:
        return int(os.pread(self.fd, 32, 0))

    def update(self) -> int:
        raw = self._raw()
        drop = self.last_raw - raw
        if drop > 0:
            if 2 * drop >= self.range_uj:  # wrapped (at most once: see SAMPLES_PER_WRAP)
                self.offset_uj += self.range_uj
            else:  # went backwards: carry on from the new value, the gap uncounted
                self.offset_uj += drop
                self.jumps += 1
        self.last_raw = raw
        return self.offset_uj + raw

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _RaplState:
    __slots__ = ("missed", "start_uj", "token")

    def __init__(self, token: int, start_uj: list[int], missed: int) -> None:
        self.token = token
        self.start_uj = start_uj
        self.missed = missed


class RaplProbe(SampledProbe):
    """Energy of the CPU packages (and DRAM, and the platform) during each task, from RAPL.

    Args:
        root: The powercap directory (a test can point it at a tree it built).
        domains: Which RAPL domains to use: ``"package"`` (default) and
            ``"dram"`` add up into the ``cpu`` figure, ``"psys"`` is the
            ``system`` figure.
        required: Raise :class:`ProbeUnavailableError` if a requested domain
            is missing or unreadable, instead of leaving its figure ``None``.
        max_power_w: A power no domain can reach, which bounds how fast a
            counter wraps and so how often it is read while a task is open.
        clock: Monotonic clock in seconds (for tests).
        suspended: Seconds the system has spent suspended (for tests; default
            :func:`suspended_s`).

    The figures are machine-wide: every process running on the CPUs during
    the task is counted.  ``cpu`` is sourced ``rapl`` (packages), ``rapl+dram``
    or ``rapl-dram``; ``system`` is sourced ``rapl-psys``.
    """

    name = "rapl"

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_POWERCAP_ROOT,
        domains: Iterable[str] = ("package",),
        *,
        required: bool = False,
        max_power_w: float = DEFAULT_MAX_POWER_W,
        clock: Callable[[], float] = time.monotonic,
        suspended: Callable[[], float] = suspended_s,
    ) -> None:
        super().__init__()
        if isinstance(domains, str):
            raise TypeError("domains must be a collection of names, e.g. ('package', 'dram')")
        wanted = tuple(dict.fromkeys(domains))
        unknown = [d for d in wanted if d not in RAPL_DOMAINS]
        if unknown or not wanted:
            raise ValueError(f"RAPL domains must be some of {RAPL_DOMAINS}, got {wanted!r}")
        if not max_power_w > 0:
            raise ValueError(f"max_power_w must be positive, got {max_power_w!r}")
        self.root = Path(root)
        self.domains = wanted
        self._clock = clock
        self._suspended = suspended
        self._lock = threading.Lock()
        self._counters: list[_Counter] = []
        self.unavailable: dict[str, str] = {}
        """Requested domains that cannot be measured here, with the reason."""
        self._open_domains(required)
        cpu = [i for i, c in enumerate(self._counters) if c.zone.domain in ("package", "dram")]
        self._cpu_indices = tuple(cpu)
        self._cpu_source = _cpu_source({self._counters[i].zone.domain for i in cpu})
        psys = [i for i, c in enumerate(self._counters) if c.zone.domain == "psys"]
        self._psys_indices = tuple(psys)
        if self._counters:
            shortest_range_j = min(c.range_uj for c in self._counters) / 1e6
            self.wrap_period_s = shortest_range_j / max_power_w
            """The shortest time in which a counter can wrap, at ``max_power_w``."""
            self.sample_interval = self.wrap_period_s / SAMPLES_PER_WRAP
        else:
            self.wrap_period_s = float("inf")
        self.missed_wraps = 0
        """Times the counters went unread for longer than a wrap period (or across a
        system suspend), or went backwards."""
        self._last_read: float | None = None
        self._last_suspended_s = 0.0

    @property
    def zones(self) -> tuple[RaplZone, ...]:
        """The zones this probe reads."""
        return tuple(c.zone for c in self._counters)

    @property
    def energy_domains(self) -> frozenset[str]:
        """The figures this probe fills: ``cpu`` and/or ``system``."""
        domains = {"cpu"} if self._cpu_indices else set()
        if self._psys_indices:
            domains.add("system")
        return frozenset(domains)

    @property
    def available(self) -> bool:
        """Whether at least one figure can be taken."""
        return bool(self._counters)

    def _open_domains(self, required: bool) -> None:
        if not self.root.is_dir():
            reason = (
                f"{self.root} does not exist (no RAPL driver: not Linux, a VM or a "
                "container without powercap, or modprobe intel_rapl_msr needed)"
            )
            for domain in self.domains:
                self.unavailable[domain] = reason
        else:
            zones = find_rapl_zones(self.root)
            for domain in self.domains:
                chosen = [z for z in zones if z.domain == domain]
                if not chosen:
                    self.unavailable[domain] = f"no RAPL {domain} zone under {self.root}"
                    continue
                counters: list[_Counter] = []
                try:
                    for zone in chosen:
                        counters.append(_Counter(zone))
                except PermissionError as exc:
                    self.unavailable[domain] = f"cannot read {exc.filename}: {README_FIX}"
                except (OSError, ValueError) as exc:
                    self.unavailable[domain] = f"cannot read {zone.path / 'energy_uj'}: {exc}"
                if domain in self.unavailable:
                    for counter in counters:  # all of a domain or none of it
                        counter.close()
                    continue
                self._counters.extend(counters)
        if not self.unavailable:
            return
        if required:
            for counter in self._counters:
                counter.close()
            self._counters.clear()
            details = "; ".join(f"{d}: {r}" for d, r in self.unavailable.items())
            raise ProbeUnavailableError(f"RAPL energy asked for but unavailable ({details})")
        for domain, reason in self.unavailable.items():
            debug_once(f"rapl.{domain}", "no RAPL %s energy: %s", domain, reason)

    def _read_all(self) -> tuple[list[int], int]:
        with self._lock:
            # The time of a reading is taken under the lock (so readings are in
            # the order of their times), and it counts as a reading only once
            # every counter was read: reads that fail leave the gap open.
            now = self._clock()
            suspended = self._suspended()
            last = self._last_read
            counters = self._counters
            jumps = sum(counter.jumps for counter in counters)
            try:
                values = [counter.update() for counter in counters]
            finally:
                # A counter that went backwards is counted even when a later one's read
                # fails: its own reading has moved past the jump.
                if sum(counter.jumps for counter in counters) != jumps:
                    self.missed_wraps += 1
            self._last_read = now
            if last is not None and (
                now - last > self.wrap_period_s
                or suspended - self._last_suspended_s > SUSPEND_TOLERANCE_S
            ):
                self.missed_wraps += 1
            self._last_suspended_s = suspended
            return values, self.missed_wraps

    def begin(self, *, reset_peak: bool = True) -> _RaplState | None:
        if not self._counters:
            return None
        token = self._task_opened()
        try:
            values, missed = self._read_all()
        except BaseException:
            self._task_closed(token)
            raise
        return _RaplState(token, values, missed)

    def read(self, state: _RaplState | None, figures: Figures) -> None:
        if state is None:
            return
        values, missed = self._read_all()
        if missed != state.missed:
            debug_once(
                "rapl.missed",
                "RAPL counters went unread for over %.0f s (the process was stopped?), "
                "the system was suspended, or one went backwards; tasks open meanwhile "
                "report no RAPL energy",
                self.wrap_period_s,
            )
            return
        start = state.start_uj
        if self._cpu_indices:
            cpu_uj = sum(values[i] - start[i] for i in self._cpu_indices)
            figures.set_energy("cpu", cpu_uj / 1e6, self._cpu_source)
        if self._psys_indices:
            system_uj = sum(values[i] - start[i] for i in self._psys_indices)
            figures.set_energy("system", system_uj / 1e6, "rapl-psys")

    def end(self, state: _RaplState | None) -> None:
        if state is not None:
            self._task_closed(state.token)

    def sample(self) -> None:
        """Read every counter, so that no wrap goes unseen."""
        self._read_all()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._lock = threading.Lock()  # the monitor thread may have held it at the fork

    def close(self) -> None:
        """Close the counter files (the probe measures nothing afterwards)."""
        with self._lock:
            for counter in self._counters:
                counter.close()
            self._counters.clear()

    def __del__(self) -> None:
        for counter in getattr(self, "_counters", ()):
            counter.close()


def _cpu_source(domains: set[str]) -> str:
    if domains == {"package", "dram"}:
        return "rapl+dram"
    if domains == {"dram"}:
        return "rapl-dram"
    return "rapl"
