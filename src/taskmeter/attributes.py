"""Span attribute names written by taskmeter, with their units.

Custom names live under ``taskmeter.``; standard names are used where an
OpenTelemetry semantic convention exists.  The README's attribute table is
checked against :data:`ATTRIBUTE_UNITS` by the tests.
"""

from __future__ import annotations

from typing import Final

TASK_ID: Final = "taskmeter.task.id"
TASK_PARENT_ID: Final = "taskmeter.task.parent_id"
TASK_STATUS: Final = "taskmeter.task.status"
TASK_SUBPROCESS: Final = "taskmeter.task.subprocess"
MACHINE: Final = "taskmeter.machine"
DURATION: Final = "taskmeter.duration"
CPU_TIME: Final = "taskmeter.cpu.time"
CPU_USER: Final = "taskmeter.cpu.user"
CPU_SYSTEM: Final = "taskmeter.cpu.system"
CPU_TOTAL: Final = "taskmeter.cpu.total"
MEMORY_PEAK: Final = "taskmeter.memory.peak"
GPU_MEMORY_PEAK: Final = "taskmeter.gpu.memory.peak"
ENERGY_CPU: Final = "taskmeter.energy.cpu"
ENERGY_GPU: Final = "taskmeter.energy.gpu"
ENERGY_SYSTEM: Final = "taskmeter.energy.system"
ENERGY_CPU_SOURCE: Final = "taskmeter.energy.cpu.source"
ENERGY_GPU_SOURCE: Final = "taskmeter.energy.gpu.source"
ENERGY_SYSTEM_SOURCE: Final = "taskmeter.energy.system.source"

ENERGY: Final = {"cpu": ENERGY_CPU, "gpu": ENERGY_GPU, "system": ENERGY_SYSTEM}
ENERGY_SOURCE: Final = {
    "cpu": ENERGY_CPU_SOURCE,
    "gpu": ENERGY_GPU_SOURCE,
    "system": ENERGY_SYSTEM_SOURCE,
}

# Standard (semantic-convention) names.
HOST_NAME: Final = "host.name"
PROCESS_PID: Final = "process.pid"
CODE_FUNCTION_NAME: Final = "code.function.name"

ATTRIBUTE_UNITS: Final[dict[str, str]] = {
    TASK_ID: "",
    TASK_PARENT_ID: "",
    TASK_STATUS: "",
    TASK_SUBPROCESS: "",
    MACHINE: "",
    DURATION: "s",
    CPU_TIME: "s",
    CPU_USER: "s",
    CPU_SYSTEM: "s",
    CPU_TOTAL: "s",
    MEMORY_PEAK: "By",
    GPU_MEMORY_PEAK: "By",
    ENERGY_CPU: "J",
    ENERGY_GPU: "J",
    ENERGY_SYSTEM: "J",
    ENERGY_CPU_SOURCE: "",
    ENERGY_GPU_SOURCE: "",
    ENERGY_SYSTEM_SOURCE: "",
}
"""Every ``taskmeter.*`` attribute and its UCUM unit (empty when it has none)."""
