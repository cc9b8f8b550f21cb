"""Workers started by ``spawn`` and ``forkserver``: DataLoader, Pool(maxtasksperchild), executor.

The pools get taskmeter's context (``taskmeter.multiprocess.get_context``),
the one line the README asks for; workers burn known CPU seconds inside
tasks.  Their records must come back into the task that started the workers,
once each, CPU counted within ``CPU_SLACK_S`` per task (as in
tests/test_worker_pools.py), and the spans exported from the workers over
OTLP/HTTP to a sink on 127.0.0.1 must be children of that task's span.

Spawned workers import torch (seconds each on a busy machine): few workers,
little work.  The forkserver preloads ``torch.utils.data`` where this test
starts it, as a program using DataLoader with forkserver would.
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import taskmeter
from taskmeter import Task
from taskmeter.multiprocess import get_context
from tests import mp_workers, pool_workers
from tests.collector import OtlpSink, wait_until
from tests.worker_fixtures import check_worker_cpu as _check_worker_cpu
from tests.worker_fixtures import fresh_inbox  # noqa: F401 (autouse)

BURN_S = 0.05
ITEMS = 4

METHODS = [
    "spawn",
    pytest.param(
        "forkserver",
        marks=pytest.mark.skipif(
            "forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver"
        ),
    ),
]


@pytest.fixture
def traced(otlp_sink: OtlpSink) -> Iterator[OtlpSink]:
    """This process's tasks have real spans (kept here); the workers send theirs to the
    sink, through the set-up each test gives them."""
    provider = TracerProvider()
    taskmeter.use_tracer_provider(provider)
    try:
        yield otlp_sink
    finally:
        taskmeter.use_tracer_provider(None)
        provider.shutdown()


def check_worker_cpu(parent: Task, burns: int) -> None:
    _check_worker_cpu(parent, burns, BURN_S)


def start_method_context(method: str) -> Any:
    """taskmeter's context for ``method``; a forkserver started here preloads torch."""
    context: Any = get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["torch.utils.data", "tests.pool_workers"])
    return context


def spans_by_parent(sink: OtlpSink, expected: int) -> dict[str, list[str]]:
    """The names of the spans the sink received, by parent span id, once ``expected``
    of them are there (and a moment later, so a duplicate would show)."""
    assert wait_until(lambda: len(sink.spans()) >= expected, 15.0), len(sink.spans())
    time.sleep(0.3)
    found: dict[str, list[str]] = {}
    for span in sink.spans():
        found.setdefault(span.parent_span_id.hex(), []).append(span.name)
    return found


def run_epochs(loader: Any, epochs: int) -> tuple[Task, list[Task]]:
    tasks = []
    with Task("train") as train:
        for epoch in range(epochs):
            with Task(f"epoch {epoch}") as task:
                items = [index for batch in loader for index in batch.tolist()]
            assert sorted(items) == list(range(ITEMS))
            tasks.append(task)
    return train, tasks


@pytest.mark.parametrize("method", METHODS)
def test_dataloader_workers_of_each_epoch_report_to_it(traced: OtlpSink, method: str) -> None:
    """DataLoader(num_workers=2, multiprocessing_context=get_context(method)) starts its
    workers as each epoch's loop starts: the items' tasks are that epoch's subtasks, once
    each, CPU counted; their spans (exported by the workers) are children of its span."""
    torch_data = pytest.importorskip("torch.utils.data")
    endpoint = f"{traced.endpoint}/v1/traces"
    loader = torch_data.DataLoader(
        pool_workers.BurningImages(ITEMS, BURN_S),
        batch_size=2,
        num_workers=2,
        multiprocessing_context=start_method_context(method),
        worker_init_fn=functools.partial(pool_workers.init_exporting_loader_worker, endpoint),
    )
    train, epochs = run_epochs(loader, 2)
    for epoch in epochs:
        assert sorted(t.label for t in epoch.subtasks) == [f"item {i}" for i in range(ITEMS)]
        assert all(t.subprocess and t.parent_id == epoch.task_id for t in epoch.subtasks)
        assert {t.trace_id for t in epoch.subtasks} == {train.trace_id}
        check_worker_cpu(epoch, ITEMS)
    assert not any(t.subprocess for t in train.subtasks)
    by_parent = spans_by_parent(traced, 2 * ITEMS)
    assert sum(len(names) for names in by_parent.values()) == 2 * ITEMS  # none sent twice
    for epoch in epochs:
        assert epoch.span_id is not None
        assert sorted(by_parent[epoch.span_id]) == [f"item {i}" for i in range(ITEMS)]


