"""Worker inbox directories do not outlive their processes; tasks lost at exit are said.

Each case runs a program in a subprocess (bounded by a timeout) with a private
``TMPDIR``, so the directories it leaves there can be counted.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from taskmeter import _workers
from tests.worker_fixtures import fork_only

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    for name in ("TASKMETER_PARENT_TASK", "TASKMETER_SUBTASK_DIR"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


def _left(tmpdir: Path) -> list[str]:
    return sorted(name for name in os.listdir(tmpdir) if name.startswith("taskmeter-"))


@fork_only
def test_forked_child_leaving_by_os_exit_leaves_no_inbox(tmp_path: Path) -> None:
    """A forked child that forks inside its task, then leaves by os._exit: no directory."""
    result = _run(
        """
        import os
        from taskmeter import Task

        with Task("root") as root:
            pid = os.fork()
            if pid == 0:
                try:
                    with Task("child"):
                        grandchild = os.fork()
                        if grandchild == 0:
                            with Task("grandchild"):
                                pass
                            os._exit(0)
                        os.waitpid(grandchild, 0)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
        assert [t.label for t in root.subtasks] == ["child"], root.subtasks
        assert [t.label for t in root.subtasks[0].subtasks] == ["grandchild"]
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert _left(tmp_path) == []


@fork_only
def test_killed_workers_leave_no_inbox(tmp_path: Path) -> None:
    """multiprocessing workers whose tasks fork, ended without exit hooks (os._exit, as
    Pool.terminate()'s SIGTERM does): no directory left, and none piles up while the
    program still runs."""
    result = _run(
        """
        import os, tempfile
        import multiprocessing as mp
        from taskmeter import Task

        def job(i):
            with Task(f"job {i}"):
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
            os._exit(0)

        if __name__ == "__main__":
            with Task("root") as root:
                workers = [mp.get_context("fork").Process(target=job, args=(i,)) for i in range(3)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join(30)
            assert len(root.subtasks) == 3, root.subtasks
            left = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("taskmeter-")]
            inside = [n for d in left for n in os.listdir(os.path.join(tempfile.gettempdir(), d))]
            print(len(left), inside)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 []"  # this process's own, emptied
    assert _left(tmp_path) == []


@fork_only
def test_worker_task_running_at_exit_is_reported_lost(tmp_path: Path) -> None:
    """A pool outlives its task and the program exits while a worker is mid-task: the
    task is reported lost (workers.lost, with its label), and nothing is left."""
    result = _run(
        """
        import time
        import multiprocessing as mp
        from taskmeter import Task

        def job(i):
            with Task(f"slow job {i}"):
                time.sleep(30)

        if __name__ == "__main__":
            with Task("root"):
                pool = mp.get_context("fork").Pool(1)
                pending = pool.apply_async(job, (7,))
                time.sleep(1.0)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "workers.lost" in result.stderr, result.stderr
    assert "'slow job 7'" in result.stderr, result.stderr
    assert _left(tmp_path) == []


def test_collect_removes_inboxes_of_ended_workers_only(tmp_path: Path) -> None:
    """A worker's inbox inside the parent's goes once its process has ended; a running
    one's stays (its tasks may still have workers)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    inbox = _workers.Inbox(tmp_path)
    running_dir = tmp_path / f"{_workers.NESTED_PREFIX}{os.getpid()}-abc"
    ended_dir = tmp_path / f"{_workers.NESTED_PREFIX}{dead.pid}-def"
    for directory in (running_dir, ended_dir):
        directory.mkdir()
        (directory / "1.journal").write_text("")
    inbox.collect()
    assert running_dir.is_dir()
    assert not ended_dir.exists()


def test_close_reports_tasks_of_running_workers_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the inbox reports, in one warning, the tasks a still-running worker's
    journal holds open: no record of them can come any more."""
    inbox = _workers.Inbox(tmp_path / "inbox")
    inbox.path.mkdir()
    lines = [
        json.dumps({"start": str(uuid.uuid4()), "parent": str(uuid.uuid4()), "label": label})
        for label in ("first", "second")
    ]
    (inbox.path / f"{os.getpid()}.journal").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        inbox.close()
    lost = [r.getMessage() for r in caplog.records if "workers.lost" in r.getMessage()]
    assert len(lost) == 1, lost
    assert "2 worker task(s)" in lost[0] and "'first'" in lost[0] and "'second'" in lost[0]
    assert inbox.lost == 2
    assert not inbox.path.exists()
