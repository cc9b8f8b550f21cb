"""Fault rows of worker processes (:mod:`taskmeter.multiprocess`, the parent's inbox of records).

The application's task forks workers (``multiprocessing``, fork) that run tasks of their own.
Spans go through a durable processor to a collector that is away, so what survived of the
workers' telemetry is read back from the shared spool; their task records come back to the
parent's task through its inbox.  A fault counted inside a worker is reported back by the
worker with its result and added to this process's counts.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from taskmeter import Task, _log, _workers, propagation
from taskmeter.export import DurableSpanExporter, DurableSpanProcessor
from tests.export.servers import closed_port
from tests.export.spools import spooled_span_names

from .catalogue import Outcome, cpu_survives, run_application, scenario

COMPONENT = "workers"
CHUNKS = [f"chunk {i}" for i in range(4)]


# ---------------------------------------------------------------- in the workers


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.pid = os.getpid()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_kept: _Kept | None = None


def _worker_log() -> _Kept:
    """This worker's taskmeter warnings (a handler installed once per process)."""
    global _kept
    if _kept is None or _kept.pid != os.getpid():
        _kept = _Kept()
        logging.getLogger("taskmeter").addHandler(_kept)
    return _kept


def _report() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "errors": dict(_log.error_counts),
        "warnings": list(_worker_log().messages),
    }


def chunk(label: str) -> dict[str, Any]:
    """A worker's task."""
    _worker_log()
    with Task(label):
        time.sleep(0.005)
    return _report()


def chunk_cannot_deliver(label: str) -> dict[str, Any]:
    """A worker's task whose record cannot be written into the parent's inbox."""
    _worker_log()
    inbox = propagation.inherited.subtask_dir if propagation.inherited else None
    real = tempfile.mkstemp

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if inbox is not None and Path(str(kwargs.get("dir", ""))) == inbox:
            raise PermissionError(errno.EACCES, "Permission denied", str(inbox))
        return real(*args, **kwargs)

    tempfile.mkstemp = refuse  # type: ignore[assignment]
    with Task(label):
        time.sleep(0.005)
    return _report()


def killed_mid_task(label: str) -> None:
    """Finishes one task, then is killed (SIGKILL: no exit hook runs) inside the next."""
    with Task(f"{label} done"):
        pass
    with Task(f"{label} killed"):
        os.kill(os.getpid(), signal.SIGKILL)


def late(label: str, delay_s: float) -> None:
    """A task that starts after its parent task has finished (the worker was not joined)."""
    time.sleep(delay_s)
    with Task(label):
        pass


# ---------------------------------------------------------------- in the parent


@contextmanager
def _fresh_inbox() -> Iterator[None]:
    _workers.close_inbox()
    _workers._inbox = None
    try:
        yield
    finally:
        _workers.close_inbox()
        _workers._inbox = None


Extra = dict[str, Any]


def _workers_run(tmp_path: Path, during: Callable[[Task, Extra], None]) -> Outcome:
    """Run the application with ``during`` starting its workers; spans to a spool."""
    spool = tmp_path / "spool"
    exporter = DurableSpanExporter(
        spool, endpoint=f"http://127.0.0.1:{closed_port()}", timeout_s=1.0
    )
    processor = DurableSpanProcessor(exporter, schedule_delay_s=0.05)
    extra: Extra = {}
    with _fresh_inbox():
        outcome = run_application(
            tmp_path, processors=[processor], during=lambda task: during(task, extra)
        )
    outcome.extra.update(extra)
    outcome.extra["spooled"] = spooled_span_names(spool)
    return outcome


def _pool_map(function: Callable[[str], dict[str, Any]], extra: Extra) -> None:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        reports = pool.map(function, CHUNKS)
    by_pid: dict[int, dict[str, Any]] = {}
    for report in reports:  # the last report of each worker has its totals
        by_pid[report["pid"]] = report
    extra["workers"] = list(by_pid.values())


def _add_worker_counts(outcome: Outcome, key: str) -> None:
    for report in outcome.extra["workers"]:
        _log.error_counts[key] += report["errors"].get(key, 0)


def _worker_labels(task: Task) -> list[str]:
    return sorted(t.label for t in task.subtasks if t.subprocess)


