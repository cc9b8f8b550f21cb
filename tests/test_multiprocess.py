"""Tasks in worker processes (taskmeter.multiprocess): one trace, records back, CPU rolled up.

Workers burn known CPU seconds inside tasks; spans go through a real
collector (rotel) to an OTLP sink, from the parent and from the workers, so
trace ids, parent links and span counts are read back from what was exported.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import taskmeter
from taskmeter import Task, _workers, propagation
from taskmeter.figures import Figures
from taskmeter.monitor import get_monitor
from taskmeter.multiprocess import (
    WorkerContext,
    get_context,
    init_worker,
    with_parent,
    worker_context,
)
from taskmeter.probes import SampledProbe
from taskmeter.testing import SpanCapture
from tests import mp_workers
from tests.collector import CollectorUnderTest, wait_until
from tests.worker_fixtures import fork_only, fresh_inbox  # noqa: F401 (autouse)

MIB = 1024 * 1024
BURN_S = 0.15
# A task's CPU time covers its burn plus a little bookkeeping.
CPU_SLACK_S = 0.08


@pytest.fixture
def otlp(rotel_collector: CollectorUnderTest) -> Iterator[tuple[CollectorUnderTest, str]]:
    """Task spans of this process go over OTLP/HTTP to a rotel collector (forked workers
    inherit the provider); yields the collector and its traces endpoint."""
    endpoint = f"{rotel_collector.http_endpoint}/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "taskmeter-parent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    taskmeter.use_tracer_provider(provider)
    try:
        yield rotel_collector, endpoint
    finally:
        taskmeter.use_tracer_provider(None)
        provider.shutdown()


def exported_spans(
    collector: CollectorUnderTest, provider_flush: bool, expected: int
) -> dict[str, list[Any]]:
    """The spans the sink received, by name, once ``expected`` of them are there."""
    from taskmeter.tracing import current_tracer_provider

    provider = current_tracer_provider()
    if provider_flush:
        assert isinstance(provider, TracerProvider)
        provider.force_flush()
    sink = collector.sink
    wait_until(lambda: len(sink.spans()) >= expected, 15.0)
    time.sleep(0.3)  # anything beyond the expected count (duplicates) arrives too
    by_name: dict[str, list[Any]] = {}
    for span in sink.spans():
        by_name.setdefault(span.name, []).append(span)
    return by_name


def check_trace(parent: Task, by_name: dict[str, list[Any]], worker_labels: dict[str, int]) -> None:
    """One span per task, all in the parent's trace, workers' spans children of the parent's."""
    assert parent.trace_id and parent.span_id
    assert len(by_name.get(parent.label, [])) == 1, "the parent span, exactly once"
    parent_span = by_name[parent.label][0]
    assert parent_span.span_id.hex() == parent.span_id
    for label, count in worker_labels.items():
        spans = by_name.get(label, [])
        assert len(spans) == count, f"{label}: {len(spans)} spans, expected {count}"
        for span in spans:
            assert span.trace_id.hex() == parent.trace_id
            assert span.parent_span_id.hex() == parent.span_id
    ids = [s.span_id for spans in by_name.values() for s in spans]
    assert len(ids) == len(set(ids)), "no span exported twice"


def check_records(parent: Task, results: list[dict[str, Any]], label: str) -> None:
    """Each worker task's record is a subtask of the parent, once, marked subprocess."""
    records = [t for t in parent.subtasks if t.label == label]
    assert sorted(str(t.task_id) for t in records) == sorted(r["task_id"] for r in results)
    for record in records:
        assert record.subprocess is True
        assert record.parent_id == parent.task_id
        assert record.pid != os.getpid()
        assert record.cpu_time is not None
        assert BURN_S <= record.cpu_time <= BURN_S + CPU_SLACK_S
    for result in results:
        assert result["subprocess"] is True
        assert result["parent_id"] == str(parent.task_id)
        assert result["trace_id"] == parent.trace_id


def check_cpu(parent: Task, worker_tasks: int) -> None:
    """total_cpu() is the parent's own CPU plus the workers' burns; cpu_time is its own only."""
    assert parent.cpu_time is not None
    total = parent.total_cpu()
    assert total is not None
    workers = sum(t.cpu_time or 0.0 for t in parent.subtasks if t.subprocess)
    assert total == pytest.approx(parent.cpu_time + workers)
    assert worker_tasks * BURN_S <= total - parent.cpu_time <= worker_tasks * (BURN_S + CPU_SLACK_S)
    # The parent waited while the workers burned: their CPU is not in its own figure.
    assert parent.cpu_time < worker_tasks * BURN_S


