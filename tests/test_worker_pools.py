"""Worker pools as ML and science pipelines reach them: joblib, DataLoader, killed workers.

Workers burn known CPU seconds inside tasks (``time.process_time``, so each
task's own figure is at least its burn); their records must come back into the
task that called the pool, exactly once, with ``total_cpu()`` adding exactly
their figures; their spans, exported from the workers over OTLP/HTTP to a sink
on 127.0.0.1, must be children of the calling task's span.  Tolerance: a
worker task's CPU is its process's over the task, so it may exceed the burn by
the task's own bookkeeping and what the worker's other threads (joblib's and
torch's queue threads) do meanwhile: ``CPU_SLACK_S`` per task, as in
tests/test_multiprocess.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import taskmeter
from taskmeter import Task, _workers
from taskmeter.multiprocess import get_context, with_parent
from taskmeter.testing import SpanCapture
from tests import mp_workers, pool_workers
from tests.collector import OtlpSink, wait_until
from tests.worker_fixtures import CPU_SLACK_S, fork_only, fresh_inbox  # noqa: F401 (autouse)
from tests.worker_fixtures import check_worker_cpu as _check_worker_cpu

joblib = pytest.importorskip("joblib")

BURN_S = 0.1
ROOT = Path(__file__).resolve().parent.parent


def check_worker_cpu(parent: Task, burns: int) -> None:
    _check_worker_cpu(parent, burns, BURN_S)


def worker_records(parent: Task, label: str) -> list[Task]:
    return [t for t in parent.subtasks if t.label == label]


def sink_spans(sink: OtlpSink, expected: int) -> dict[str, list[Any]]:
    """The spans the sink received, by name, once ``expected`` of them are there."""
    assert wait_until(lambda: len(sink.spans()) >= expected, 15.0), len(sink.spans())
    time.sleep(0.3)  # anything beyond the expected count (duplicates) arrives too
    by_name: dict[str, list[Any]] = {}
    for span in sink.spans():
        by_name.setdefault(span.name, []).append(span)
    return by_name


@pytest.fixture
def exported(otlp_sink: OtlpSink) -> Iterator[OtlpSink]:
    """This process's task spans (and forked workers', which inherit the provider) go
    over OTLP/HTTP to the sink."""
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_sink.endpoint}/v1/traces"))
    )
    taskmeter.use_tracer_provider(provider)
    try:
        yield otlp_sink
    finally:
        taskmeter.use_tracer_provider(None)
        provider.shutdown()


# ---------------------------------------------------------------- joblib


def test_joblib_loky_reports_each_wrapped_call_to_its_callers_task_once(
    exported: OtlpSink,
) -> None:
    """loky (joblib's default) reuses fresh-interpreter workers across calls: a plain
    function's tasks there have no parent; delayed(with_parent(fn)) makes each call's
    task a subtask of the task current where it was wrapped, across two Parallel calls
    under two tasks served by the same workers, each record once, CPU counted, spans
    (set up by parallel_config(initializer=...)) children of the caller's span."""
    from joblib import Parallel, delayed, parallel_config

    endpoint = f"{exported.endpoint}/v1/traces"
    with parallel_config("loky", initializer=mp_workers.setup_otlp, initargs=(endpoint,)):
        with Task("first") as first:
            [naive] = Parallel(n_jobs=2)(delayed(mp_workers.burn_task)(0.0, "naive") for _ in [0])
            scored = with_parent(mp_workers.burn_task)
            one = Parallel(n_jobs=2)(delayed(scored)(BURN_S, "loky") for _ in range(4))
        with Task("second") as second:
            scored = with_parent(mp_workers.burn_task)
            two = Parallel(n_jobs=2)(delayed(scored)(BURN_S, "loky") for _ in range(2))
    assert naive["subprocess"] is False and naive["parent_id"] == "None"
    assert {r["pid"] for r in two} <= {r["pid"] for r in one}  # the same workers served both
    for parent, results in ((first, one), (second, two)):
        records = worker_records(parent, "loky")
        assert sorted(str(t.task_id) for t in records) == sorted(r["task_id"] for r in results)
        assert all(t.subprocess and t.parent_id == parent.task_id for t in records)
        assert {r["trace_id"] for r in results} == {parent.trace_id}
        check_worker_cpu(parent, len(results))
    assert len(first.subtasks) == 4 and len(second.subtasks) == 2
    taskmeter.tracing.current_tracer_provider().force_flush()  # type: ignore[union-attr]
    by_name = sink_spans(exported, 9)
    assert sum(len(v) for v in by_name.values()) == 9  # no span lost or sent twice
    assert len(by_name["loky"]) == 6
    assert sorted(s.parent_span_id.hex() for s in by_name["loky"]) == sorted(
        [first.span_id] * 4 + [second.span_id] * 2
    )
    assert len(by_name["naive"]) == 1 and not by_name["naive"][0].parent_span_id


@fork_only
def test_joblib_multiprocessing_backend_needs_nothing_under_fork() -> None:
    """joblib's multiprocessing backend forks its pool inside the call: a plain function's
    tasks are subtasks of the calling task, each once, their CPU counted."""
    from joblib import Parallel, delayed

    with Task("mp backend") as parent:
        results = Parallel(n_jobs=2, backend="multiprocessing")(
            delayed(mp_workers.burn_task)(BURN_S, "pooled") for _ in range(4)
        )
    records = worker_records(parent, "pooled")
    assert sorted(str(t.task_id) for t in records) == sorted(r["task_id"] for r in results)
    assert all(r["parent_id"] == str(parent.task_id) for r in results)
    check_worker_cpu(parent, 4)


def test_joblib_threading_backend_nests_wrapped_calls_in_the_callers_task(
    spans: SpanCapture,
) -> None:
    """joblib's threads start with no active task: a plain function's tasks are roots;
    with_parent(fn) runs the call with the wrapping place's context, so its tasks are
    in-process subtasks of the caller (spans its children, one trace), CPU not counted
    twice; with_parent(fn, parent=task) names a task that is not current."""
    from joblib import Parallel, delayed

    with Task("threads") as parent:
        [plain] = Parallel(n_jobs=2, backend="threading")(
            delayed(mp_workers.burn_task)(0.0, "plain") for _ in [0]
        )
        Parallel(n_jobs=2, backend="threading")(
            delayed(with_parent(mp_workers.burn_task))(0.02, "threaded") for _ in range(4)
        )
        with Task("other") as other:
            Parallel(n_jobs=2, backend="threading")(
                delayed(with_parent(mp_workers.burn_task, parent=parent))(0.0, "named")
                for _ in range(1)
            )
    assert plain["parent_id"] == "None"
    assert [t.label for t in parent.subtasks].count("threaded") == 4
    assert [t.label for t in parent.subtasks].count("named") == 1
    assert not any(t.subprocess for t in parent.subtasks)
    assert parent.total_cpu() == parent.cpu_time  # threads' CPU is the process's own
    parent_span = spans.one("threads")
    for span in [*spans.named("threaded"), *spans.named("named")]:
        assert span.parent is not None and span.parent.span_id == parent_span.context.span_id
        assert span.context.trace_id == parent_span.context.trace_id
    assert spans.one("plain").parent is None
    assert other.subtasks == []


# ---------------------------------------------------------------- pools replacing workers


def test_a_context_made_outside_tasks_gives_replacement_workers_their_starters_task() -> None:
    """A spawn context made at import time (no task current): an executor with
    max_tasks_per_child replaces its worker from its own thread, where no task runs; the
    new workers' tasks still go to the task that started the executor's first worker."""
    spawn = get_context("spawn")
    with (
        Task("replaced") as parent,
        ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as executor,
    ):
        results = list(executor.map(mp_workers.burn_task, [BURN_S] * 3, ["fresh"] * 3))
    assert len({r["pid"] for r in results}) == 3  # a new worker for each call
    assert all(r["parent_id"] == str(parent.task_id) for r in results)
    assert len(worker_records(parent, "fresh")) == 3
    check_worker_cpu(parent, 3)


def test_a_start_without_task_through_a_context_two_running_tasks_used_is_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two tasks running at once in two threads have started processes through one
    context: a process started through it where no task runs cannot tell whose its
    tasks are; it gets no parent, and taskmeter says so once."""
    import threading

    spawn = get_context("spawn")
    started = threading.Barrier(3)
    done = threading.Event()

    tasks: list[Task] = []

    def start_in_task(label: str) -> None:
        with Task(label) as task:
            tasks.append(task)
            process = spawn.Process(target=mp_workers.burn_task, args=(0.0, "in " + label))
            process.start()
            process.join()
            started.wait(20)
            done.wait(20)

    threads = [threading.Thread(target=start_in_task, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    try:
        started.wait(20)
        orphan = spawn.Process(target=mp_workers.burn_task, args=(0.0, "orphan"))
        orphan.start()
        orphan.join()
    finally:
        done.set()
        for thread in threads:
            thread.join(20)
    assert orphan.exitcode == 0
    assert sorted(t.label for task in tasks for t in task.subtasks) == ["in a", "in b"]
    assert caplog.text.count("several running tasks started processes") == 1


# ---------------------------------------------------------------- killed workers


def lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "workers.lost" in r.getMessage()]


@fork_only
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_an_executor_worker_dying_mid_task_keeps_what_arrived_and_says_what_is_lost(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that ends inside a task (os._exit, SIGKILL) breaks the executor: the
    parent task ends (failed, the error raised), the records of finished tasks are its
    subtasks, and the task that never finished is counted and named as lost."""
    caplog.set_level(logging.WARNING, "taskmeter")
    fork = multiprocessing.get_context("fork")
    with (
        pytest.raises(BrokenProcessPool),
        Task("broken") as parent,
        ProcessPoolExecutor(2, mp_context=fork) as executor,
    ):
        done = [executor.submit(mp_workers.burn_task, BURN_S, "done") for _ in range(2)]
        [future.result() for future in done]
        executor.submit(pool_workers.die_in_task, how).result()
    assert parent.status.value == "failed"
    assert [t.label for t in parent.subtasks] == ["done", "done"]
    check_worker_cpu(parent, 2)
    inbox = _workers.current_inbox()
    assert inbox is not None and inbox.lost == 1
    [message] = lost(caplog)
    assert "'dying'" in message and str(parent.task_id) in message


def test_a_loky_worker_killed_mid_task_is_said_and_the_parent_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loky worker SIGKILLed inside a wrapped call: joblib raises, the parent task
    finishes (failed) with the records that came, and the lost task is named."""
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    caplog.set_level(logging.WARNING, "taskmeter")
    with pytest.raises(TerminatedWorkerError), Task("loky killed") as parent:
        scored = with_parent(mp_workers.burn_task)
        Parallel(n_jobs=2)(delayed(scored)(BURN_S, "kept") for _ in range(2))
        Parallel(n_jobs=2)(delayed(with_parent(pool_workers.die_in_task))("kill") for _ in [0])
    assert parent.status.value == "failed"
    assert [t.label for t in parent.subtasks] == ["kept", "kept"]
    check_worker_cpu(parent, 2)
    inbox = _workers.current_inbox()
    assert inbox is not None and inbox.lost == 1
    [message] = lost(caplog)
    assert "'dying'" in message


@fork_only
def test_pool_terminate_and_a_killed_pool_worker_neither_hang_nor_lose_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pool.terminate() cuts two running tasks off, and a worker SIGKILLed mid-task leaves
    its result pending (Pool would wait forever; the caller's timeout ends it): the
    parent finishes at once, keeps the finished tasks' records, and counts both losses."""
    caplog.set_level(logging.WARNING, "taskmeter")
    fork = multiprocessing.get_context("fork")
    started = time.monotonic()
    with Task("terminated") as parent:
        pool = fork.Pool(2)
        finished = pool.map(mp_workers.burn_task, [BURN_S] * 2, chunksize=1)
        pool.map_async(pool_workers.hang_in_task, [30.0] * 2, chunksize=1)
        inbox = _workers.current_inbox()
        assert inbox is not None
        journals = inbox.path.glob  # each worker's: two lines per task
        assert wait_until(
            lambda: sum(p.read_text().count("\n") for p in journals("*.journal")) == 6, 10
        )
        pool.terminate()
        pool.join()
        pending = fork.Pool(1)
        result = pending.apply_async(pool_workers.die_in_task, ("kill",))
        with pytest.raises(multiprocessing.TimeoutError):
            result.get(timeout=1.0)
        pending.terminate()
        pending.join()
    assert time.monotonic() - started < 10.0
    assert sorted(str(t.task_id) for t in parent.subtasks) == sorted(r["task_id"] for r in finished)
    check_worker_cpu(parent, 2)
    assert inbox.lost == 3
    [message] = lost(caplog)  # logged once a minute, counted each time
    assert "'cut off'" in message or "'dying'" in message


# ---------------------------------------------------------------- torch DataLoader


def load_epochs(loader: Any, epochs: int, parent: Task) -> list[Task]:
    tasks = []
    for epoch in range(epochs):
        with Task(f"epoch {epoch}") as task:
            items = [index for batch in loader for index in batch.tolist()]
        assert sorted(items) == list(range(len(loader.dataset)))
        tasks.append(task)
    return tasks


@fork_only
def test_dataloader_workers_tasks_are_subtasks_of_each_epoch(exported: OtlpSink) -> None:
    """DataLoader(num_workers=2) forks its workers as each epoch's loop starts: tasks in
    __getitem__ and worker_init_fn are subtasks of that epoch, once each, CPU counted,
    spans children of the epoch's span; the epochs' own figures stay their own."""
    torch_data = pytest.importorskip("torch.utils.data")
    dataset = pool_workers.BurningImages(4, BURN_S)
    loader = torch_data.DataLoader(
        dataset, batch_size=2, num_workers=2, worker_init_fn=pool_workers.init_loader_worker
    )
    with Task("train") as train:
        epochs = load_epochs(loader, 2, train)
    for epoch in epochs:
        labels = sorted(t.label for t in epoch.subtasks)
        assert labels == ["init worker 0", "init worker 1"] + [f"item {i}" for i in range(4)]
        assert all(t.subprocess and t.parent_id == epoch.task_id for t in epoch.subtasks)
        assert epoch.cpu_time is not None and epoch.cpu_time < 4 * BURN_S
        check_worker_cpu(epoch, 4)  # the init tasks add 0.01 s each: within slack
    assert train.total_cpu() == pytest.approx(
        (train.cpu_time or 0.0) + sum((e.total_cpu() or 0.0) - (e.cpu_time or 0.0) for e in epochs)
    )
    taskmeter.tracing.current_tracer_provider().force_flush()  # type: ignore[union-attr]
    by_name = sink_spans(exported, 15)
    for epoch in epochs:
        children = [
            s
            for name, found in by_name.items()
            if name.startswith(("item", "init"))
            for s in found
            if s.parent_span_id.hex() == epoch.span_id
        ]
        assert len(children) == 6
    assert sum(len(v) for v in by_name.values()) == 15  # no span lost or sent twice


@fork_only
def test_persistent_dataloader_workers_report_to_the_task_they_were_forked_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """persistent_workers=True keeps the workers forked under the first epoch: later
    epochs' items report to it, so they arrive after it finished and are filed under the
    nearest running ancestor (warned), which counts every item once."""
    torch_data = pytest.importorskip("torch.utils.data")
    loader = torch_data.DataLoader(
        pool_workers.BurningImages(4, 0.02), batch_size=2, num_workers=2, persistent_workers=True
    )
    with Task("train") as train:
        first, second = load_epochs(loader, 2, train)
    del loader
    assert len(first.subtasks) == 4 and second.subtasks == []
    late = [t for t in train.subtasks if t.subprocess]
    assert sorted(t.label for t in late) == [f"item {i}" for i in range(4)]
    assert all(t.parent_id == first.task_id for t in late)
    assert "persistent_workers" in caplog.text
    items = [t for _, t in train.walk() if t.label.startswith("item")]
    assert len({t.task_id for t in items}) == len(items) == 8


@fork_only
def test_a_program_with_live_persistent_dataloader_workers_exits_promptly(
    tmp_path: Path,
) -> None:
    """A program whose persistent DataLoader workers still run when it exits (their
    tasks delivered) exits at once, not after the workers' flush bounds."""
    pytest.importorskip("torch")
    script = textwrap.dedent(
        """
        from torch.utils.data import DataLoader
        from taskmeter import Task
        from tests.pool_workers import BurningImages

        loader = DataLoader(BurningImages(4, 0.01), batch_size=2, num_workers=2,
                            persistent_workers=True)
        with Task("epoch") as epoch:
            for _ in loader:
                pass
        print(len(epoch.subtasks))
        """
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    assert time.monotonic() - started < 20.0


# ---------------------------------------------------------------- the example


@fork_only
def test_ml_pools_example_prints_tree_and_exports_one_trace(
    otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    """examples/ml_pools.py runs as documented: joblib's loky and threading workers and a
    DataLoader's workers report to their stages, total_cpu() counts the processes' CPU,
    and every span reaches the collector in one trace."""
    pytest.importorskip("torch")
    out = tmp_path / "ml.json"
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink.endpoint)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "ml_pools.py"),
            "--out",
            str(out),
            "--items",
            "2",
            "--seconds",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert "total_cpu(), with the workers" in result.stdout
    pipeline = taskmeter.load_task(out)
    stages = pipeline.subtasks
    assert [s.label for s in stages] == ["joblib loky", "joblib threads", "epoch 1", "epoch 2"]
    for stage in stages:
        assert len(stage.subtasks) == 2
        assert all(t.parent_id == stage.task_id for t in stage.subtasks)
        assert all(t.subprocess == (stage.label != "joblib threads") for t in stage.subtasks)
    worker_cpu = sum(t.cpu_time or 0.0 for s in stages for t in s.subtasks if t.subprocess)
    assert 6 * 0.05 <= worker_cpu <= 6 * (0.05 + CPU_SLACK_S)
    assert pipeline.total_cpu() == pytest.approx((pipeline.cpu_time or 0.0) + worker_cpu)
    spans = sink_spans(otlp_sink, 13)
    assert sum(len(v) for v in spans.values()) == 13
    assert {s.trace_id.hex() for v in spans.values() for s in v} == {pipeline.trace_id}


def test_a_worker_journal_names_the_undelivered_tasks_and_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal a worker keeps lists the tasks started and not delivered (a line cut
    short by a kill is skipped); it is emptied once past its size bound with no task
    open."""
    from taskmeter import _journal

    monkeypatch.setattr(_journal, "_journal", None)
    first, second = Task("first"), Task("second")
    _journal.started(tmp_path, first)
    _journal.started(tmp_path, second)
    _journal.delivered(tmp_path, first)
    [path] = tmp_path.glob("*.journal")
    assert path.name == f"{os.getpid()}.journal"
    assert (path.stat().st_mode & 0o777) == 0o600
    with open(path, "a") as handle:
        handle.write('{"start": "cut')  # a line cut short
    assert [e["label"] for e in _journal.undelivered(path)] == ["second"]
    monkeypatch.setattr(_journal, "MAX_BYTES", 1)
    _journal.delivered(tmp_path, second)
    assert path.stat().st_size == 0
    _journal.delivered(tmp_path, second)  # not open: nothing written
    assert path.stat().st_size == 0
    assert _journal._journal is not None
    os.close(_journal._journal.fd)
