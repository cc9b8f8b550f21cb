"""Figures checked against ground truth: bytes touched, CPU burnt, time slept."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from taskmeter import Task
from taskmeter.probes.memory import LinuxRssHighWater, default_high_water_source

from .helpers import MIB, burn_cpu, burn_system_cpu, current_rss, touch_bytes

linux_resettable = pytest.mark.skipif(
    not (
        isinstance(default_high_water_source(), LinuxRssHighWater)
        and default_high_water_source().resettable
    ),
    reason="needs Linux with a writable /proc/self/clear_refs",
)


def test_duration_matches_sleep() -> None:
    """The duration is the sleep's, within the time measured around the task (a loaded
    machine may wake the sleep late: the clock around it sees that too)."""
    outer_start = time.perf_counter()
    with Task("sleep") as task:
        time.sleep(0.3)
    outer = time.perf_counter() - outer_start
    assert task.duration is not None
    assert 0.3 <= task.duration <= outer
    assert outer - task.duration < 0.05
    assert task.cpu_time is not None and task.cpu_time < 0.05


def test_cpu_time_matches_burnt_cpu() -> None:
    with Task("burn") as task:
        burn_cpu(0.5)
    assert task.cpu_time == pytest.approx(0.5, abs=0.03)
    assert task.cpu_user_time is not None and task.cpu_system_time is not None
    assert task.cpu_user_time + task.cpu_system_time == pytest.approx(task.cpu_time)
    assert task.cpu_user_time > 0.4


def _rusage_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def test_system_cpu_time_matches_the_system_time_burnt_in_the_kernel() -> None:
    """0.5 s of CPU spent zeroing buffers in the kernel shows as system time: the task's
    user and system figures are each the getrusage delta taken around the task (to
    within a few clock ticks), the system part is most of the 0.5 s, the user part small."""
    user_before, system_before = _rusage_cpu()
    with Task("syscalls") as task:
        burn_system_cpu(0.5)
    user_after, system_after = _rusage_cpu()
    true_system = system_after - system_before
    true_user = user_after - user_before
    assert true_system > 0.35, "the burn did not run in the kernel"
    assert task.cpu_system_time == pytest.approx(true_system, abs=0.02)
    assert task.cpu_user_time == pytest.approx(true_user, abs=0.02)
    assert task.cpu_time == pytest.approx(0.5, abs=0.03)
    assert task.cpu_user_time < 0.1


def test_pure_python_cpu_is_user_time_with_little_system_time() -> None:
    """A CPU-bound Python loop shows as user time; the system figure stays small
    (and equals the getrusage delta taken around the task)."""
    user_before, system_before = _rusage_cpu()
    with Task("python loop") as task:
        burn_cpu(0.5)
    user_after, system_after = _rusage_cpu()
    # The burn counts user and system time together (a loaded machine charges a
    # few hundredths of system time to it): the total is the half second.
    assert task.cpu_time == pytest.approx(0.5, abs=0.03)
    assert task.cpu_user_time == pytest.approx(user_after - user_before, abs=0.02)
    assert task.cpu_user_time > 0.4
    assert task.cpu_system_time is not None and task.cpu_system_time < 0.08
    assert task.cpu_system_time == pytest.approx(system_after - system_before, abs=0.02)


def test_cpu_of_sibling_not_charged_but_parent_sums() -> None:
    with Task("root") as root:
        with Task("burn") as burn:
            burn_cpu(0.3)
        with Task("idle") as idle:
            time.sleep(0.2)
    assert burn.cpu_time == pytest.approx(0.3, abs=0.03)
    assert idle.cpu_time is not None and idle.cpu_time < 0.03
    assert root.cpu_time == pytest.approx(0.3, abs=0.04)


def test_cpu_time_is_process_wide() -> None:
    """Other threads' CPU during a task is charged to it (documented)."""
    worker = threading.Thread(target=burn_cpu, args=(0.3,))
    with Task("waits for a thread") as task:
        worker.start()
        worker.join()
    assert task.cpu_time == pytest.approx(0.3, abs=0.04)


