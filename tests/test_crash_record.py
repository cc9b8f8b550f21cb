"""A process killed with SIGKILL mid-task leaves a valid task file, and readers tell that
it was interrupted (without being fooled by a reused process id)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import psutil
import pytest

from taskmeter import Task, TaskStatus, load_task
from taskmeter.liveness import CLOCK_SLACK_S, Liveness, interruption

from .cli.runner import clean_environment, taskmeter
from .collector import wait_until

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

ZYGOTE = Path(__file__).resolve().parent / "programs" / "task_zygote.py"
KILLS = 50


def running_record(**fields: object) -> Task:
    document = {"label": "job", "status": "running", "hostname": "here", **fields}
    return Task.model_validate(document)


def refreshed_record(path: Path) -> bool:
    """Whether the task file at ``path`` exists and carries figures of a monitor refresh."""
    return path.exists() and load_task(path).duration is not None


def test_fifty_kills_at_random_moments_leave_no_corrupt_file(tmp_path: Path) -> None:
    """50 children refreshing their task file every 5 ms, each SIGKILLed at a random moment:
    every file that exists loads, is still 'running' with the child's pid, and is judged
    interrupted once the child is gone.  Every other child is killed at a random moment
    after its file was first refreshed (the file keeps the refreshed figures), whatever CPU
    the child got; the others at a random moment after it was started, its first write
    included."""
    rng = random.Random(20240611)
    env = clean_environment({"TASKMETER_MONITOR_INTERVAL": "0.005", "TASKMETER_ENERGY": "none"})
    zygote = subprocess.Popen(
        [sys.executable, str(ZYGOTE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    files = 0
    refreshed = 0
    here = Liveness.here()
    try:
        for round_ in range(KILLS):
            path = tmp_path / f"run-{round_}.json"
            zygote.stdin.write(f"run {path}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            after_refresh = round_ % 2 == 1
            if after_refresh:
                # Reading while the child writes is safe: records are renamed into place.
                assert wait_until(partial(refreshed_record, path), 60, 0.002), (
                    f"child {pid} did not refresh its task file"
                )
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 0.12))
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid}\n")
            zygote.stdin.flush()
            assert zygote.stdout.readline().strip() == "reaped"
            if not path.exists():
                assert not after_refresh, "a refreshed task file disappeared"
                continue  # killed before its first write: no record, and none corrupt
            files += 1
            task = load_task(path)  # raises if the file were damaged
            assert task.status is TaskStatus.RUNNING
            assert task.pid == pid
            assert here.interruption(task) == f"process {pid} is gone"
            if after_refresh:
                assert task.duration is not None, "a kill mid-refresh lost the refreshed figures"
            refreshed += task.duration is not None
            for _, sub in task.walk():
                if sub.status is TaskStatus.RUNNING:
                    assert here.interruption(sub) is not None
    finally:
        zygote.stdin.close()
        zygote.wait(10)
    print(f"\n{KILLS} kills: {files} task files, all valid; {refreshed} with refreshed figures")
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix != ".json"]
    # A writer killed mid-write leaves at most its temporary file, never a damaged record.
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers)


def test_dead_process_is_interrupted() -> None:
    """A running task whose pid no longer exists on this host was interrupted."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    task = running_record(pid=child.pid, start_time=time.time() - 5)
    assert interruption(task, hostname="here") == f"process {child.pid} is gone"


def test_zombie_is_interrupted() -> None:
    """A process that exited but was not reaped yet is not running the task."""
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 10)
        task = running_record(pid=child.pid, start_time=started)
        assert interruption(task, hostname="here") == f"process {child.pid} has exited"
    finally:
        child.wait()


def test_reused_pid_is_not_taken_for_the_task() -> None:
    """The pid exists, but its process started after the task did: the id was reused."""
    created = psutil.Process(os.getpid()).create_time()
    task = running_record(pid=os.getpid(), start_time=created - CLOCK_SLACK_S - 60)
    reason = interruption(task, hostname="here")
    assert reason is not None and "started later" in reason


