"""RAPL energy against fake powercap trees whose counters advance by known joules."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import taskmeter
from taskmeter import Task, _log
from taskmeter.monitor import get_monitor
from taskmeter.probes import CpuTimeProbe, ProbeUnavailableError, RaplProbe
from taskmeter.probes import rapl as rapl_module
from taskmeter.probes.rapl import find_rapl_zones
from taskmeter.testing import SpanCapture
from tests.fakes import FakePowercap, FakeZone


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "sys")


def use(probe: RaplProbe) -> RaplProbe:
    taskmeter.set_probes([CpuTimeProbe(), probe])
    return probe


def test_task_energy_is_the_advance_of_every_package(
    powercap: FakePowercap, spans: SpanCapture
) -> None:
    """Two sockets: the cpu figure is the sum of both packages' advances, in joules."""
    p0 = powercap.zone("intel-rapl:0", "package-0")
    p1 = powercap.zone("intel-rapl:1", "package-1")
    probe = use(RaplProbe(powercap.root))
    p0.advance(50.0)  # before the task: not counted
    with Task("two sockets") as task:
        p0.advance(12.5)
        p1.advance(7.25)
    p1.advance(99.0)  # after: not counted
    assert task.cpu_power == pytest.approx(19.75, abs=1e-6)
    assert task.energy_sources == {"cpu": "rapl"}
    attributes = spans.one("two sockets").attributes or {}
    assert attributes["taskmeter.energy.cpu"] == pytest.approx(19.75, abs=1e-6)
    assert attributes["taskmeter.energy.cpu.source"] == "rapl"
    assert "taskmeter.energy.system" not in attributes
    assert probe.energy_domains == {"cpu"}


def test_counter_wrapping_once_during_a_task(powercap: FakePowercap) -> None:
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=900.0)
    use(RaplProbe(powercap.root))
    with Task("wraps") as task:
        zone.advance(250.0)  # 900 -> 1150 = 150 after the wrap
        assert zone.raw_uj == 150_000_000
    assert task.cpu_power == pytest.approx(250.0, abs=1e-6)


def test_counter_wrapping_many_times_with_samples_between(powercap: FakePowercap) -> None:
    """Four wraps in one task, each seen by a sample: none is lost."""
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=10.0)
    probe = use(RaplProbe(powercap.root))
    with Task("many wraps") as task:
        for _ in range(10):
            zone.advance(400.0)
            probe.sample()
    assert zone.total_uj // zone.range_uj == 4
    assert task.cpu_power == pytest.approx(4000.0, abs=1e-6)


def wait_for_sample(probe: RaplProbe, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while probe.sample_count < count:
        assert time.monotonic() < deadline, "the monitor did not sample the counters"
        time.sleep(0.002)


def test_monitor_samples_fast_enough_while_a_task_is_open(powercap: FakePowercap) -> None:
    """The monitor thread reads the counters between advances, so several wraps in one
    task are counted; it polls only while the task is open."""
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=0.0)
    # Wrap period 1000 J / 2500 W = 0.4 s: the monitor reads every 0.1 s.
    probe = use(RaplProbe(powercap.root, max_power_w=2500.0))
    assert probe.sample_interval == pytest.approx(0.1)
    with Task("sampled by the monitor") as task:
        assert probe.sampling
        for _ in range(6):
            zone.advance(450.0)
            wait_for_sample(probe, probe.sample_count + 1)
    probe.tick()  # the sampler's next tick finds no open task and removes itself
    assert not probe.sampling
    assert task.cpu_power == pytest.approx(2700.0, abs=1e-6)
    assert probe.missed_wraps <= 1  # at most the gap before the task began


def test_sampling_stays_on_until_the_last_of_nested_tasks_ends(powercap: FakePowercap) -> None:
    powercap.zone("intel-rapl:0", "package-0")
    probe = use(RaplProbe(powercap.root))
    with Task("outer"):
        with Task("inner"):
            assert probe.open_tasks == 2
        assert probe.sampling
    assert probe.open_tasks == 0 and probe.sampling  # removed lazily, at its next tick
    probe.tick()
    assert not probe.sampling


