"""Figures against ground truth where real programs make them hard: threads that come
and go, child processes, and a high-water mark that cannot be reset."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import threading
from typing import Any

import pytest

import taskmeter
from taskmeter import Task
from taskmeter.probes import ProcessProbe, peaks
from taskmeter.probes.memory import LinuxRssHighWater

from .helpers import MIB, burn_cpu, current_rss, touch_bytes

linux_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc"
)


def test_cpu_of_threads_that_ended_during_the_task_is_counted() -> None:
    """Threads started and finished inside the task: their CPU time stays in the process's
    (the kernel adds an ended thread's time to its process), so the task counts it all."""
    with Task("short-lived threads") as task:
        for _ in range(3):
            worker = threading.Thread(target=burn_cpu, args=(0.1,))
            worker.start()
            worker.join()
    assert task.cpu_time == pytest.approx(0.3, abs=0.04)


def test_child_processes_reaped_during_the_task_are_not_counted() -> None:
    """A task's CPU time and peak memory are its own process's (RUSAGE_SELF, VmHWM): a
    child process's CPU and memory are not in them, even once the child was reaped
    (the kernel adds them to RUSAGE_CHILDREN); as the README says."""
    child = (
        "import time\n"
        "block = b'x' * (200 << 20)\n"
        "end = time.process_time() + 0.4\n"
        "while time.process_time() < end:\n"
        "    pass\n"
    )
    base = current_rss()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Task("runs a child") as task:
        subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    assert child_cpu >= 0.4  # the ground truth: the child did burn it, and was reaped
    assert task.cpu_time is not None and task.cpu_time < 0.1
    assert task.peak_memory is not None and task.peak_memory < base + 100 * MIB


@linux_proc
def test_memory_other_threads_hold_at_once_is_in_the_task_peak() -> None:
    """Two threads (not tasks) each hold 150 MiB at the same moment during the task: the
    process's mark, and so the task's peak, has both."""
    if not LinuxRssHighWater().resettable:
        pytest.skip("needs a writable /proc/self/clear_refs")
    base = current_rss()
    both_hold = threading.Barrier(2)

    def hold() -> None:
        block = touch_bytes(150 * MIB)
        both_hold.wait(10)
        both_hold.wait(10)  # the other one has seen both blocks too
        del block

    with Task("root") as root:
        with Task("threads allocate") as task:
            workers = [threading.Thread(target=hold) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        with Task("after") as after:
            pass
    assert task.peak_memory == pytest.approx(base + 300 * MIB, rel=0.05)
    assert root.peak_memory == pytest.approx(base + 300 * MIB, rel=0.05)
    assert after.peak_memory is not None and after.peak_memory < base + 50 * MIB


@linux_proc
def test_unwritable_clear_refs_gives_the_process_peak_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """/proc/self/clear_refs that cannot be opened for writing (a read-only /proc, some
    container runtimes): the mark is never reset, so a task's peak is the process's
    peak so far, an upper bound that includes an earlier sibling (the documented
    fallback), and the reason is logged once at debug level."""
    real_open = os.open

    def refuse_clear_refs(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("clear_refs"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    caplog.set_level(logging.DEBUG, logger="taskmeter")
    source = LinuxRssHighWater()
    monkeypatch.setattr(os, "open", refuse_clear_refs)
    assert not source.resettable
    monkeypatch.undo()
    # The process's mark has one register, made with the first source over it:
    # a process where this source is the first.
    monkeypatch.setattr(peaks, "_shared", {})
    taskmeter.set_probes([ProcessProbe(source)])
    base = current_rss()
    with Task("big") as big:
        block = touch_bytes(300 * MIB)
        del block
    with Task("small") as small:
        block = touch_bytes(20 * MIB)
        del block
    assert big.peak_memory is not None and small.peak_memory is not None
    assert big.peak_memory >= base + 0.95 * 300 * MIB
    assert small.peak_memory >= big.peak_memory  # an upper bound, never below the truth
    said = [r.getMessage() for r in caplog.records if "clear_refs" in r.getMessage()]
    assert len(said) == 1 and "Permission denied" in said[0], said
