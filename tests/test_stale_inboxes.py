"""Top-level worker inboxes of processes that ended without exit hooks are removed by
the next process that makes one; those of live processes, or of processes that cannot
be told apart from live ones, are left.

The cases with real processes run them with a private ``TMPDIR``, so the
directories they leave there can be counted and nothing else is touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmeter import _log, _stale_inboxes
from taskmeter._stale_inboxes import Owner
from tests.worker_fixtures import fork_only

ROOT = Path(__file__).resolve().parent.parent

MAKE_INBOX = "from taskmeter import _workers; _workers.ensure_inbox()"


def _env(tmpdir: Path) -> dict[str, str]:
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    for name in ("TASKMETER_PARENT_TASK", "TASKMETER_SUBTASK_DIR"):
        env.pop(name, None)
    return env


def _run(script: str, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=_env(tmpdir),
    )


def _left(tmpdir: Path) -> list[str]:
    return sorted(name for name in os.listdir(tmpdir) if name.startswith("taskmeter-"))


def _ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


@pytest.fixture
def me() -> Owner:
    owner = _stale_inboxes.own_owner()
    if owner is None:
        pytest.skip("no /proc: the owner of an inbox cannot be told")
    return owner


@pytest.fixture(autouse=True)
def sweep_again() -> Iterator[None]:
    """Each test may sweep once more in this process."""
    _stale_inboxes._swept_by = None
    yield
    _stale_inboxes._swept_by = None


@fork_only
def test_inbox_left_by_os_exit_is_removed_by_the_next_process(tmp_path: Path) -> None:
    """A process that forks inside its task and leaves by os._exit leaves its inbox; the
    next process that makes one removes it (and its own at exit)."""
    killed = _run(
        """
        import os
        from taskmeter import Task

        with Task("root"):
            pid = os.fork()
            if pid == 0:
                with Task("child"):
                    pass
                os._exit(0)
            os.waitpid(pid, 0)
        os._exit(0)
        """,
        tmp_path,
    )
    assert killed.returncode == 0, killed.stderr
    assert len(_left(tmp_path)) == 1, "os._exit runs no exit hook"
    later = _run(MAKE_INBOX, tmp_path)
    assert later.returncode == 0, later.stderr
    assert _left(tmp_path) == []


def test_inbox_of_live_process_is_kept_and_removed_once_killed(tmp_path: Path) -> None:
    """A running process's inbox survives another process's sweep; once it is killed with
    SIGKILL, the next sweep removes it."""
    script = f"{MAKE_INBOX}; print('ready', flush=True); import time; time.sleep(60)"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path),
    )
    try:
        assert sleeper.stdout is not None
        assert sleeper.stdout.readline().strip() == "ready"
        [inbox] = _left(tmp_path)
        (tmp_path / inbox / "record.json").write_text("{}")
        assert _run(MAKE_INBOX, tmp_path).returncode == 0
        assert _left(tmp_path) == [inbox]
        assert (tmp_path / inbox / "record.json").exists()
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait(timeout=30)
    assert _left(tmp_path) == [inbox]
    assert _run(MAKE_INBOX, tmp_path).returncode == 0
    assert _left(tmp_path) == []


def test_this_process_makes_its_inbox_named_after_itself(
    me: Owner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox's name records this process's pid, start time and scope."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = _stale_inboxes.make_inbox_directory()
    assert path.parent == tmp_path
    assert Owner.parse(path.name) == me
    assert not _stale_inboxes.owner_gone(me)


def _inbox(tmp_path: Path, owner: Owner, suffix: str = "abcd1234") -> Path:
    path = tmp_path / f"{owner.prefix()}{suffix}"
    path.mkdir()
    (path / "record.json").write_text("{}")
    return path


def test_only_inboxes_whose_owner_is_certainly_gone_are_removed(me: Owner, tmp_path: Path) -> None:
    """Removed: an ended pid, and this process's pid with another start time (the pid was
    reused: the directory is older than this process).  Kept: this process's own, another
    boot's or PID namespace's (its pid means nothing here), a name of another form, and
    anything that is not a directory."""
    dead = _ended_pid()
    ended = _inbox(tmp_path, Owner(dead, 1, me.scope))
    reused = _inbox(tmp_path, Owner(me.pid, me.start - 1, me.scope))
    own = _inbox(tmp_path, me)
    elsewhere = _inbox(tmp_path, Owner(dead, 1, "0" * 12))
    earlier_form = tmp_path / f"taskmeter-workers-{dead}-abcd1234"
    earlier_form.mkdir()
    not_a_directory = tmp_path / f"{Owner(dead, 2, me.scope).prefix()}file"
    not_a_directory.write_text("")
    link = tmp_path / f"{Owner(dead, 3, me.scope).prefix()}link"
    link.symlink_to(own)

    assert _stale_inboxes.remove_stale(me, str(tmp_path)) == 2

    assert not ended.exists() and not reused.exists()
    for kept in (own, elsewhere, earlier_form, not_a_directory, link):
        assert kept.exists(), kept
    assert (own / "record.json").exists()
    assert _left(tmp_path) == sorted(
        p.name for p in (own, elsewhere, earlier_form, not_a_directory, link)
    )


def test_sweeps_once_per_process_and_at_most_a_bounded_number(
    me: Owner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sweep per process, removing at most MAX_REMOVED inboxes."""
    monkeypatch.setattr(_stale_inboxes, "MAX_REMOVED", 2)
    dead = _ended_pid()
    for start in range(3):
        _inbox(tmp_path, Owner(dead, start, me.scope))
    assert _stale_inboxes.remove_stale(me, str(tmp_path)) == 2
    assert len(_left(tmp_path)) == 1
    assert _stale_inboxes.remove_stale(me, str(tmp_path)) == 0
    assert len(_left(tmp_path)) == 1