def test_nested_tasks_each_get_their_own_energy(powercap: FakePowercap) -> None:
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=700.0)
    probe = use(RaplProbe(powercap.root))
    with Task("outer") as outer:
        zone.advance(100.0)
        with Task("inner") as inner:
            zone.advance(300.0)  # wraps here
            probe.sample()
        zone.advance(5.0)
    assert inner.cpu_power == pytest.approx(300.0, abs=1e-6)
    assert outer.cpu_power == pytest.approx(405.0, abs=1e-6)


def test_mmio_interface_of_the_same_package_is_counted_once(powercap: FakePowercap) -> None:
    msr = powercap.zone("intel-rapl:0", "package-0")
    mmio = powercap.zone("intel-rapl-mmio:0", "package-0")
    probe = use(RaplProbe(powercap.root))
    assert [(z.name, z.control_type) for z in probe.zones] == [("package-0", "intel-rapl")]
    with Task("one package") as task:
        msr.advance(30.0)
        mmio.advance(30.0)  # the same physical counter, seen again
    assert task.cpu_power == pytest.approx(30.0, abs=1e-6)


def test_mmio_only_package_is_used_when_msr_is_absent(powercap: FakePowercap) -> None:
    mmio = powercap.zone("intel-rapl-mmio:0", "package-0")
    use(RaplProbe(powercap.root))
    with Task("mmio") as task:
        mmio.advance(3.0)
    assert task.cpu_power == pytest.approx(3.0, abs=1e-6)


def package_with_subzones(powercap: FakePowercap) -> tuple[FakeZone, FakeZone, FakeZone, FakeZone]:
    package = powercap.zone("intel-rapl:0", "package-0")
    core = powercap.zone("intel-rapl:0:0", "core")
    uncore = powercap.zone("intel-rapl:0:1", "uncore")
    dram = powercap.zone("intel-rapl:0:2", "dram")
    return package, core, uncore, dram


def test_core_and_uncore_subzones_are_not_added_to_their_package(
    powercap: FakePowercap,
) -> None:
    """Subzones appear both inside the package and as links at the top: never double counted."""
    package, core, uncore, dram = package_with_subzones(powercap)
    use(RaplProbe(powercap.root))
    with Task("package only") as task:
        package.advance(40.0)  # includes the next two
        core.advance(25.0)
        uncore.advance(5.0)
        dram.advance(8.0)  # not asked for
    assert task.cpu_power == pytest.approx(40.0, abs=1e-6)
    assert task.energy_sources == {"cpu": "rapl"}


def test_dram_is_added_when_asked(powercap: FakePowercap) -> None:
    package, core, _, dram = package_with_subzones(powercap)
    probe = use(RaplProbe(powercap.root, ("package", "dram")))
    assert sorted(z.key for z in probe.zones) == ["package-0", "package-0/dram"]
    with Task("package and dram") as task:
        package.advance(40.0)
        core.advance(25.0)
        dram.advance(8.0)
    assert task.cpu_power == pytest.approx(48.0, abs=1e-6)
    assert task.energy_sources == {"cpu": "rapl+dram"}


def test_psys_is_the_system_figure_when_asked(powercap: FakePowercap, spans: SpanCapture) -> None:
    package = powercap.zone("intel-rapl:0", "package-0")
    psys = powercap.zone("intel-rapl:1", "psys")
    use(RaplProbe(powercap.root, ("package", "psys")))
    with Task("platform") as task:
        package.advance(10.0)
        psys.advance(16.0)
    assert task.system_power == pytest.approx(16.0, abs=1e-6)
    assert task.cpu_power == pytest.approx(10.0, abs=1e-6)
    attributes = spans.one("platform").attributes or {}
    assert attributes["taskmeter.energy.system.source"] == "rapl-psys"


