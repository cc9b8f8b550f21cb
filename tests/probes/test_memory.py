"""The RSS high-water source: /proc parsing, resets, platforms and units."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

from taskmeter.figures import Figures
from taskmeter.probes.memory import (
    LinuxRssHighWater,
    PeakMemoryProbe,
    RusageHighWater,
    maxrss_unit,
    parse_vm_hwm,
)

STATUS = b"""Name:\tpython3
VmPeak:\t  500000 kB
VmSize:\t  400000 kB
VmHWM:\t  123456 kB
VmRSS:\t  100000 kB
Threads:\t1
"""


def fake_proc(root: Path, hwm_kb: int, rss_pages: int = 100) -> Path:
    proc = root / "4242"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "status").write_bytes(STATUS.replace(b"123456", str(hwm_kb).encode()))
    (proc / "statm").write_text(f"1000 {rss_pages} 10 1 0 50 0\n")
    (proc / "clear_refs").write_text("")
    return proc


def test_parse_vm_hwm() -> None:
    assert parse_vm_hwm(STATUS) == 123456 * 1024
    assert parse_vm_hwm(b"VmHWM:\t 12 mB\n") == 12 * 1024**2
    assert parse_vm_hwm(b"Name: x\n") is None
    assert parse_vm_hwm(b"VmHWM: garbage\n") is None
    assert parse_vm_hwm(b"VmHWM:") is None
    assert parse_vm_hwm(b"VmHWM: 12 parsecs\n") is None


def test_fake_proc_tree_reads_and_resets(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 2048)
    source = LinuxRssHighWater(procfs=tmp_path, pid=4242)
    assert source.resettable
    assert source.high_water() == 2048 * 1024
    source.reset()
    assert (proc / "clear_refs").read_text() == "5"
    fake_proc(tmp_path, 4096)  # the "kernel" moves the mark
    assert source.high_water() == 4096 * 1024


def test_missing_clear_refs_is_not_resettable(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 10)
    (proc / "clear_refs").unlink()
    source = LinuxRssHighWater(procfs=tmp_path, pid=4242)
    assert not source.resettable
    source.reset()  # a no-op, not an error


def test_failing_reset_write_stops_resetting(tmp_path: Path) -> None:
    """A kernel that refuses the write (EINVAL, EPERM) turns resets off, quietly."""
    proc = fake_proc(tmp_path, 10)
    source = LinuxRssHighWater(procfs=tmp_path, pid=4242)
    assert source.resettable
    assert source._clear_fd is not None
    os.close(source._clear_fd)
    source._clear_fd = os.open(proc / "status", os.O_RDONLY)  # writes now fail
    source.reset()
    assert not source.resettable


def test_reset_writes_one_byte_and_reports_the_errno(tmp_path: Path) -> None:
    """The libc write the reset uses (called without argtypes) writes exactly
    what it is given, and a failing one raises with the kernel's errno."""
    import errno

    from taskmeter.probes.memory import _write_holding_gil

    proc = fake_proc(tmp_path, 10)
    source = LinuxRssHighWater(procfs=tmp_path, pid=4242)
    (proc / "clear_refs").write_bytes(b"")
    source.reset()
    source.reset()
    assert (proc / "clear_refs").read_bytes() == b"55"
    fd = os.open(proc / "status", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            _write_holding_gil(fd, b"payload")
    finally:
        os.close(fd)
    assert raised.value.errno == errno.EBADF
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        assert _write_holding_gil(fd, b"payload") == 7
    finally:
        os.close(fd)
    assert out.read_bytes() == b"payload"


def test_missing_status_gives_none(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 10)
    (proc / "status").unlink()
    assert LinuxRssHighWater(procfs=tmp_path, pid=4242).high_water() is None


def test_probe_on_fake_tree_fills_figure(tmp_path: Path) -> None:
    fake_proc(tmp_path, 300)
    probe = PeakMemoryProbe(LinuxRssHighWater(procfs=tmp_path, pid=4242))
    state = probe.begin()
    fake_proc(tmp_path, 900)
    figures = Figures()
    probe.read(state, figures)
    probe.end(state)
    assert figures.peak_memory_bytes == 900 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_real_source_agrees_with_vm_hwm() -> None:
    source = LinuxRssHighWater()
    source.reset()
    status = Path("/proc/self/status").read_bytes()
    vm_hwm = parse_vm_hwm(status)
    assert vm_hwm is not None
    assert source.high_water() == pytest.approx(vm_hwm, rel=0.02)


def test_maxrss_units_per_platform() -> None:
    assert maxrss_unit("darwin") == 1
    assert maxrss_unit("linux") == 1024
    assert maxrss_unit("freebsd13") == 1024


def test_rusage_source_is_lifetime_peak_in_bytes() -> None:
    source = RusageHighWater()
    assert not source.resettable
    expected = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * maxrss_unit()
    assert source.high_water() == pytest.approx(expected, rel=0.01)


def test_an_interrupted_init_leaves_nothing_for_del_to_trip_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C on the first line of LinuxRssHighWater.__init__: collecting the half-made
    object reports nothing (its __del__ printed an AttributeError traceback)."""
    import gc

    from taskmeter.probes import memory

    class InterruptedOs:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def getpid(self) -> int:
            raise KeyboardInterrupt

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(memory, "os", InterruptedOs())
    with pytest.raises(KeyboardInterrupt):
        memory.LinuxRssHighWater()
    gc.collect()
    assert unraisable == []