def test_errors_are_counted_never_raised(
    me: Owner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inbox that cannot be removed, or a directory that cannot be listed: counted as
    workers.stale, and the sweep returns."""
    _inbox(tmp_path, Owner(_ended_pid(), 1, me.scope))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("refused")

    before = _log.error_counts["workers.stale"]
    monkeypatch.setattr(_stale_inboxes.shutil, "rmtree", refuse)
    assert _stale_inboxes.remove_stale(me, str(tmp_path)) == 0
    assert _log.error_counts["workers.stale"] == before + 1

    _stale_inboxes._swept_by = None
    assert _stale_inboxes.remove_stale(me, str(tmp_path / "missing")) == 0
    assert _log.error_counts["workers.stale"] == before + 2


def test_two_processes_sweeping_at_once_remove_each_inbox_once(me: Owner, tmp_path: Path) -> None:
    """Of two sweepers that found the same stale inboxes, the one that claims an inbox
    second finds it gone, quietly."""
    dead = _ended_pid()
    for start in range(4):
        _inbox(tmp_path, Owner(dead, start, me.scope))
    found = _stale_inboxes._stale_in(str(tmp_path), me)
    assert len(found) == 4
    before = _log.error_counts["workers.stale"]
    removed: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: removed.extend(_stale_inboxes._remove(p, me) for p in found)
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(removed) == 4
    assert _left(tmp_path) == []
    assert _log.error_counts["workers.stale"] == before


def test_an_owner_that_cannot_be_inspected_is_not_gone(tmp_path: Path) -> None:
    """A /proc entry that cannot be read or parsed: the owner counts as alive."""
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text("garbage")
    assert not _stale_inboxes.owner_gone(Owner(7, 1, "0" * 12), proc=tmp_path)
    assert _stale_inboxes.owner_gone(Owner(8, 1, "0" * 12), proc=tmp_path)
    fields = " ".join(["S"] + ["0"] * 18 + ["42"] + ["0"] * 10)
    (tmp_path / "7" / "stat").write_text(f"7 (a name) with) {fields}")
    assert not _stale_inboxes.owner_gone(Owner(7, 42, "0" * 12), proc=tmp_path)
    assert _stale_inboxes.owner_gone(Owner(7, 41, "0" * 12), proc=tmp_path)


def _fake_proc(root: Path, *, self_pid: int, time_namespace: str | None) -> Path:
    """A /proc with ``self`` linking to ``self_pid``, whose stat, boot id and namespaces
    are given."""
    proc = root / "proc"
    entry = proc / str(self_pid)
    (entry / "ns").mkdir(parents=True)
    fields = " ".join(["S"] + ["0"] * 18 + ["4242"] + ["0"] * 10)
    (entry / "stat").write_text(f"{self_pid} (python) {fields}")
    os.symlink("pid:[4026531836]", entry / "ns" / "pid")
    if time_namespace is not None:
        os.symlink(time_namespace, entry / "ns" / "time")
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text("b00t\n")
    os.symlink(str(self_pid), proc / "self")
    return proc


def test_the_time_namespace_is_part_of_the_scope(tmp_path: Path) -> None:
    """Start times read in another time namespace are shifted (a live owner would look
    gone): processes of two time namespaces have two scopes, so neither sweeps the
    other's inboxes."""
    pid = os.getpid()
    scopes = set()
    for name, namespace in (("a", "time:[4026531834]"), ("b", "time:[4026532999]"), ("c", None)):
        proc = _fake_proc(tmp_path / name, self_pid=pid, time_namespace=namespace)
        owner = _stale_inboxes.own_owner(proc)
        assert owner is not None and owner.start == 4242
        scopes.add(owner.scope)
    assert len(scopes) == 3


def test_a_proc_of_another_pid_namespace_gives_no_owner(tmp_path: Path) -> None:
    """Under ``unshare -p`` without its own /proc, /proc/self is the host's pid, not
    os.getpid(): the entries of this namespace's pids cannot be read there, so the inbox
    is named the old way (never swept) instead of being judged by another process's."""
    proc = _fake_proc(tmp_path, self_pid=os.getpid() + 1, time_namespace=None)
    assert _stale_inboxes.own_owner(proc) is None
