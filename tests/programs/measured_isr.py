"""A task whose timed methods cost known amounts, measured from its spans and its metadata.

    python measured_isr.py

``sleep`` sleeps 0.3 s, ``burn`` burns 0.4 s of CPU and ``allocate``
writes to 256 MiB of fresh memory.  Prints, as JSON, the resident set size
just before ``allocate`` (bytes), the Measurements of the metadata and the
histograms the MeasurementSpanProcessor recorded.  Its peak resident set
before ``allocate`` is its resident set then only if it was not started by
``fork`` from a larger process (Linux carries the parent's peak into
``ru_maxrss`` across ``exec``): the test starts it through a shell.  Used by
tests/measure/test_ground_truth.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from taskmeter import time_method
from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor, MemoryMetric, TimingMetric
from taskmeter.testing import capture_spans

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers import MIB, burn_cpu, current_rss, touch_bytes

SLEEP_S = 0.3
BURN_S = 0.4
ALLOCATE_BYTES = 256 * MIB

SPECS = (
    TimingMetric(target="isr.sleep", package="ip_isr", metric="SleepTime"),
    CpuTimingMetric(target="isr.burn", package="ip_isr", metric="BurnCpuTime"),
    MemoryMetric(target="isr.allocate", package="ip_isr", metric="AllocateMemory"),
)


class IsrTask:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def getFullName(self) -> str:
        return "isr"

    @time_method
    def sleep(self) -> None:
        time.sleep(SLEEP_S)

    @time_method
    def burn(self) -> None:
        burn_cpu(BURN_S)

    @time_method
    def allocate(self) -> None:
        block = touch_bytes(ALLOCATE_BYTES)
        del block


def main() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    task = IsrTask()
    with capture_spans(MeasurementSpanProcessor(SPECS, meter_provider=provider)):
        task.sleep()
        task.burn()
        rss_before = current_rss()
        task.allocate()
    recorded: dict[str, Any] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                (point,) = metric.data.data_points
                recorded[metric.name] = {
                    "unit": metric.unit,
                    "sum": point.sum,
                    "count": point.count,
                }
    provider.shutdown()
    measured = {spec.metric_name: spec.measure({"isr": task.metadata}).to_dict() for spec in SPECS}
    peak_before = task.metadata["allocateStartMaxResidentSetSize"][-1]
    json.dump(
        {
            "rss_before": rss_before,
            "peak_before": peak_before,
            "recorded": recorded,
            "measured": measured,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