@fork_only
def test_fork_process_pool_and_executor_join_one_trace_and_roll_up_cpu(
    otlp: tuple[CollectorUnderTest, str],
) -> None:
    """fork needs no code: Process, Pool (terminated by its with-block) and ProcessPoolExecutor
    workers' tasks are subtasks of the task that started them, in its trace, CPU included."""
    collector, _ = otlp
    fork = multiprocessing.get_context("fork")
    with Task("fork parent") as parent:
        process = fork.Process(target=mp_workers.burn_task, args=(BURN_S, "fork process"))
        process.start()
        process.join()
        with fork.Pool(2) as pool:
            pool_results = pool.starmap(mp_workers.burn_task, [(BURN_S, "fork pool")] * 4)
        with ProcessPoolExecutor(2, mp_context=fork) as executor:
            executor_results = list(
                executor.map(mp_workers.burn_task, [BURN_S] * 2, ["fork executor"] * 2)
            )
    assert process.exitcode == 0
    check_records(parent, pool_results, "fork pool")
    check_records(parent, executor_results, "fork executor")
    assert len(parent.subtasks) == 7
    assert len({r["pid"] for r in pool_results}) == 2
    check_cpu(parent, 7)
    by_name = exported_spans(collector, True, 8)
    check_trace(parent, by_name, {"fork process": 1, "fork pool": 4, "fork executor": 2})
    worker_span = by_name["fork pool"][0]
    attributes = {kv.key: kv.value for kv in worker_span.attributes}
    assert attributes["taskmeter.task.subprocess"].bool_value is True
    parent_attributes = {kv.key: kv.value for kv in by_name["fork parent"][0].attributes}
    assert parent_attributes["taskmeter.cpu.total"].double_value == pytest.approx(
        parent.total_cpu()
    )


def test_spawn_workers_join_one_trace_with_one_line(otlp: tuple[CollectorUnderTest, str]) -> None:
    """spawn: get_context("spawn") for a Process and an executor, init_worker for a Pool;
    the workers export their own spans, in the parent's trace, and their records come back."""
    collector, endpoint = otlp
    spawn = get_context("spawn")
    with Task("spawn parent") as parent:
        process = spawn.Process(
            target=mp_workers.process_main, args=(endpoint, BURN_S, "spawn process")
        )
        process.start()
        process.join()
        plain = multiprocessing.get_context("spawn")
        with plain.Pool(
            2,
            initializer=init_worker,
            initargs=(worker_context(), mp_workers.setup_otlp, endpoint),
        ) as pool:
            pool_results = pool.starmap(mp_workers.burn_task, [(BURN_S, "spawn pool")] * 2)
        with ProcessPoolExecutor(
            1, mp_context=spawn, initializer=mp_workers.setup_otlp, initargs=(endpoint,)
        ) as executor:
            executor_results = [executor.submit(mp_workers.burn_task, BURN_S, "spawn executor")]
            explicit = executor.submit(mp_workers.burn_under, parent, BURN_S).result()
            executor_results = [future.result() for future in executor_results]
    assert process.exitcode == 0
    check_records(parent, pool_results, "spawn pool")
    check_records(parent, executor_results, "spawn executor")
    [record] = [t for t in parent.subtasks if t.label == "explicit"]
    assert str(record.task_id) == explicit["task_id"] and record.subprocess
    assert len(parent.subtasks) == 5
    check_cpu(parent, 5)
    by_name = exported_spans(collector, True, 6)
    check_trace(
        parent,
        by_name,
        {"spawn process": 1, "spawn pool": 2, "spawn executor": 1, "explicit": 1},
    )