def test_psys_is_not_used_unless_asked(powercap: FakePowercap) -> None:
    powercap.zone("intel-rapl:0", "package-0")
    psys = powercap.zone("intel-rapl:1", "psys")
    use(RaplProbe(powercap.root))
    with Task("default") as task:
        psys.advance(16.0)
    assert task.system_power is None
    assert task.cpu_power == 0.0  # measured: the package did not move


def test_a_task_spanning_an_unobserved_gap_reports_none_not_a_wrong_figure(
    powercap: FakePowercap,
) -> None:
    """If the counters went unread longer than a wrap period (process stopped), wraps may
    be lost: the tasks open across the gap get no figure; later tasks are right again."""
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0)
    now = [0.0]
    probe = use(RaplProbe(powercap.root, clock=lambda: now[0]))
    assert probe.wrap_period_s == pytest.approx(1.0)
    with Task("stalled") as stalled:
        zone.advance(1500.0)
        now[0] += 5.0  # nothing read for five wrap periods
    with Task("after") as after:
        zone.advance(20.0)
    assert stalled.cpu_power is None
    assert after.cpu_power == pytest.approx(20.0, abs=1e-6)


def test_missing_powercap_is_quiet_and_explicit_use_is_an_error(tmp_path: Path) -> None:
    probe = use(RaplProbe(tmp_path / "absent"))
    assert not probe.available
    with Task("no rapl") as task:
        pass
    assert task.cpu_power is None and task.energy_sources == {}
    with pytest.raises(ProbeUnavailableError, match="does not exist"):
        RaplProbe(tmp_path / "absent", required=True)


def test_requested_domain_missing_is_an_error_only_when_required(powercap: FakePowercap) -> None:
    powercap.zone("intel-rapl:0", "package-0")
    probe = RaplProbe(powercap.root, ("package", "psys"))
    assert probe.energy_domains == {"cpu"}
    assert "no RAPL psys zone" in probe.unavailable["psys"]
    with pytest.raises(ProbeUnavailableError, match="psys"):
        RaplProbe(powercap.root, ("package", "psys"), required=True)