@pytest.mark.parametrize("method", METHODS)
def test_persistent_dataloader_workers_report_to_the_first_epoch(method: str) -> None:
    """persistent_workers=True with get_context(method): the workers start once, under
    the first epoch, and report to it for good; the second epoch's items arrive after it
    finished and are filed under the running ancestor, every item once."""
    torch_data = pytest.importorskip("torch.utils.data")
    loader = torch_data.DataLoader(
        pool_workers.BurningImages(ITEMS, BURN_S),
        batch_size=2,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=start_method_context(method),
    )
    train, (first, second) = run_epochs(loader, 2)
    del loader
    assert sorted(t.label for t in first.subtasks) == [f"item {i}" for i in range(ITEMS)]
    check_worker_cpu(first, ITEMS)
    assert second.subtasks == []
    late = [t for t in train.subtasks if t.subprocess]
    assert sorted(t.label for t in late) == [f"item {i}" for i in range(ITEMS)]
    assert all(t.parent_id == first.task_id for t in late)
    items = [t for _, t in train.walk() if t.label.startswith("item")]
    assert len({t.task_id for t in items}) == len(items) == 2 * ITEMS


@pytest.mark.parametrize("method", METHODS)
def test_pool_replacing_each_worker_reports_every_task_to_its_starter(
    traced: OtlpSink, method: str
) -> None:
    """Pool(2, maxtasksperchild=1) of get_context(method): the workers that replace
    others start from the pool's own thread, where no task runs, and still report to the
    task that made the pool; every task once, CPU counted, spans children of its span."""
    endpoint = f"{traced.endpoint}/v1/traces"
    context = start_method_context(method)
    with (
        Task("replacing") as parent,
        context.Pool(
            2, maxtasksperchild=1, initializer=mp_workers.setup_otlp, initargs=(endpoint,)
        ) as pool,
    ):
        results = pool.starmap(mp_workers.burn_task, [(BURN_S, "pooled")] * ITEMS, chunksize=1)
    assert len({r["pid"] for r in results}) == ITEMS  # a fresh worker for each task
    assert sorted(str(t.task_id) for t in parent.subtasks) == sorted(r["task_id"] for r in results)
    assert all(t.subprocess and t.parent_id == parent.task_id for t in parent.subtasks)
    check_worker_cpu(parent, ITEMS)
    by_parent = spans_by_parent(traced, ITEMS)
    assert parent.span_id is not None
    assert by_parent == {parent.span_id: ["pooled"] * ITEMS}


def test_forkserver_executor_reports_every_task_to_its_starter() -> None:
    """ProcessPoolExecutor(2, mp_context=get_context("forkserver")), first used inside a
    task: each task's record comes back to it once, CPU counted, one trace."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver")
    context = start_method_context("forkserver")
    with Task("scoring") as parent, ProcessPoolExecutor(2, mp_context=context) as executor:
        results = list(executor.map(mp_workers.burn_task, [BURN_S] * ITEMS))
    assert sorted(str(t.task_id) for t in parent.subtasks) == sorted(r["task_id"] for r in results)
    assert all(t.subprocess and t.parent_id == parent.task_id for t in parent.subtasks)
    assert {r["parent_id"] for r in results} == {str(parent.task_id)}
    check_worker_cpu(parent, ITEMS)