@linux_resettable
def test_peak_memory_right_for_every_task_at_once() -> None:
    """root ⊃ {A: 500 MiB touched and freed; then B: 100 MiB}, each within 5 %."""
    base = current_rss()
    with Task("root") as root:
        with Task("A") as a:
            block = touch_bytes(500 * MIB)
            del block
        with Task("B") as b:
            block = touch_bytes(100 * MIB)
            del block
    assert a.peak_memory == pytest.approx(base + 500 * MIB, rel=0.05)
    assert b.peak_memory == pytest.approx(base + 100 * MIB, rel=0.05)
    assert root.peak_memory == pytest.approx(base + 500 * MIB, rel=0.05)


@linux_resettable
def test_deep_nesting_keeps_every_ancestor_peak() -> None:
    base = current_rss()
    with Task("outer") as outer:
        with Task("middle") as middle:
            with Task("inner big") as inner_big:
                block = touch_bytes(300 * MIB)
                del block
            with Task("inner small") as inner_small:
                block = touch_bytes(50 * MIB)
                del block
        with Task("after") as after:
            block = touch_bytes(20 * MIB)
            del block
    for task in (outer, middle, inner_big):
        assert task.peak_memory == pytest.approx(base + 300 * MIB, rel=0.05), task.label
    assert inner_small.peak_memory == pytest.approx(base + 50 * MIB, rel=0.05)
    assert after.peak_memory == pytest.approx(base + 20 * MIB, rel=0.05)


@linux_resettable
def test_reset_hwm_false_includes_earlier_siblings() -> None:
    base = current_rss()
    with Task("root"):
        with Task("A"):
            block = touch_bytes(200 * MIB)
            del block
        with Task("B", reset_hwm=False) as b:
            pass
    assert b.peak_memory == pytest.approx(base + 200 * MIB, rel=0.05)


@linux_resettable
def test_peak_of_running_task_while_refreshing() -> None:
    base = current_rss()
    with Task("running") as task:
        block = touch_bytes(150 * MIB)
        task.update()
        assert task.peak_memory == pytest.approx(base + 150 * MIB, rel=0.05)
        del block
        with Task("sibling reset"):
            pass
        task.update()
        assert task.peak_memory == pytest.approx(base + 150 * MIB, rel=0.05)


@linux_resettable
def test_concurrent_tasks_in_threads_keep_their_peaks() -> None:
    """A reset by a task in one thread never lowers another thread's open task."""
    base = current_rss()
    allocated = threading.Event()
    release = threading.Event()
    holder: list[Task] = []

    def big() -> None:
        with Task("big in thread") as task:
            block = touch_bytes(300 * MIB)
            allocated.set()
            release.wait(10)
            del block
        holder.append(task)

    thread = threading.Thread(target=big)
    thread.start()
    assert allocated.wait(10)
    with Task("resets meanwhile"):
        pass
    release.set()
    thread.join()
    assert holder[0].peak_memory == pytest.approx(base + 300 * MIB, rel=0.05)


@linux_resettable
def test_peak_right_in_child_spawned_by_large_parent(tmp_path: os.PathLike[str]) -> None:
    """ru_maxrss of a program exec'ed from a large process starts at that process's
    peak; the task figures must not inherit it."""
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from tests.helpers import MIB, current_rss, touch_bytes
        from taskmeter import Task
        import resource
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        base = current_rss()
        with Task("root"):
            with Task("small") as small:
                block = touch_bytes(20 * MIB)
                del block
        print(json.dumps({"floor": floor, "base": base, "small": small.peak_memory}))
        """
    )
    block = touch_bytes(600 * MIB)  # raise this process's high-water mark
    del block
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", script, repo], capture_output=True, text=True, check=True
    )
    import json

    figures = json.loads(out.stdout)
    if figures["floor"] < 500 * MIB:
        pytest.skip("this platform did not pass the parent's peak on to the child")
    assert figures["small"] == pytest.approx(figures["base"] + 20 * MIB, rel=0.05)