@pytest.fixture
def shared_tree() -> Iterator[FakePowercap]:
    """A tree another user can traverse (the pytest tmp dir is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="taskmeter-powercap-"))
    base.chmod(0o755)
    try:
        yield FakePowercap(base / "sys")
    finally:
        shutil.rmtree(base)


def as_unprivileged_user(body: Callable[[], object]) -> object:
    """Run ``body`` in a forked child that dropped root (to nobody), and return its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(write_end, json.dumps(body()).encode())
        except BaseException as exc:
            os.write(write_end, json.dumps({"child error": repr(exc)}).encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_root_only_energy_uj_is_reported_with_the_fix(shared_tree: FakePowercap) -> None:
    """energy_uj readable by root only (Linux >= 5.10): no figure, and the explicit error
    names the file and the fix.  Checked as an unprivileged user (nobody when we are root)."""
    zone = shared_tree.zone("intel-rapl:0", "package-0")
    (zone.path / "energy_uj").chmod(0o400 if os.geteuid() == 0 else 0o000)

    def probe_it() -> dict[str, object]:
        probe = RaplProbe(shared_tree.root)
        try:
            RaplProbe(shared_tree.root, required=True)
            error = None
        except ProbeUnavailableError as exc:
            error = str(exc)
        return {"available": probe.available, "unavailable": probe.unavailable, "error": error}

    report = as_unprivileged_user(probe_it)
    assert isinstance(report, dict), report
    assert report.get("available") is False, report
    assert "energy_uj" in report["unavailable"]["package"]
    assert "root" in report["error"] and "chmod" in report["error"]
    assert "README" in report["error"]


def test_find_zones_skips_what_is_not_a_counter(powercap: FakePowercap) -> None:
    powercap.zone("intel-rapl:0", "package-0")
    broken = powercap.zone("intel-rapl:1", "package-1")
    (broken.path / "max_energy_range_uj").write_text("garbage\n")
    (powercap.root / "dtpm").mkdir()
    assert [z.name for z in find_rapl_zones(powercap.root)] == ["package-0"]


@pytest.mark.parametrize(
    ("domains", "error"),
    [(("package", "gpu"), ValueError), ((), ValueError), ("package", TypeError)],
)
def test_bad_domains_are_clear_errors(
    powercap: FakePowercap, domains: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="domains"):
        RaplProbe(powercap.root, domains)  # type: ignore[arg-type]


def test_only_dram_subzones_are_ever_added(powercap: FakePowercap) -> None:
    """A subzone named like a package or psys is a part of its parent, not a second one."""
    package = powercap.zone("intel-rapl:0", "package-0")
    odd = powercap.zone("intel-rapl:0:0", "package-0-die-0")
    use(RaplProbe(powercap.root, ("package", "dram")))
    with Task("nested names") as task:
        package.advance(9.0)
        odd.advance(9.0)
    assert task.cpu_power == pytest.approx(9.0, abs=1e-6)


def test_back_to_back_top_level_tasks_keep_one_sampler(powercap: FakePowercap) -> None:
    """A program running one top-level task after another does not add and remove
    a monitor job per task: the sampler stays until a tick finds no task open."""
    powercap.zone("intel-rapl:0", "package-0")
    probe = use(RaplProbe(powercap.root))
    monitor = get_monitor()
    added = 0
    original_add = monitor.add

    def counting_add(*args: object, **kwargs: object) -> object:
        nonlocal added
        added += 1
        return original_add(*args, **kwargs)  # type: ignore[arg-type]

    monitor.add = counting_add  # type: ignore[method-assign]
    try:
        for _ in range(5):
            with Task("one after another"):
                pass
    finally:
        del monitor.add
    assert added == 1 and probe.sampling
    probe.tick()
    assert not probe.sampling


def test_a_counter_going_backwards_is_not_taken_for_a_wrap(powercap: FakePowercap) -> None:
    """A counter that drops by less than half its range was reset, not wrapped: the task
    open across the drop gets no figure (not a whole range of joules); later tasks are right."""
    zone = powercap.zone("intel-rapl:0", "package-0", energy_j=1000.0)
    probe = use(RaplProbe(powercap.root))
    with Task("across the drop") as dropped:
        zone.total_uj -= 1_000_000  # one joule backwards
        zone.advance(0.0)
    with Task("after the drop") as after:
        zone.advance(3.5)
    assert dropped.cpu_power is None
    assert after.cpu_power == pytest.approx(3.5, abs=1e-6)
    assert probe.missed_wraps == 1


def test_every_psys_zone_of_a_multi_package_machine_is_summed_once(
    powercap: FakePowercap,
) -> None:
    """Two packages, each with its platform zone: the kernel names them ``psys`` and
    ``psys-1``; the system figure is both advances, through wraps, each counted once
    (a psys-named subzone and the mmio view of a package are not added again)."""
    p0 = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=950.0)
    p1 = powercap.zone("intel-rapl:1", "package-1")
    part = powercap.zone("intel-rapl:1:0", "psys")  # a part of package-1, not a platform
    psys0 = powercap.zone("intel-rapl:2", "psys", range_j=1000.0, energy_j=900.0)
    psys1 = powercap.zone("intel-rapl:3", "psys-1", range_j=1000.0, energy_j=990.0)
    mmio = powercap.zone("intel-rapl-mmio:0", "package-0")
    probe = use(RaplProbe(powercap.root, ("package", "psys")))
    assert sorted((z.name, z.domain) for z in probe.zones) == [
        ("package-0", "package"),
        ("package-1", "package"),
        ("psys", "psys"),
        ("psys-1", "psys"),
    ]
    assert probe.energy_domains == {"cpu", "system"}
    with Task("two platforms") as task:
        for _ in range(3):  # each psys wraps at least once, seen by a sample
            psys0.advance(200.0)
            psys1.advance(150.0)
            p0.advance(30.0)
            probe.sample()
        p1.advance(4.0)
        part.advance(77.0)
        mmio.advance(90.0)
    assert psys0.raw_uj < 900_000_000 and psys1.raw_uj < 990_000_000  # they wrapped
    assert task.system_power == pytest.approx(3 * 200.0 + 3 * 150.0, abs=1e-6)
    assert task.cpu_power == pytest.approx(3 * 30.0 + 4.0, abs=1e-6)
    assert task.energy_sources == {"cpu": "rapl", "system": "rapl-psys"}