@fork_only
def test_a_pool_serving_several_tasks_reports_each_call_to_its_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """with_parent(fn): calls on a pool made before (and outliving) the tasks report to the
    task current where each was wrapped, not to the one current when the workers started."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as executor:
        with Task("first") as first:
            one = list(executor.map(with_parent(mp_workers.burn_task), [0.01] * 2, ["a"] * 2))
        with Task("second") as second:
            two = list(executor.map(with_parent(mp_workers.burn_task), [0.01] * 2, ["b"] * 2))
    assert [t.label for t in first.subtasks] == ["a", "a"]
    assert [t.label for t in second.subtasks] == ["b", "b"]
    assert {r["parent_id"] for r in one} == {str(first.task_id)}
    assert {r["parent_id"] for r in two} == {str(second.task_id)}
    assert one[0]["pid"] == two[0]["pid"]  # one worker served both tasks
    assert "after its parent task" not in caplog.text
    assert with_parent(len)("abc") == 3  # in this process, the function just runs


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver here"
)
def test_forkserver_process_reports_with_the_context() -> None:
    """forkserver: a process of get_context("forkserver") reports to the task that started it."""
    with Task("forkserver parent") as parent:
        process = get_context("forkserver").Process(
            target=mp_workers.burn_task, args=(0.01, "served")
        )
        process.start()
        process.join()
    assert process.exitcode == 0
    [record] = parent.subtasks
    assert record.label == "served" and record.subprocess
    assert record.parent_id == parent.task_id


@fork_only
def test_nested_workers_count_each_cpu_once() -> None:
    """A worker's own worker is its subtask: every level's CPU counted once in total_cpu()."""
    fork = multiprocessing.get_context("fork")
    with Task("top") as top:
        process = fork.Process(target=mp_workers.nested_workers, args=(BURN_S,))
        process.start()
        process.join()
    assert process.exitcode == 0
    [middle] = top.subtasks
    assert middle.label == "middle" and middle.subprocess
    [grandchild] = middle.subtasks
    assert grandchild.label == "grandchild" and grandchild.subprocess
    assert grandchild.parent_id == middle.task_id
    assert middle.cpu_time is not None and grandchild.cpu_time is not None
    # The middle task's own CPU is its burn, not its child's.
    assert BURN_S <= middle.cpu_time <= BURN_S + CPU_SLACK_S
    assert BURN_S <= grandchild.cpu_time <= BURN_S + CPU_SLACK_S
    assert middle.total_cpu() == pytest.approx(middle.cpu_time + grandchild.cpu_time)
    assert top.total_cpu() == pytest.approx(top.cpu_time + middle.cpu_time + grandchild.cpu_time)


class TickingProbe(SampledProbe):
    """A probe sampled by the monitor while one of its tasks is open."""

    name = "ticking"
    sample_interval = 0.05

    def begin(self, *, reset_peak: bool = True) -> int:
        return self._task_opened()

    def read(self, state: int, figures: Figures) -> None:
        return None

    def end(self, state: int) -> None:
        self._task_closed(state)


@fork_only
def test_forked_child_state_is_its_own(tmp_path: Path) -> None:
    """A forked child has no running task, monitor job or peak tracker of its parent's, adopts
    the parent's task, and its peak memory is its own (not the parent's earlier peak)."""
    fork = multiprocessing.get_context("fork")
    ticking = TickingProbe()
    taskmeter.set_probes((*taskmeter.active_probes(), ticking))
    with Task("parent", file=tmp_path / "parent.json") as parent:
        assert ticking.sampling and ticking.open_tasks == 1
        with Task("big"):
            data = bytearray(300 * MIB)
            for offset in range(0, len(data), 4096):
                data[offset] = 1
            del data
        assert get_monitor().job_names()  # the parent's task-file refresh (and more)
        with Task("open while forking"):
            receiver, sender = fork.Pipe(duplex=False)
            process = fork.Process(target=mp_workers.report_child_state, args=(sender, 64))
            process.start()
            state = receiver.recv()
            process.join()
    assert process.exitcode == 0
    assert state["running"] == 0
    assert state["current"] is False
    assert state["monitor_jobs"] == []
    assert state["peak_trackers"] == 0
    assert state["sampled_open"] == 0
    opener = next(t for t in parent.subtasks if t.label == "open while forking")
    assert state["inherited_parent"] == str(opener.task_id)
    assert state["flush_spans"] is True
    # The child's peak: what it held at the start plus its 64 MiB, not the parent's 300 MiB.
    assert state["peak_memory"] >= state["rss_at_start"] + 60 * MIB
    assert state["peak_memory"] <= state["rss_at_start"] + 100 * MIB
    assert parent.peak_memory is not None and parent.peak_memory >= 300 * MIB
    assert parent.peak_memory > state["peak_memory"] + 150 * MIB
    [record] = opener.subtasks
    assert str(record.task_id) == state["task_id"]
    assert record.peak_memory == state["peak_memory"]


@fork_only
def test_child_leaving_a_copied_task_neither_ends_its_span_nor_writes_its_file(
    otlp: tuple[CollectorUnderTest, str], tmp_path: Path
) -> None:
    """A child forked with os.fork that leaves the with-block of its parent's task (a copy)
    exports no second span, writes no file and delivers no record of it."""
    collector, _ = otlp
    path = tmp_path / "outer.json"
    with Task("outer", file=path) as outer:
        pid = os.fork()
        if pid == 0:  # the child: always leave through os._exit
            code = 1
            try:
                with Task("in child"):
                    mp_workers.burn_cpu(0.02)
                with Task("explicit in child", parent=outer):  # the copy, as a parent
                    pass
                outer.__exit__(None, None, None)  # what falling through the block does
                code = 0 if Task.current() is None else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert '"status":"running"' in path.read_text()
    assert [t.label for t in outer.subtasks] == ["in child", "explicit in child"]
    assert all(t.subprocess for t in outer.subtasks)
    by_name = exported_spans(collector, True, 3)
    assert len(by_name["outer"]) == 1
    assert len(by_name["in child"]) == 1
    [explicit] = by_name["explicit in child"]
    assert explicit.parent_span_id.hex() == outer.span_id
    assert '"status":"finished"' in path.read_text()


def test_records_are_idempotent_by_task_id(tmp_path: Path) -> None:
    """Delivering a task's record again replaces it: one subtask per task id."""
    with Task("parent") as parent:
        context = worker_context()
        assert context is not None and context.inbox is not None
        inbox = Path(context.inbox)
        record = Task.model_validate(
            {"label": "w", "parent_id": parent.task_id, "subprocess": True, "cpu_time": 1.0}
        )
        propagation.write_record(inbox, record)
        assert _workers.ensure_inbox().collect() == 1
        propagation.write_record(inbox, record.model_copy(update={"cpu_time": 2.0}))
        propagation.write_record(inbox, record.model_copy(update={"cpu_time": 3.0}))
    assert [t.task_id for t in parent.subtasks] == [record.task_id]
    assert parent.subtasks[0].cpu_time == 3.0
    assert parent.total_cpu() == pytest.approx((parent.cpu_time or 0.0) + 3.0)
    assert list(inbox.iterdir()) == []


