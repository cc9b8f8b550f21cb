"""Task metrics recorded in worker processes reach the collector, as their spans do.

A worker is ended without exit hooks (``Pool.terminate``), so what its
meter provider holds must be exported before its task records go back, as
its spans are; with a spool, it is written there first, so a collector that
never answers does not hold the worker up.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.collector import CollectorUnderTest, MetricPoint, wait_until
from tests.export.servers import silent_endpoint

from .runner import ROOT, flush_spool_into_sink, run_instrumented_program

PROGRAM = ROOT / "tests" / "programs" / "worker_task_metrics.py"
CHUNKS = 4


def run_program(method: str, env: dict[str, str]) -> dict[str, Any]:
    """Run the program under opentelemetry-instrument; its JSON line."""
    ran = run_instrumented_program(
        [str(PROGRAM), method],
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "OTEL_SERVICE_NAME": "worker-metrics",
            **env,
        },
        timeout=120,
    )
    return ran.found


def tasks_counted(points: Iterable[MetricPoint], label: str) -> int:
    """Tasks ``label`` counted by taskmeter.task.duration: each process's series is
    cumulative, so its last point counts."""
    last: dict[Any, int] = {}
    for point in points:
        if point.attributes.get("taskmeter.task.label") == label:
            last[point.resource.get("service.instance.id")] = int(point.point.count)
    return sum(last.values())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_task_metrics_reach_the_collector(
    rotel_collector: CollectorUnderTest, method: str
) -> None:
    """Every task of the workers is counted on taskmeter.task.duration, not only the parent's."""
    run_program(method, {"OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.http_endpoint})
    sink = rotel_collector.sink

    def counted() -> bool:
        points = sink.metric_points("taskmeter.task.duration")
        return tasks_counted(points, "chunk") >= CHUNKS and tasks_counted(points, "stage") >= 1

    wait_until(counted, 10.0)
    points = sink.metric_points("taskmeter.task.duration")
    assert tasks_counted(points, "chunk") == CHUNKS
    assert tasks_counted(points, "stage") == 1


def test_worker_task_metrics_wait_in_the_spool_without_holding_the_workers(
    tmp_path: Path,
) -> None:
    """A collector that never answers: the workers' metrics go to the spool (no network wait
    in a worker), and `taskmeter flush` delivers every task's count later."""
    spool = tmp_path / "spool"
    with silent_endpoint() as silent:
        found = run_program(
            "fork",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": silent.url,
                "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
                "TASKMETER_SPOOL_DIR": str(spool),
            },
        )
    assert found["pool_s"] < 2.5  # a worker that tried the network waited out its flush (5 s)
    points = flush_spool_into_sink(
        spool, lambda sink: sink.metric_points("taskmeter.task.duration")
    )
    assert tasks_counted(points, "chunk") == CHUNKS
    assert tasks_counted(points, "stage") == 1