def test_psys_of_each_package_through_tpmi_is_counted_once_per_domain(
    powercap: FakePowercap,
) -> None:
    """The same platform domains seen through the MSR and TPMI interfaces: one of each."""
    msr0 = powercap.zone("intel-rapl:0", "psys")
    msr1 = powercap.zone("intel-rapl:1", "psys-1")
    tpmi0 = powercap.zone("intel-rapl-tpmi:0", "psys")
    tpmi1 = powercap.zone("intel-rapl-tpmi:1", "psys-1")
    probe = use(RaplProbe(powercap.root, ("psys",)))
    assert sorted((z.name, z.control_type) for z in probe.zones) == [
        ("psys", "intel-rapl"),
        ("psys-1", "intel-rapl"),
    ]
    with Task("platforms") as task:
        for zone, joules in ((msr0, 5.0), (msr1, 7.0), (tpmi0, 5.0), (tpmi1, 7.0)):
            zone.advance(joules)
    assert task.system_power == pytest.approx(12.0, abs=1e-6)


def test_two_zones_of_one_interface_with_the_same_name_are_both_counted(
    powercap: FakePowercap,
) -> None:
    """Within one interface each top-level zone is its own domain, even under one name."""
    first = powercap.zone("intel-rapl:2", "psys")
    second = powercap.zone("intel-rapl:10", "psys")
    probe = use(RaplProbe(powercap.root, ("psys",)))
    assert len(probe.zones) == 2
    with Task("same names") as task:
        first.advance(3.0)
        second.advance(4.0)
    assert task.system_power == pytest.approx(7.0, abs=1e-6)


def test_a_counter_going_backwards_in_a_reading_that_fails_is_not_forgotten(
    powercap: FakePowercap,
) -> None:
    """package-0 goes backwards (its energy since the last read unknown) in the same
    reading in which package-1 cannot be read: that reading fails, yet the task open
    across it gets no figure, never the 45 J that leave out package-0's lost 40 J."""
    p0 = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=500.0)
    p1 = powercap.zone("intel-rapl:1", "package-1", range_j=1000.0, energy_j=100.0)
    probe = use(RaplProbe(powercap.root))
    with Task("across") as across:
        p0.advance(40.0)
        p0.total_uj -= 230_000_000  # reset by the firmware: 310 J, below where it was read
        p0.advance(0.0)
        p1.consume_unreadable(5.0)
        with pytest.raises(ValueError):
            probe.sample()
        p1.advance(0.0)  # readable again
        p0.advance(20.0)
        p1.advance(20.0)
    with Task("after") as after:
        p0.advance(3.0)
        p1.advance(4.0)
    assert across.cpu_power is None
    assert after.cpu_power == pytest.approx(7.0, abs=1e-6)
    assert probe.missed_wraps == 1