def test_inbox_and_records_are_owner_only() -> None:
    """The inbox is a private directory (0700) and records are written 0600."""
    with Task("parent") as parent:
        context = worker_context()
        assert context is not None and context.inbox is not None
        inbox = Path(context.inbox)
        assert stat.S_IMODE(inbox.stat().st_mode) == 0o700
        record = Task.model_validate({"label": "w", "parent_id": parent.task_id})
        propagation.write_record(inbox, record)
        assert stat.S_IMODE((inbox / f"{record.task_id}.json").stat().st_mode) == 0o600
    _workers.close_inbox()
    assert not inbox.exists()


def test_a_late_record_goes_to_the_nearest_running_ancestor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker record whose parent already finished is filed under its running ancestor
    (with a warning); with no ancestor running it is dropped with a warning."""
    with Task("outer") as outer:
        with Task("inner") as inner:
            context = worker_context()
            assert context is not None and context.inbox is not None
        inbox = Path(context.inbox)
        late = Task.model_validate(
            {"label": "late", "parent_id": inner.task_id, "subprocess": True, "cpu_time": 1.0}
        )
        propagation.write_record(inbox, late)
    assert [t.label for t in outer.subtasks] == ["inner", "late"]
    assert inner.subtasks == []
    assert outer.total_cpu() == pytest.approx((outer.cpu_time or 0.0) + 1.0)
    assert "after its parent task" in caplog.text
    orphan = Task.model_validate({"label": "orphan", "parent_id": outer.task_id})
    propagation.write_record(inbox, orphan)
    assert _workers.ensure_inbox().collect() == 0
    assert _workers.ensure_inbox().dropped == 1
    assert "orphan" in caplog.text
    assert list(inbox.iterdir()) == []


@fork_only
def test_monitor_collects_records_while_the_parent_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """During a long task, the monitor files finished worker records periodically, and stops
    once no task with workers runs."""
    monkeypatch.setattr(get_monitor(), "default_interval", 0.05)
    with Task("long parent") as parent:
        process = multiprocessing.get_context("fork").Process(
            target=mp_workers.burn_task, args=(0.02, "early")
        )
        process.start()
        process.join()
        assert wait_until(lambda: len(parent.subtasks) == 1, 5.0)
        inbox = _workers.current_inbox()
        assert inbox is not None and inbox.collecting_periodically
        # The record is filed, then the ended worker's journal is removed.
        assert wait_until(lambda: list(inbox.path.iterdir()) == [], 5.0)
    assert [t.label for t in parent.subtasks] == ["early"]
    assert not inbox.collecting_periodically and inbox.expecting == 0
    assert "workers" not in get_monitor().job_names()


def test_no_worker_no_cost() -> None:
    """Tasks, and forks outside tasks, create no inbox and no monitor job."""
    with Task("alone"), Task("nested"):
        pass
    if "fork" in multiprocessing.get_all_start_methods():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    assert _workers.current_inbox() is None
    assert "workers" not in get_monitor().job_names()


def test_worker_context_api_errors() -> None:
    """worker_context() is None outside tasks; bad arguments are clear errors."""
    assert worker_context() is None
    with Task("done") as done:
        pass
    with pytest.raises(ValueError, match="finished"):
        worker_context(done)
    with pytest.raises(ValueError, match="not running"):
        worker_context(Task("never started"))
    with pytest.raises(TypeError, match="Task"):
        worker_context("parent")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WorkerContext"):
        init_worker("context")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start method"):
        get_context("threads")
    init_worker(None)  # nothing to install


def test_installing_in_the_parent_process_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A worker context installed in the process that made it is ignored with a warning."""
    with Task("parent"):
        context = worker_context()
        assert isinstance(context, WorkerContext)
        context.install()
    assert propagation.inherited is None
    assert "meant for worker processes" in caplog.text


