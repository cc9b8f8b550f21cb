"""The monitor thread: refreshes running task files, sleeps untimed when idle."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmeter import Task, _log
from taskmeter.monitor import Monitor, get_monitor, next_due
from taskmeter.settings import monitor_interval


@pytest.fixture
def fast_monitor() -> Iterator[Monitor]:
    monitor = get_monitor()
    previous = monitor.default_interval
    monitor.default_interval = 0.05
    yield monitor
    monitor.default_interval = previous


def wait_until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_running_task_file_is_refreshed(tmp_path: Path, fast_monitor: Monitor) -> None:
    path = tmp_path / "task.json"
    with Task("long job", file=path):
        first = json.loads(path.read_text())
        assert first["duration"] is None
        assert wait_until(lambda: (json.loads(path.read_text())["duration"] or 0) > 0.1)
        refreshed = json.loads(path.read_text())
        assert refreshed["status"] == "running"
        assert refreshed["cpu_time"] is not None
        assert "task-file" in fast_monitor.job_names()
    assert "task-file" not in fast_monitor.job_names()


@pytest.mark.parametrize("monitor", [True, False])
def test_save_to_file_before_start_keeps_its_monitor_choice(
    tmp_path: Path, fast_monitor: Monitor, monitor: bool
) -> None:
    """``save_to_file(path, monitor=False)`` before ``start``: written as the task starts
    and finishes, never refreshed in between (``monitor=True``: refreshed)."""
    path = tmp_path / "task.json"
    task = Task("chosen")
    task.save_to_file(path, monitor=monitor)
    with task:
        assert ("task-file" in fast_monitor.job_names()) is monitor
        refreshed = wait_until(
            lambda: json.loads(path.read_text())["duration"] is not None, timeout=0.5
        )
        assert refreshed is monitor
        assert json.loads(path.read_text())["status"] == "running"
    assert json.loads(path.read_text())["status"] == "finished"


def test_save_to_file_without_monitor_stops_the_refreshes_of_a_running_task(
    tmp_path: Path, fast_monitor: Monitor
) -> None:
    """A task refreshed already (``file=``) and given ``save_to_file(path, monitor=False)``
    while it runs: the file is written then and when the task finishes, not in between."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    with Task("refreshed", file=first) as task:
        assert "task-file" in fast_monitor.job_names()
        task.save_to_file(second, monitor=False)
        assert "task-file" not in fast_monitor.job_names()
        written = second.stat().st_mtime_ns
        time.sleep(0.3)  # six refresh intervals
        assert second.stat().st_mtime_ns == written
        assert json.loads(second.read_text())["status"] == "running"
    assert json.loads(second.read_text())["status"] == "finished"


def test_jobs_run_at_their_interval_and_stop_when_removed() -> None:
    """Call k comes no earlier than its tick (added + k x interval), and each call is
    on a later tick than the one before; the gap between two calls may be short (a
    late call followed by an on-time one), so it is not what is checked."""
    monitor = Monitor()
    calls: list[float] = []
    interval = 0.02
    added = time.monotonic()
    handle = monitor.add(lambda: calls.append(time.monotonic()), interval, name="tick")
    assert wait_until(lambda: len(calls) >= 5)
    monitor.remove(handle)
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) <= count + 1
    ticks = [(when - added) / interval for when in calls]
    for k, tick in enumerate(ticks, start=1):
        assert tick >= k, (k, ticks)
    assert all(int(b) > int(a) for a, b in itertools.pairwise(ticks)), ticks
    monitor.stop()


def test_a_slow_run_is_not_followed_by_a_catch_up_run() -> None:
    """A run that ends past the next ticks is followed by the first tick after it ends,
    not by a run at once."""
    monitor = Monitor()
    interval = 0.1
    starts: list[float] = []
    first_tick = 0.0

    def slow_first() -> None:
        starts.append(time.monotonic())
        if len(starts) == 1:  # ends half-way between ticks 3 and 4
            time.sleep(max(0.0, first_tick + 2.5 * interval - time.monotonic()))

    handle = monitor.add(slow_first, interval, name="slow")
    first_tick = handle._job.due
    assert wait_until(lambda: len(starts) >= 2)
    monitor.remove(handle)
    monitor.stop()
    assert starts[1] >= first_tick + 3 * interval, (starts[1] - first_tick) / interval


@pytest.mark.parametrize(
    ("due", "interval", "now", "expected"),
    [
        (10.0, 1.0, 10.2, 11.0),  # on time: the next tick
        (10.0, 1.0, 10.99, 11.0),  # late, within the interval: the next tick still
        (10.0, 1.0, 11.0, 12.0),  # ended on the next tick: the one after
        (10.0, 1.0, 13.5, 14.0),  # three ticks missed: skipped
        (10.0, 0.25, 10.25, 10.5),
    ],
)
def test_next_due_keeps_the_cadence_and_skips_missed_ticks(
    due: float, interval: float, now: float, expected: float
) -> None:
    assert next_due(due, interval, now) == pytest.approx(expected)
    assert next_due(due, interval, now) > now