def test_reads_that_fail_do_not_hide_a_gap_from_the_wrap_check(powercap: FakePowercap) -> None:
    """Samples that could not read the counters are no readings: if the counters went
    unread (here, failing) for longer than a wrap period, the wraps meanwhile are unknown
    and the task open across them gets no figure rather than one short by whole ranges."""
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0)
    now = [0.0]
    probe = use(RaplProbe(powercap.root, clock=lambda: now[0]))
    assert probe.wrap_period_s == pytest.approx(1.0)
    with Task("unreadable meanwhile") as unreadable:
        for _ in range(8):  # 2400 J in 2 s, 0.25 s apart: two wraps and more
            zone.consume_unreadable(300.0)
            now[0] += 0.25
            with pytest.raises(ValueError):
                probe.sample()
        zone.advance(0.0)  # readable again
    with Task("after") as after:
        zone.advance(20.0)
    assert unreadable.cpu_power is None
    assert after.cpu_power == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize(
    ("range_j", "interval_s"),
    [(262_143.328850, 65.5), (2**32 * 15.2587890625e-6, 16.4)],  # Intel's, AMD's range
)
def test_sample_interval_the_readme_states(
    powercap: FakePowercap, range_j: float, interval_s: float
) -> None:
    """Four reads per wrap period at 1000 W: every 65 s on Intel, every 16 s on AMD."""
    powercap.zone("intel-rapl:0", "package-0", range_j=range_j)
    probe = RaplProbe(powercap.root)
    assert probe.sample_interval == pytest.approx(interval_s, abs=0.05)
    assert RaplProbe(powercap.root, max_power_w=2000.0).sample_interval == pytest.approx(
        interval_s / 2, abs=0.05
    )


def test_a_task_across_a_system_suspend_reports_none(powercap: FakePowercap) -> None:
    """While the system is suspended the monotonic clock stops (the wrap check cannot see
    the time) and the firmware may clear the counters: the task open across a suspend
    gets no figure, here where a cleared counter would look like a wrap; later tasks
    are right again."""
    zone = powercap.zone("intel-rapl:0", "package-0", range_j=1000.0, energy_j=850.0)
    now = [0.0]
    asleep = [0.0]
    probe = use(RaplProbe(powercap.root, clock=lambda: now[0], suspended=lambda: asleep[0]))
    with Task("across a suspend") as suspended:
        zone.advance(10.0)
        asleep[0] += 3600.0  # an hour suspended; the monotonic clock did not move
        zone.total_uj = 0  # cleared by the firmware on resume
        zone.advance(5.0)
    with Task("after") as after:
        zone.advance(20.0)
    assert suspended.cpu_power is None and probe.missed_wraps == 1
    assert after.cpu_power == pytest.approx(20.0, abs=1e-6)


def test_suspended_time_is_boottime_less_monotonic() -> None:
    """The default measure of time spent suspended: CLOCK_BOOTTIME - CLOCK_MONOTONIC, which
    stays put while the system runs."""
    first = rapl_module.suspended_s()
    time.sleep(0.05)
    assert rapl_module.suspended_s() == pytest.approx(first, abs=0.01)
    assert first >= -0.01


def test_a_zone_that_disappears_leaves_no_figure_never_zero(
    powercap: FakePowercap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zone removed while the probe holds its counter open (its package taken offline,
    the driver unloaded): sysfs answers ENODEV from then on.  The tasks get no CPU
    energy (not 0, not the other zones' sum), the error is counted, and the program
    goes on; zones that appear later are not read (README)."""
    powercap.zone("intel-rapl:0", "package-0")
    second = powercap.zone("intel-rapl:1", "package-1")
    probe = use(RaplProbe(powercap.root))
    gone = next(c.fd for c in probe._counters if c.zone.name == "package-1")
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        if fd == gone:
            raise OSError(19, "No such device")
        return real_pread(fd, size, offset)

    with Task("before") as before:
        second.advance(2.0)
    monkeypatch.setattr(os, "pread", pread)
    with Task("after removal") as after:
        second.advance(2.0)
    assert before.cpu_power == pytest.approx(2.0, abs=1e-6)
    assert after.cpu_power is None and after.cpu_time is not None
    assert _log.error_counts["probe.rapl.begin"] >= 1