def test_a_process_hidden_from_proc_is_not_taken_for_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With /proc mounted hidepid=2, another user's process is not listed there (psutil finds
    no such process) but runs: its task is not interrupted.  One that is gone still is."""
    started = time.time()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def not_in_proc(pid: int) -> psutil.Process:
        raise psutil.NoSuchProcess(pid)

    try:
        monkeypatch.setattr(psutil, "Process", not_in_proc)
        assert (
            interruption(running_record(pid=live.pid, start_time=started), hostname="here") is None
        )
        gone = interruption(running_record(pid=dead.pid, start_time=started), hostname="here")
        assert gone == f"process {dead.pid} is gone"

        def not_permitted(pid: int, signo: int) -> None:
            raise PermissionError(1, "Operation not permitted")  # another user's process

        monkeypatch.setattr(os, "kill", not_permitted)
        assert (
            interruption(running_record(pid=live.pid, start_time=started), hostname="here") is None
        )
    finally:
        monkeypatch.undo()
        live.kill()
        live.wait()


def test_live_process_that_started_before_the_task_is_running() -> None:
    """Our own process, task started after it: still running."""
    task = running_record(pid=os.getpid(), start_time=time.time())
    assert interruption(task, hostname="here") is None


def test_other_host_is_judged_by_the_file_age() -> None:
    """No process to check on another host: a file older than stale_after_s is interrupted."""
    task = running_record(pid=1, hostname="elsewhere", start_time=0.0)
    now = 10_000.0
    assert interruption(task, hostname="here", file_mtime=now - 10, now=now) is None
    reason = interruption(task, hostname="here", file_mtime=now - 600, now=now, stale_after_s=60)
    assert reason is not None and "not refreshed for 600 s" in reason
    assert interruption(task, hostname="here", file_mtime=None, now=now) is None


def test_a_record_without_a_pid_is_judged_by_the_file_age() -> None:
    """LensKit's files name no process: never the reader's own pid, but the file's age."""
    task = running_record(start_time=time.time())
    assert task.pid is None
    now = time.time()
    assert interruption(task, hostname="here", file_mtime=now - 10, now=now) is None
    reason = interruption(task, hostname="here", file_mtime=now - 600, now=now, stale_after_s=60)
    assert reason == "not refreshed for 600 s (the record names no process to check)"


def test_show_reads_a_running_lenskit_file_as_running(tmp_path: Path) -> None:
    """A LensKit task being refreshed (no pid in its file) is running, in the table and JSON;
    the same file left alone past --stale-after is interrupted."""
    path = tmp_path / "lenskit.json"
    document = {
        "task_id": "6f1c3c0e-8f47-4e57-9d43-2bd0c7d7a3c1",
        "label": "train",
        "hostname": Liveness.here().hostname,
        "status": "running",
        "start_time": time.time() - 4,
        "subtasks": [],
    }
    path.write_text(json.dumps(document))
    table = taskmeter("show", str(path))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[:2] == ["train", "running"]
    as_json = json.loads(taskmeter("show", str(path), "--json").stdout)
    assert as_json["tasks"][0]["interrupted"] is False
    old = time.time() - 120
    os.utime(path, (old, old))
    stale = taskmeter("show", str(path), "--stale-after", "60")
    assert stale.stdout.splitlines()[1].split()[:2] == ["train", "interrupted"]
    assert "names no process" in stale.stderr


def test_finished_tasks_are_never_interrupted() -> None:
    """Only 'running' is judged."""
    task = Task.model_validate({"label": "done", "status": "finished", "pid": 999_999_999})
    assert interruption(task, hostname=task.hostname) is None


def test_show_marks_interrupted_tasks(tmp_path: Path) -> None:
    """`taskmeter show` prints 'interrupted' for a killed run, in the table, the JSON and the
    --status filter, and keeps the figures of its last refresh."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    record = running_record(
        pid=child.pid,
        hostname=Liveness.here().hostname,
        start_time=time.time() - 30,
        duration=12.5,
        cpu_time=3.0,
        subtasks=[{"label": "done step", "status": "finished", "duration": 1.0}],
    )
    path = tmp_path / "killed.json"
    path.write_text(record.model_dump_json())
    table = taskmeter("show", str(path))
    assert table.returncode == 0, table.stderr
    first_row = table.stdout.splitlines()[1].split()
    assert first_row[:3] == ["job", "interrupted", "12.50s"]
    assert "finished" in table.stdout.splitlines()[2]
    assert f"process {child.pid} is gone" in table.stderr
    as_json = json.loads(taskmeter("show", str(path), "--json").stdout)
    assert as_json["tasks"][0]["status"] == "running"
    assert as_json["tasks"][0]["interrupted"] is True
    assert as_json["tasks"][0]["duration_s"] == 12.5
    only = taskmeter("show", str(path), "--status", "interrupted")
    assert [line.split()[0] for line in only.stdout.splitlines()[1:]] == ["job"]