def test_next_due_is_after_now_despite_rounding() -> None:
    due, interval = 0.1, 0.1
    for step in range(1, 2000):
        now = due + step * interval
        assert next_due(due, interval, now) > now


def test_idle_monitor_does_not_wake_up() -> None:
    monitor = Monitor()
    handle = monitor.add(lambda: None, 0.01)
    time.sleep(0.05)
    monitor.remove(handle)
    time.sleep(0.05)
    before = monitor.wakeups
    time.sleep(0.5)
    assert monitor.wakeups - before <= 1
    assert monitor.job_count == 0
    monitor.stop()


def test_failing_job_is_counted_and_keeps_running() -> None:
    monitor = Monitor()
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk full")

    handle = monitor.add(flaky, 0.01, name="flaky")
    assert wait_until(lambda: calls >= 3)
    monitor.remove(handle)
    monitor.stop()
    assert _log.error_counts["monitor.flaky"] >= 3


def test_bad_interval_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        Monitor().add(lambda: None, 0)


@pytest.mark.parametrize("interval", [1e10, float("inf")])
def test_an_interval_too_long_for_a_timed_wait_keeps_the_thread_alive(interval: float) -> None:
    """Beyond threading.TIMEOUT_MAX a wait raises: the thread must wait in bounded steps."""
    monitor = Monitor()
    calls: list[str] = []
    long = monitor.add(lambda: calls.append("long"), interval, name="long")
    time.sleep(0.1)
    thread = monitor._thread
    assert thread is not None and thread.is_alive()
    short = monitor.add(lambda: calls.append("short"), 0.01, name="short")
    assert wait_until(lambda: calls.count("short") >= 2)
    assert thread.is_alive() and monitor._thread is thread  # never restarted
    assert "long" not in calls
    monitor.remove(long)
    monitor.remove(short)
    monitor.stop()


def test_interval_from_environment() -> None:
    assert monitor_interval({"TASKMETER_MONITOR_INTERVAL": "2.5"}) == 2.5
    assert monitor_interval({}) == 10.0


