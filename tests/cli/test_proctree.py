"""The process-tree sampler on a /proc tree built by the test, and the peak rules."""

from __future__ import annotations

from pathlib import Path

from taskmeter.cli._proctree import ProcessTreeSampler, parse_stat
from taskmeter.cli.run import _process_peak

PAGE = 4096
TICKS = 100
MIB = 1024 * 1024


def stat_line(
    pid: int, ppid: int, name: str, ticks: tuple[int, int, int, int], rss_pages: int
) -> str:
    utime, stime, cutime, cstime = ticks
    fields = ["S", ppid, pid, pid, 0, -1, 0, 0, 0, 0, 0, utime, stime, cutime, cstime]
    fields += [20, 0, 1, 0, 12345, 1000000, rss_pages]
    return f"{pid} ({name}) " + " ".join(str(f) for f in fields) + " 0 0 0\n"


def make_proc(root: Path, pid: int, ppid: int, rss_mib: int, hwm_mib: int, name: str = "p") -> None:
    directory = root / str(pid)
    directory.mkdir(parents=True)
    (directory / "stat").write_text(
        stat_line(pid, ppid, name, (100, 50, 10, 0), rss_mib * MIB // PAGE)
    )
    (directory / "status").write_text(f"Name:\t{name}\nVmHWM:\t{hwm_mib * 1024} kB\nVmRSS:\t1 kB\n")


def test_parse_stat_handles_parentheses_in_the_name() -> None:
    """The command name may contain ') ': fields are read after the last one."""
    stat = parse_stat(stat_line(42, 7, "odd) (name", (250, 50, 100, 0), 256).encode())
    assert stat is not None
    assert (stat.pid, stat.ppid) == (42, 7)
    assert stat.rss_bytes == 256 * PAGE
    assert abs(stat.cpu_s - 400 / TICKS) < 1e-9
    assert parse_stat(b"garbage") is None


def test_sampler_sums_the_descendants_only(tmp_path: Path) -> None:
    """Descendants of the root at any depth count; the root and strangers do not."""
    make_proc(tmp_path, 10, 1, 500, 500)  # the root (taskmeter itself)
    make_proc(tmp_path, 11, 10, 100, 150)  # its child
    make_proc(tmp_path, 12, 11, 50, 300)  # a grandchild
    make_proc(tmp_path, 13, 1, 999, 999)  # not in the tree
    (tmp_path / "self").symlink_to(tmp_path / "10")
    sampler = ProcessTreeSampler(10, procfs=tmp_path)
    sample = sampler.sample()
    assert sample is not None
    assert sorted(sample.pids) == [11, 12]
    assert sample.rss_bytes == 150 * MIB
    assert sampler.peak_tree_rss_bytes == 150 * MIB
    assert sampler.peak_process_rss_bytes == 300 * MIB
    assert abs(sample.cpu_s - 2 * 160 / TICKS) < 1e-9


def test_sampler_keeps_the_peaks_across_samples(tmp_path: Path) -> None:
    """The tree peak is the largest sum seen, even after processes end."""
    make_proc(tmp_path, 10, 1, 5, 5)
    make_proc(tmp_path, 11, 10, 100, 100)
    make_proc(tmp_path, 12, 10, 100, 100)
    sampler = ProcessTreeSampler(10, procfs=tmp_path)
    sampler.sample()
    for name in ("stat", "status"):
        (tmp_path / "12" / name).unlink()
    (tmp_path / "12").rmdir()
    sample = sampler.sample()
    assert sample is not None and sample.rss_bytes == 100 * MIB
    assert sampler.peak_tree_rss_bytes == 200 * MIB


def test_process_peak_rules() -> None:
    """Kernel figure above the inherited floor: exact; at or below it: only a bound."""
    assert _process_peak(300 * MIB, 15 * MIB, 200 * MIB) == (300 * MIB, None)
    assert _process_peak(15 * MIB, 15 * MIB, 9 * MIB) == (None, 15 * MIB)
    assert _process_peak(15 * MIB, 15 * MIB, 40 * MIB) == (40 * MIB, None)
    assert _process_peak(None, 15 * MIB, None) == (None, None)


def test_sample_cost_is_cpu_not_time_spent_waiting(tmp_path: Path) -> None:
    """A scan kept waiting (here: 30 ms asleep per process, as a scan on a busy machine
    waits for a core) costs only the CPU it used: samples stay ``--interval`` apart."""
    import time

    make_proc(tmp_path, 10, 1, 5, 5)
    make_proc(tmp_path, 11, 10, 5, 5)
    make_proc(tmp_path, 12, 10, 5, 5)

    class Waiting(ProcessTreeSampler):
        def _read_stat(self, name: str):  # type: ignore[no-untyped-def]
            time.sleep(0.03)
            return super()._read_stat(name)

    sampler = Waiting(10, tmp_path)
    began = time.perf_counter()
    assert sampler.sample() is not None
    assert time.perf_counter() - began >= 0.06
    assert sampler.last_cost_s < 0.03
