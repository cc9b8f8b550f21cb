"""A ``taskmeter run`` job stopped by job control (Ctrl-Z's SIGTSTP, a background job's
SIGTTIN) is shown as ``stopped`` by ``taskmeter show``, while its file keeps LensKit's
``running`` status; once continued it is ``running`` again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from taskmeter.liveness import Liveness
from taskmeter.taskfile import load_task
from tests.collector import wait_until

from .runner import clean_environment, taskmeter


def _stopped(pid: int) -> bool:
    return psutil.Process(pid).status() == psutil.STATUS_STOPPED


def _running_file(path: Path) -> int:
    """The pid the task file of a running ``taskmeter run`` names, once it is written."""
    assert wait_until(lambda: path.exists() and path.stat().st_size > 0, 20), "no task file"
    task = load_task(path)
    assert task.status.value == "running" and isinstance(task.pid, int)
    return task.pid


def test_a_job_stopped_by_sigtstp_is_shown_stopped_and_running_again_after_sigcont(
    tmp_path: Path,
) -> None:
    """SIGTSTP to the job's process group (what Ctrl-Z sends) stops the run and its
    command: the table, --status and --json say 'stopped' and why, and the file still
    says 'running'; after SIGCONT the task is 'running' again."""
    path = tmp_path / "job.json"
    job = subprocess.Popen(
        [sys.executable, "-m", "taskmeter", "run", "-o", str(path), "--", "sleep", "30"],
        env=clean_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,  # a job of its own, in this session (so SIGTSTP stops it)
    )
    try:
        pid = _running_file(path)
        os.killpg(job.pid, signal.SIGTSTP)
        assert wait_until(lambda: _stopped(pid) and _stopped(job.pid), 10)

        table = taskmeter("show", str(path))
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[1].split()[1] == "stopped", table.stdout
        assert f"process {pid} is stopped" in table.stderr
        assert f"kill -CONT {pid}" in table.stderr
        only = taskmeter("show", str(path), "--status", "stopped")
        assert only.returncode == 0 and len(only.stdout.splitlines()) == 2, only.stdout
        (row,) = json.loads(taskmeter("show", str(path), "--json").stdout)["tasks"]
        assert row["status"] == "running"
        assert row["stopped"] is True and row["interrupted"] is False
        assert f"process {pid} is stopped" in row["stopped_reason"]
        assert load_task(path).status.value == "running"

        os.killpg(job.pid, signal.SIGCONT)
        assert wait_until(lambda: not _stopped(pid), 10)
        again = taskmeter("show", str(path))
        assert again.stdout.splitlines()[1].split()[1] == "running", again.stdout
        assert "stopped" not in again.stderr
    finally:
        os.killpg(job.pid, signal.SIGCONT)
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(20)


def test_a_stopped_process_is_not_interrupted_and_a_finished_task_is_never_stopped() -> None:
    """Stopped (SIGSTOP): not interrupted, but stopped; a running process: neither; a
    finished task whose process is stopped: neither (its record is final)."""
    from taskmeter import Task

    here = Liveness.here()
    child = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.05)
        record = Task.model_validate(
            {
                "label": "job",
                "status": "running",
                "pid": child.pid,
                "hostname": here.hostname,
                "start_time": time.time(),
            }
        )
        assert here.stoppage(record) is None
        os.kill(child.pid, signal.SIGSTOP)
        assert wait_until(lambda: _stopped(child.pid), 10)
        fresh = Liveness.here()
        assert fresh.interruption(record) is None
        reason = fresh.stoppage(record)
        assert reason is not None and reason.startswith(f"process {child.pid} is stopped")
        finished = record.model_copy(update={"status": "finished"})
        assert Liveness.here().stoppage(finished) is None
    finally:
        child.kill()
        child.wait()