@pytest.mark.parametrize("value", ["soon", "-1", "0", "inf", "nan"])
def test_bad_interval_in_environment_warns_and_uses_default(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert monitor_interval({"TASKMETER_MONITOR_INTERVAL": value}) == 10.0
    assert "TASKMETER_MONITOR_INTERVAL" in caplog.text


def test_forked_child_starts_with_an_empty_monitor(fast_monitor: Monitor) -> None:
    handle = fast_monitor.add(lambda: None, 10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = get_monitor().job_count == 0 and get_monitor()._thread is None
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    fast_monitor.remove(handle)
    assert os.read(read, 1) == b"1"
    assert threading.active_count() >= 1


def test_forked_child_starts_with_an_empty_monitor_even_during_a_job() -> None:
    """A fork while the monitor thread runs a job: the child has no job, that one included."""
    monitor = get_monitor()
    running, release = threading.Event(), threading.Event()

    def job() -> None:
        running.set()
        release.wait(5)

    handle = monitor.add(job, 0.01, name="busy")
    try:
        assert running.wait(5)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.write(write, b"1" if get_monitor().job_names() == [] else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
    finally:
        release.set()
        monitor.remove(handle)


def test_refresh_writes_the_figures_of_running_subtasks(tmp_path: Path) -> None:
    """A killed process's file shows every open task's figures, not just the root's."""
    path = tmp_path / "task.json"
    with Task("root", file=path) as root, Task("stage"), Task("step"):
        root.monitor_refresh()
        document = json.loads(path.read_text())
        stage = document["subtasks"][0]
        step = stage["subtasks"][0]
        assert stage["status"] == step["status"] == "running"
        assert stage["duration"] is not None and step["duration"] is not None
        assert step["cpu_time"] is not None and step["peak_memory"] is not None


def system_thread_exists(thread: threading.Thread) -> bool:
    return os.path.exists(f"/proc/self/task/{thread.native_id}")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_a_fork_stops_the_thread_before_and_restarts_it_after_keeping_the_jobs() -> None:
    """Before a fork the monitor's thread has ended (its system thread gone, what
    Python 3.12+ counts to warn about forking with threads); after it, in the parent, a
    new thread runs the same jobs on their schedule: no tick is lost."""
    monitor = Monitor()
    calls: list[float] = []
    handle = monitor.add(lambda: calls.append(time.monotonic()), 0.02, name="tick")
    assert wait_until(lambda: len(calls) >= 2)
    before = monitor._thread
    assert before is not None and before.is_alive()
    monitor._before_fork()
    assert not before.is_alive() and not system_thread_exists(before)
    assert monitor._thread is None and monitor.job_names() == ["tick"]
    paused = len(calls)
    monitor._resume_after_fork()
    after = monitor._thread
    assert after is not None and after is not before and after.is_alive()
    assert wait_until(lambda: len(calls) >= paused + 3)
    monitor.remove(handle)
    monitor.stop()


def test_a_fork_waits_briefly_once_for_a_running_job_and_the_thread_carries_on() -> None:
    """A job still running when the process forks (a save of a large tree) holds the
    first fork up for a moment only, and later forks during the same run not at all;
    its thread carries on (not a second one) and keeps running the jobs."""
    from taskmeter.monitor import _FORK_JOB_WAIT_S

    monitor = Monitor()
    release = threading.Event()
    running = threading.Event()
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        running.set()
        release.wait(5)

    slow_handle = monitor.add(slow, 0.01, name="slow")
    assert running.wait(5)
    thread = monitor._thread
    waits = []
    for _ in range(4):
        started = time.monotonic()
        monitor._before_fork()
        waits.append(time.monotonic() - started)
        assert thread is not None and thread.is_alive()
        monitor._resume_after_fork()
    assert _FORK_JOB_WAIT_S <= waits[0] < _FORK_JOB_WAIT_S + 0.5
    assert all(wait < _FORK_JOB_WAIT_S for wait in waits[1:]), waits
    release.set()
    monitor.remove(slow_handle)
    quick_handle = monitor.add(lambda: calls.append("quick"), 0.01, name="quick")
    assert wait_until(lambda: calls.count("quick") >= 2)
    assert monitor._thread is thread and thread.is_alive()
    monitor.remove(quick_handle)
    monitor.stop()


def test_a_fork_waits_for_a_short_job_and_forks_with_no_thread() -> None:
    """A job of a millisecond running at the fork is waited for: the fork happens with
    the thread ended, and the thread starts again after it."""
    monitor = Monitor()
    running = threading.Event()
    done: list[float] = []

    def short() -> None:
        running.set()
        time.sleep(0.005)
        done.append(time.monotonic())

    handle = monitor.add(short, 0.001, name="short")
    assert running.wait(5)
    before = monitor._thread
    monitor._before_fork()
    assert before is not None and not before.is_alive()
    monitor._resume_after_fork()
    count = len(done)
    assert wait_until(lambda: len(done) >= count + 2)
    monitor.remove(handle)
    monitor.stop()


def test_a_fork_with_only_cancelled_jobs_leaves_the_thread_to_the_next_add() -> None:
    """Jobs removed but not yet dropped from the queue do not make the fork restart the
    thread; the next add() does."""
    monitor = Monitor()
    handle = monitor.add(lambda: None, 60, name="long")
    assert monitor._thread is not None
    monitor.remove(handle)
    monitor._before_fork()
    monitor._resume_after_fork()
    assert monitor._thread is None
    _assert_next_add_starts_it(monitor)


def test_a_stopped_or_idle_monitor_is_not_started_by_a_fork() -> None:
    """A monitor stopped by stop() stays stopped across a fork; an idle one's thread ends
    at the fork and the next add() starts it."""
    stopped = Monitor()
    handle = stopped.add(lambda: None, 10, name="kept")
    stopped.stop()
    stopped._before_fork()
    stopped._resume_after_fork()
    assert stopped._thread is None or not stopped._thread.is_alive()
    stopped.remove(handle)
    idle = Monitor()
    idle.remove(idle.add(lambda: None, 10))
    assert idle._thread is not None
    idle._before_fork()
    idle._resume_after_fork()
    assert idle._thread is None
    _assert_next_add_starts_it(idle)


def _assert_next_add_starts_it(monitor: Monitor) -> None:
    """A job added now runs (the monitor's thread is started again), then stop."""
    calls: list[str] = []
    handle = monitor.add(lambda: calls.append("tick"), 0.01)
    assert wait_until(lambda: len(calls) >= 2)
    monitor.remove(handle)
    monitor.stop()


def test_a_refresh_running_as_the_task_finishes_never_outlives_the_final_save(
    tmp_path: Path, fast_monitor: Monitor
) -> None:
    """Refreshes every millisecond while tasks of 300 subtasks finish: each file says
    ``finished`` once the task has, and stays so (a refresh that had read the task
    running used to replace the final file after it, in about a quarter of rounds)."""
    fast_monitor.default_interval = 0.001
    paths = []
    for round_ in range(30):
        path = tmp_path / f"t{round_}.json"
        with Task(f"t{round_}", file=path):
            for i in range(300):
                with Task(f"c{i}"):
                    pass
            time.sleep(0.003 * (round_ % 5))
        paths.append(path)
    time.sleep(0.2)  # any refresh still running ends meanwhile
    statuses = [json.loads(path.read_text())["status"] for path in paths]
    assert statuses == ["finished"] * len(paths)
