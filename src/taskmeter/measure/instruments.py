"""The OpenTelemetry instruments :class:`MeasurementSpanProcessor` records to, by name.

Dashboards are built on these names; they change only with a major version.
Besides these, each metric spec gets a histogram named by its
``package.metric`` (the OpenTelemetry Python SDK lowercases instrument
names), with unit ``s`` or ``By``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .. import attributes as attr

__all__ = [
    "BYTES_BUCKETS",
    "METRIC_ATTRIBUTES",
    "PROCESSOR_ERRORS",
    "SECONDS_BUCKETS",
    "TASK_METRICS",
    "TaskMetric",
]


@dataclass(frozen=True, slots=True)
class TaskMetric:
    """A per-task histogram, recorded from one attribute of each task span."""

    name: str
    """Instrument name."""
    source: str
    """The task-span attribute recorded."""
    unit: str
    """UCUM unit."""
    description: str


TASK_DURATION: Final = "taskmeter.task.duration"
TASK_CPU_TIME: Final = "taskmeter.task.cpu.time"
TASK_MEMORY_PEAK: Final = "taskmeter.task.memory.peak"
TASK_GPU_MEMORY_PEAK: Final = "taskmeter.task.gpu.memory.peak"
TASK_ENERGY_CPU: Final = "taskmeter.task.energy.cpu"
TASK_ENERGY_GPU: Final = "taskmeter.task.energy.gpu"
TASK_ENERGY_SYSTEM: Final = "taskmeter.task.energy.system"
PROCESSOR_ERRORS: Final = "taskmeter.processor.errors"
"""Counter of errors the processor absorbed (attribute ``error.type``)."""

TASK_METRICS: Final[tuple[TaskMetric, ...]] = (
    TaskMetric(TASK_DURATION, attr.DURATION, "s", "Duration of tasks, by label and status"),
    TaskMetric(TASK_CPU_TIME, attr.CPU_TIME, "s", "CPU time of this process during tasks"),
    TaskMetric(TASK_MEMORY_PEAK, attr.MEMORY_PEAK, "By", "Peak RSS during tasks"),
    TaskMetric(TASK_GPU_MEMORY_PEAK, attr.GPU_MEMORY_PEAK, "By", "Peak GPU memory during tasks"),
    TaskMetric(TASK_ENERGY_CPU, attr.ENERGY_CPU, "J", "CPU energy during tasks"),
    TaskMetric(TASK_ENERGY_GPU, attr.ENERGY_GPU, "J", "GPU energy during tasks"),
    TaskMetric(TASK_ENERGY_SYSTEM, attr.ENERGY_SYSTEM, "J", "System energy during tasks"),
)
"""The per-task histograms, recorded for each ending task span that carries the figure."""

ERROR_TYPE: Final = "error.type"
METRIC_TARGET: Final = "taskmeter.metric.target"

METRIC_ATTRIBUTES: Final[dict[str, str]] = {
    attr.TASK_LABEL: "the task's label (task metrics); the enclosing task's (Measurements)",
    attr.TASK_STATUS: "finished / failed / cancelled (task metrics)",
    attr.MACHINE: "the machine label, when set (task metrics)",
    attr.HOST_NAME: "the host the span ran on",
    METRIC_TARGET: "the spec's target, e.g. isr.run (Measurements)",
    ERROR_TYPE: "the exception's class name (processor errors)",
}
"""Attributes of the data points, and what they hold."""

SECONDS_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
)
"""Advisory histogram boundaries for seconds (1 ms to a day)."""

BYTES_BUCKETS: Final = tuple(float(1 << shift) for shift in range(20, 41))
"""Advisory histogram boundaries for bytes (1 MiB to 1 TiB, powers of two)."""

JOULES_BUCKETS: Final = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
"""Advisory histogram boundaries for joules."""

BUCKETS_BY_UNIT: Final = {"s": SECONDS_BUCKETS, "By": BYTES_BUCKETS, "J": JOULES_BUCKETS}