def test_install_adopts_and_flushes(spans: SpanCapture, tmp_path: Path) -> None:
    """Installed in a worker, a context makes top-level tasks subtasks of its parent task,
    in its trace, delivered to its inbox."""
    parent_id = uuid4()
    context = WorkerContext(
        parent_id=parent_id,
        inbox=str(tmp_path),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate=None,
        pid=os.getpid() + 1,  # as if made in another process
    )
    try:
        init_worker(context)
        with Task("worker task") as task:
            pass
    finally:
        propagation.refresh({})
    assert task.parent_id == parent_id and task.subprocess
    span = spans.one("worker task")
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    assert (tmp_path / f"{task.task_id}.json").is_file()


def test_fork_outside_a_task_keeps_the_environment_parent_and_flushes(tmp_path: Path) -> None:
    """A child forked outside any task keeps a parent from `taskmeter run`, now flushing spans."""
    parent = propagation.refresh(
        {propagation.ENV_PARENT_TASK: str(uuid4()), propagation.ENV_SUBTASK_DIR: str(tmp_path)}
    )
    assert parent is not None and not parent.flush_spans
    saved = _workers._flush
    try:
        _workers.child_started(None)
        inherited = propagation.inherited
        assert inherited is not None and inherited.flush_spans
        assert inherited.parent_id == parent.parent_id
        assert inherited.subtask_dir == tmp_path
    finally:
        propagation.refresh({})
        _workers._flush = saved


def test_a_spawned_worker_with_the_environment_parent_flushes_its_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawned worker of a program under `taskmeter run`, given no worker context,
    exports its spans before it delivers a record, as any worker does: its pool may end
    it with SIGTERM (forkserver workers with os._exit), when the SDK's exit hook never runs."""
    parent_id = uuid4()
    monkeypatch.setenv(propagation.ENV_PARENT_TASK, str(parent_id))
    monkeypatch.setenv(propagation.ENV_SUBTASK_DIR, str(tmp_path))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        exported = pool.apply(mp_workers.spans_exported_when_task_ended, ("env worker",))
    assert exported == 1
    [record] = propagation.collect(tmp_path)
    assert record.label == "env worker" and record.subprocess and record.parent_id == parent_id


class StuckProvider(TracerProvider):
    """A provider whose flush hangs (a collector that never answers) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.release.wait(10)
        return True


def test_flush_waits_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's flush waits at most FLUSH_TIMEOUT_S for a stuck exporter, then backs off."""
    monkeypatch.setattr(_workers, "FLUSH_TIMEOUT_S", 0.2)
    monkeypatch.setattr(_workers, "_flush", _workers._FlushState())
    provider = StuckProvider()
    release = provider.release
    taskmeter.use_tracer_provider(provider)
    try:
        start = time.monotonic()
        _workers.flush_spans()
        first = time.monotonic() - start
        release.set()
        start = time.monotonic()
        _workers.flush_spans()  # within the back-off: does not wait
        second = time.monotonic() - start
    finally:
        release.set()
        taskmeter.use_tracer_provider(None)
        provider.shutdown()
    assert 0.2 <= first < 2.0
    assert second < 0.1


@fork_only
def test_a_worker_exits_promptly_when_its_exporter_is_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flush a worker makes as it exits is bounded as the one before each record
    is (FLUSH_TIMEOUT_S, then the back-off): a collector that never answers must not
    hold every worker's exit, and so the pool's join, for the exporter's timeouts."""
    monkeypatch.setattr(_workers, "FLUSH_TIMEOUT_S", 0.2)
    provider = StuckProvider()
    release = provider.release
    taskmeter.use_tracer_provider(provider)
    try:
        with Task("stuck exporter parent") as parent:
            process = multiprocessing.get_context("fork").Process(
                target=mp_workers.burn_task, args=(0.0, "stuck")
            )
            start = time.monotonic()
            process.start()
            process.join(5.0)
            elapsed = time.monotonic() - start
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        release.set()
        taskmeter.use_tracer_provider(None)
        provider.shutdown()
    assert elapsed < 3.0, f"the worker took {elapsed:.1f} s to exit"
    assert process.exitcode == 0
    assert [t.label for t in parent.subtasks] == ["stuck"]