def _chunk_spans_survive(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert sorted(n for n in outcome.extra["spooled"] if n.startswith("chunk")) == CHUNKS


def _records_lost_spans_kept(outcome: Outcome) -> None:
    _chunk_spans_survive(outcome)
    assert _worker_labels(outcome.task) == []
    for report in outcome.extra["workers"]:  # each worker logged its failure once
        lines = [m for m in report["warnings"] if m.startswith("propagation.deliver")]
        assert len(lines) == 1, report["warnings"]


@scenario(COMPONENT, "permission", counted="propagation.deliver", check=_records_lost_spans_kept)
def _record_directory_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    outcome = _workers_run(tmp_path, lambda task, extra: _pool_map(chunk_cannot_deliver, extra))
    _add_worker_counts(outcome, "propagation.deliver")
    return outcome


def _no_records_spans_kept(outcome: Outcome) -> None:
    _chunk_spans_survive(outcome)
    assert _worker_labels(outcome.task) == []


@scenario(COMPONENT, "disk-full", counted="workers.fork", check=_no_records_spans_kept)
def _inbox_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    real = tempfile.mkdtemp

    def full(*args: Any, **kwargs: Any) -> str:
        if str(kwargs.get("prefix", "")).startswith("taskmeter-workers"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    return _workers_run(tmp_path, lambda task, extra: _pool_map(chunk, extra))


def _good_records_filed(outcome: Outcome) -> None:
    _chunk_spans_survive(outcome)
    assert _worker_labels(outcome.task) == CHUNKS
    assert not list(outcome.extra["inbox"].glob("*.json")), "the bad record was removed"


def _bad_record(text: bytes | Callable[[Task], bytes]) -> Callable[[Task, Extra], None]:
    def during(task: Task, extra: Extra) -> None:
        inbox = _workers.expect_workers(task).path
        data = text(task) if callable(text) else text
        (inbox / f"{uuid.uuid4()}.json").write_bytes(data)
        extra["inbox"] = inbox
        _pool_map(chunk, extra)

    return during


@scenario(COMPONENT, "garbage", counted="workers.record", check=_good_records_filed)
def _corrupt_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _workers_run(tmp_path, _bad_record(b'\x00\xff{"label": [1, 2'))


def _truncated(task: Task) -> bytes:
    record = Task.model_validate(
        {"label": "cut short", "parent_id": str(task.task_id), "subprocess": True}
    )
    text = record.model_dump_json().encode()
    return text[: len(text) // 2]


@scenario(COMPONENT, "unreadable", counted="workers.record", check=_good_records_filed)
def _truncated_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _workers_run(tmp_path, _bad_record(_truncated))


def _orphan(task: Task) -> bytes:
    record = Task.model_validate(
        {"label": "orphan", "parent_id": str(uuid.uuid4()), "subprocess": True}
    )
    return record.model_dump_json().encode()


def _orphan_dropped(outcome: Outcome) -> None:
    _good_records_filed(outcome)
    assert "orphan" not in _worker_labels(outcome.task)


@scenario(COMPONENT, "refused", counted="workers.dropped", check=_orphan_dropped)
def _record_no_task_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # A record whose line of tasks all finished (or never ran here): no task takes it.
    return _workers_run(tmp_path, _bad_record(_orphan))


def _finished_work_survives(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["exitcode"] == -signal.SIGKILL
    assert _worker_labels(outcome.task) == ["worker done"]
    assert "worker done" in outcome.extra["spooled"]
    assert "worker killed" not in outcome.extra["spooled"]


@scenario(COMPONENT, "error", counted=None, check=_finished_work_survives)
def _worker_killed_mid_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # Nothing in taskmeter fails: the parent cannot tell a worker killed in a task from one
    # that had no more to do; what matters is that what the worker finished survives.
    def during(task: Task, extra: Extra) -> None:
        process = multiprocessing.get_context("fork").Process(
            target=killed_mid_task, args=("worker",)
        )
        process.start()
        process.join(30)
        extra["exitcode"] = process.exitcode

    return _workers_run(tmp_path, during)


def _filed_under_the_ancestor(outcome: Outcome) -> None:
    cpu_survives(outcome)
    [stage] = [t for t in outcome.task.subtasks if t.label == "stage"]
    assert stage.subtasks == []
    assert _worker_labels(outcome.task) == ["late chunk"]
    assert "late chunk" in outcome.extra["spooled"]


@scenario(COMPONENT, "timeout", counted="workers.late", check=_filed_under_the_ancestor)
def _parent_finished_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    def during(task: Task, extra: Extra) -> None:
        with Task("stage"):
            process = multiprocessing.get_context("fork").Process(
                target=late, args=("late chunk", 0.3)
            )
            process.start()
        process.join(30)  # the stage did not wait for its worker

    return _workers_run(tmp_path, during)