@fork_only
def test_forked_children_use_their_own_exporter_connections(
    rotel_collector: CollectorUnderTest,
) -> None:
    """A forked child starts with none of the exporter's pooled keep-alive connections (it
    would interleave requests with the parent on one socket); parent and workers exporting
    at once lose nothing (the collector sees every span once)."""
    import threading

    import requests

    session = requests.Session()
    endpoint = f"{rotel_collector.http_endpoint}/v1/traces"
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, session=session))
    )
    taskmeter.use_tracer_provider(provider)
    tracer = provider.get_tracer("test")
    stop = threading.Event()
    parent_spans = 0

    def export_from_parent() -> None:
        nonlocal parent_spans
        while not stop.is_set():
            with tracer.start_as_current_span("parent export"):
                pass
            parent_spans += 1
            provider.force_flush()

    thread = threading.Thread(target=export_from_parent)
    try:
        with tracer.start_as_current_span("before fork"):
            pass
        provider.force_flush()  # an idle keep-alive connection is now in the session's pool
        assert mp_workers.pooled_connections(session) == 1
        fork = multiprocessing.get_context("fork")
        with Task("exporting parent"):
            receiver, sender = fork.Pipe(duplex=False)
            process = fork.Process(target=mp_workers.report_connections, args=(session, sender))
            process.start()
            in_child = receiver.recv()
            process.join()
            thread.start()
            try:
                with fork.Pool(4) as pool:
                    pool.starmap(mp_workers.burn_task, [(0.01, "small")] * 40)
            finally:
                stop.set()
                thread.join()
        assert in_child == 0
        assert mp_workers.pooled_connections(session) >= 1  # the parent's are untouched
        expected = 2 + 40 + parent_spans  # "before fork", the task, the workers' tasks
        by_name = exported_spans(rotel_collector, True, expected)
    finally:
        stop.set()
        taskmeter.use_tracer_provider(None)
        provider.shutdown()
    assert len(by_name["small"]) == 40
    assert len(by_name["parent export"]) == parent_spans
    assert sum(len(v) for v in by_name.values()) == expected


def test_parent_given_by_uuid_is_unchanged_outside_workers() -> None:
    """A parent given by id keeps its meaning: not a worker parent, not delivered."""
    other = UUID(int=42)
    with Task("mine", parent=other) as task:
        pass
    assert task.subprocess is False and task.parent_id == other


@fork_only
def test_a_pool_replacing_workers_from_its_own_thread_reports_to_the_task_that_forked(
    caplog: pytest.LogCaptureFixture, spans: SpanCapture
) -> None:
    """A fork Pool with maxtasksperchild forks replacement workers from its own thread,
    where no task runs: their tasks are subtasks of the one task that forked the pool's
    first workers, in its trace, with their CPU counted, and nothing is warned."""
    fork = multiprocessing.get_context("fork")
    with Task("replacing") as replacing, fork.Pool(1, maxtasksperchild=1) as pool:
        results = pool.map(mp_workers.burn_task, [BURN_S] * 3, chunksize=1)
    assert len({r["pid"] for r in results}) == 3  # a new worker for each
    assert sorted(str(t.task_id) for t in replacing.subtasks) == sorted(
        r["task_id"] for r in results
    )
    assert all(r["subprocess"] and r["parent_id"] == str(replacing.task_id) for r in results)
    assert {r["trace_id"] for r in results} == {replacing.trace_id}
    assert replacing.total_cpu() >= replacing.cpu_time + 3 * BURN_S * 0.9
    assert "where no task runs" not in caplog.text


@fork_only
def test_a_fork_from_a_thread_without_task_is_warned_when_two_tasks_have_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two tasks running at once in two threads have each forked a worker: a fork from
    a third thread, where no task runs, cannot tell whose its tasks are; said once."""
    import threading

    forked = threading.Barrier(3)
    done = threading.Event()

    def fork_in_task(label: str) -> None:
        with Task(label), multiprocessing.get_context("fork").Pool(1) as pool:
            pool.map(mp_workers.burn_task, [0.0])
            forked.wait(10)
            done.wait(10)

    threads = [threading.Thread(target=fork_in_task, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    forked.wait(10)
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            [result] = pool.map(mp_workers.burn_task, [0.0])
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert result["subprocess"] is False and result["parent_id"] == "None"
    assert caplog.text.count("where no task runs") == 1


def _burn_handed_tasks(parent: Task, pool: Any) -> float:
    """Two worker tasks given ``parent`` (pickled) as ``Task(..., parent=parent)``; the CPU
    time they burnt, as the workers measured it with ``time.thread_time``."""
    burnt = pool.starmap(mp_workers.burn_thread_time_under, [(parent, BURN_S)] * 2)
    return float(sum(burnt))


def _check_handed_tasks(
    root: Task, inner: Task, burnt: float, caplog: pytest.LogCaptureFixture
) -> None:
    assert [t.label for t in inner.subtasks] == ["handed", "handed"]
    assert all(t.subprocess and t.parent_id == inner.task_id for t in inner.subtasks)
    assert root.cpu_time is not None and inner.cpu_time is not None
    workers = sum(t.total_cpu() or 0.0 for t in inner.subtasks)
    assert burnt <= workers <= burnt + 2 * CPU_SLACK_S
    # A task's cpu_time counts its subtasks of this process; total_cpu() adds its workers'.
    assert root.total_cpu() == pytest.approx(root.cpu_time + workers)
    assert inner.total_cpu() == pytest.approx(inner.cpu_time + workers)
    assert "dropped" not in caplog.text and "finished" not in caplog.text


@fork_only
def test_a_running_task_handed_to_fork_pool_workers_gets_their_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task started after its fork pool's workers, handed to them pickled as
    Task(..., parent=task), has their records as subtasks when it finishes (it never
    forked nor took a worker context), and its ancestors' total_cpu() counts them."""
    fork = multiprocessing.get_context("fork")
    with Task("root") as root, fork.Pool(2) as pool, Task("inner") as inner:
        burnt = _burn_handed_tasks(inner, pool)
    _check_handed_tasks(root, inner, burnt, caplog)


def test_a_running_task_handed_to_spawned_workers_with_its_roots_context_gets_their_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same with spawned workers given the root's context (init_worker): the task
    handed to them has their records."""
    spawn = multiprocessing.get_context("spawn")
    with (
        Task("root") as root,
        spawn.Pool(2, initializer=init_worker, initargs=(worker_context(),)) as pool,
        Task("inner") as inner,
    ):
        burnt = _burn_handed_tasks(inner, pool)
    _check_handed_tasks(root, inner, burnt, caplog)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_a_running_task_handed_to_a_pool_made_before_any_task_gets_their_records(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pool made before any task ran knows no task nor inbox: a running task handed to
    its workers pickled, as Task(..., parent=task), carries its process's inbox, so their
    records come back (they were dropped, without a word), under every start method."""
    with (
        multiprocessing.get_context(method).Pool(2) as pool,  # made first: it knows no task
        Task("root") as root,
        Task("inner") as inner,
    ):
        burnt = _burn_handed_tasks(inner, pool)
    _check_handed_tasks(root, inner, burnt, caplog)


def test_a_task_unpickled_on_another_host_or_in_its_own_process_is_not_a_delivery_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A running task's pickle carries its inbox only for processes of its host: one
    read elsewhere (a cluster's worker), or in the task's own process, delivers nowhere
    (its tasks stand under its id, as before)."""
    import pickle

    with Task("root") as root:
        data = pickle.dumps(root)
    assert propagation.handed_parents == {}
    assert pickle.loads(data).task_id == root.task_id
    assert propagation.handed_parents == {}  # its own process: the running task is here

    monkeypatch.setattr(os, "getpid", lambda: root.pid + 1)  # as another process would
    monkeypatch.setattr(propagation, "handed_parents", type(propagation.handed_parents)())
    with monkeypatch.context() as other_host:
        other_host.setattr("taskmeter._process.current_hostname", lambda: "elsewhere")
        pickle.loads(data)
    assert propagation.handed_parents == {}
    pickle.loads(data)  # this host, another process: noted, with the inbox
    inbox = _workers.current_inbox()
    assert inbox is not None
    assert propagation.handed_parents[root.task_id].subtask_dir == inbox.path


@fork_only
def test_records_of_a_handed_task_finished_before_they_came_go_to_its_running_ancestor(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A task handed to a worker finishes before the worker's record comes: the record
    is filed under its nearest running ancestor, said so, not dropped."""
    fork = multiprocessing.get_context("fork")
    started, go = tmp_path / "started", tmp_path / "go"
    with Task("root") as root, fork.Pool(1) as pool:
        with Task("inner") as inner:
            pending = pool.apply_async(
                mp_workers.burn_under_when_told, (inner, BURN_S, str(started), str(go))
            )
            wait_until(started.exists, 30.0)
        go.touch()
        burnt = pending.get(30)
    assert inner.subtasks == []
    [record] = [t for t in root.subtasks if t.subprocess]
    assert record.parent_id == inner.task_id
    assert burnt <= record.total_cpu() <= burnt + CPU_SLACK_S
    assert "dropped" not in caplog.text
    assert "after its parent task" in caplog.text


@fork_only
@pytest.mark.parametrize("how", ["get_context", "init_worker"])
def test_replacement_workers_of_pools_naming_their_task_are_not_warned_about(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two tasks running at once in two threads each have a fork Pool with
    maxtasksperchild whose processes name their task (taskmeter's context, or
    initializer=init_worker): the replacement workers forked from the pools' own
    threads report to their task, and no warning says otherwise."""
    both_forked = threading.Barrier(2)
    subtasks: dict[str, int] = {}

    def run(label: str) -> None:
        with Task(label) as task:
            if how == "get_context":
                pool = get_context("fork").Pool(2, maxtasksperchild=1)
            else:
                fork = multiprocessing.get_context("fork")
                pool = fork.Pool(
                    2, maxtasksperchild=1, initializer=init_worker, initargs=(worker_context(),)
                )
            with pool:
                both_forked.wait(30)
                pool.map(mp_workers.burn_task, [0.0] * 4, chunksize=1)
                both_forked.wait(30)
        subtasks[label] = len(task.subtasks)

    threads = [threading.Thread(target=run, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert subtasks == {"a": 4, "b": 4}
    assert "where no task runs" not in caplog.text


@fork_only
def test_a_worker_task_naming_its_parent_by_id_reports_to_it() -> None:
    """Task(..., parent=<the parent task's id>) in a worker is the worker task that the
    parent expects (LensKit's parent takes a task or its id): marked subprocess, its
    record back in the parent's subtasks and its CPU in total_cpu()."""
    fork = multiprocessing.get_context("fork")
    with Task("parent by id") as parent, fork.Pool(1) as pool:
        result = pool.apply(mp_workers.burn_under_id, (parent.task_id, BURN_S))
    assert result["subprocess"] is True
    [record] = parent.subtasks
    assert str(record.task_id) == result["task_id"]
    assert record.subprocess and record.parent_id == parent.task_id
    check_cpu(parent, 1)


def test_workers_example_prints_tree_and_exports_one_trace(
    rotel_collector: CollectorUnderTest, tmp_path: Path
) -> None:
    """examples/workers.py runs as documented: every worker task is a subtask of its stage,
    total_cpu() counts the workers' CPU, and all spans reach the collector in one trace."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "workers.json"
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=rotel_collector.http_endpoint)
    script = root / "examples" / "workers.py"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--chunks", "2", "--seconds", "0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert "total_cpu(), with the workers" in result.stdout
    document = json.loads(out.read_text())
    stages = document["subtasks"]
    assert [s["label"] for s in stages] == ["fork pool", "spawn executor", "spawn pool"]
    for stage in stages:
        workers = stage["subtasks"]
        assert sorted(w["label"] for w in workers) == ["score chunk 0", "score chunk 1"]
        assert all(w["subprocess"] and w["parent_id"] == stage["task_id"] for w in workers)
        assert all(w["cpu_time"] >= 0.1 for w in workers)
    pipeline = taskmeter.load_task(out)
    assert pipeline.total_cpu() == pytest.approx(
        (pipeline.cpu_time or 0.0)
        + sum(w.cpu_time or 0.0 for s in pipeline.subtasks for w in s.subtasks)
    )
    sink = rotel_collector.sink
    assert wait_until(lambda: len(sink.spans()) >= 10, 15.0)
    time.sleep(0.3)
    spans = sink.spans()
    assert len(spans) == 10
    assert {s.trace_id.hex() for s in spans} == {document["trace_id"]}


def test_a_corrupt_record_is_counted_and_removed_not_raised(tmp_path: Path) -> None:
    """A record that does not load is counted, logged and removed; the others are filed."""
    from taskmeter import _log

    with Task("parent") as parent:
        context = worker_context()
        assert context is not None and context.inbox is not None
        inbox = Path(context.inbox)
        (inbox / f"{uuid4()}.json").write_text("{not json")
        good = Task.model_validate({"label": "good", "parent_id": parent.task_id})
        propagation.write_record(inbox, good)
    assert [t.label for t in parent.subtasks] == ["good"]
    assert _log.error_counts["workers.record"] == 1
    assert list(inbox.iterdir()) == []


def test_a_worker_never_recreates_a_removed_inbox(tmp_path: Path) -> None:
    """A worker whose parent's inbox is gone counts the failed delivery; it creates nothing."""
    from taskmeter import _log

    gone = tmp_path / "gone"
    context = WorkerContext(uuid4(), str(gone), None, None, os.getpid() + 1)
    try:
        context.install()
        with Task("orphaned worker task"):
            pass
    finally:
        propagation.refresh({})
    assert _log.error_counts["propagation.deliver"] == 1
    assert not gone.exists()


@fork_only
def test_records_reach_a_parent_and_workers_that_change_directory_with_tmpdir_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``TMPDIR=.`` (a relative temporary directory), a worker and its parent that
    change their working directory still meet at the inbox: every record comes back."""
    import tempfile

    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(start)
    monkeypatch.setattr(tempfile, "tempdir", ".")
    fork = multiprocessing.get_context("fork")
    with Task("moves") as parent:
        with fork.Pool(2) as pool:
            results = pool.starmap(mp_workers.burn_task_elsewhere, [(BURN_S, str(elsewhere))] * 2)
        os.chdir(elsewhere)
    check_records(parent, results, "burn")
    check_cpu(parent, 2)
    os.chdir(start)
    _workers.close_inbox()
    assert list(start.iterdir()) == []


@fork_only
def test_an_inbox_removed_while_the_process_runs_is_made_again_for_later_workers() -> None:
    """The inbox removed between two tasks (a cleaner of the temporary directory): the
    second task's workers, and those of a pool made before it was removed, deliver."""
    import shutil

    fork = multiprocessing.get_context("fork")
    with Task("first") as first, fork.Pool(1) as pool:
        pool.apply(mp_workers.burn_task, (BURN_S,))
        inbox = _workers.ensure_inbox()
        assert inbox.collect() == 1
        shutil.rmtree(inbox.path)
        with Task("reused pool") as reused:
            results = [pool.apply(with_parent(mp_workers.burn_task), (BURN_S,))]
        check_records(reused, results, "burn")
    assert len(first.subtasks) == 2
    with Task("second") as second, fork.Pool(2) as pool:
        results = pool.map(mp_workers.burn_task, [BURN_S] * 2)
    check_records(second, results, "burn")
    check_cpu(second, 2)
