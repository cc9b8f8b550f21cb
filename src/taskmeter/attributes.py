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

CPU_THREAD: Final = "taskmeter.cpu.thread"
"""Enriched spans: CPU time of the one thread that started and ended the span, while it was open."""
ENRICH: Final = "taskmeter.enrich"
"""Set to ``True`` on a span when it starts to ask for it to be enriched (a marker, read only)."""

ENERGY: Final = {"cpu": ENERGY_CPU, "gpu": ENERGY_GPU, "system": ENERGY_SYSTEM}
ENERGY_SOURCE: Final = {
    "cpu": ENERGY_CPU_SOURCE,
    "gpu": ENERGY_GPU_SOURCE,
    "system": ENERGY_SYSTEM_SOURCE,
}

# Timer spans (taskmeter.time_method, taskmeter.time_this): the keys lsst.utils'
# timeMethod writes into task metadata, one span per call.
TIMER_METHOD: Final = "taskmeter.timer.method"
"""The timed method's name: the prefix of its metadata keys (``run`` in ``runStartUtc``)."""
TIMER_TASK: Final = "taskmeter.timer.task"
"""The LSST task path of the object (``apPipe:ccdProcessor``), as in ``getFullMetadata()``."""
TIMER_VERSION: Final = "taskmeter.timer.version"
"""The metadata version (lsst's ``__version__``; 1: ``MaxResidentSetSize`` in bytes)."""
TASK_LABEL: Final = "taskmeter.task.label"
"""On timer spans: the label of the task the call ran in."""

TIMER_KEY_SUFFIXES: Final = (
    "Utc",
    "CpuTime",
    "UserTime",
    "SystemTime",
    "MaxResidentSetSize",
    "MinorPageFaults",
    "MajorPageFaults",
    "BlockInputs",
    "BlockOutputs",
    "VoluntaryContextSwitches",
    "InvoluntaryContextSwitches",
)
"""The suffixes of lsst's timer keys, in the order lsst.utils writes them."""

_TIMER_SNAKE: Final = {
    "Utc": "utc",
    "CpuTime": "cpu_time",
    "UserTime": "user_time",
    "SystemTime": "system_time",
    "MaxResidentSetSize": "max_resident_set_size",
    "MinorPageFaults": "minor_page_faults",
    "MajorPageFaults": "major_page_faults",
    "BlockInputs": "block_inputs",
    "BlockOutputs": "block_outputs",
    "VoluntaryContextSwitches": "voluntary_context_switches",
    "InvoluntaryContextSwitches": "involuntary_context_switches",
}
_TIMER_UNITS: Final = {
    "Utc": "",
    "CpuTime": "s",
    "UserTime": "s",
    "SystemTime": "s",
    "MaxResidentSetSize": "By",
    "MinorPageFaults": "{fault}",
    "MajorPageFaults": "{fault}",
    "BlockInputs": "{operation}",
    "BlockOutputs": "{operation}",
    "VoluntaryContextSwitches": "{context_switch}",
    "InvoluntaryContextSwitches": "{context_switch}",
}

TIMER_ATTRIBUTES: Final[dict[str, str]] = {
    f"{phase}{suffix}": f"taskmeter.timer.{phase.lower()}.{_TIMER_SNAKE[suffix]}"
    for phase in ("Start", "End")
    for suffix in TIMER_KEY_SUFFIXES
}
"""lsst key without its method prefix (``StartCpuTime``) -> span attribute name."""

TIMER_START_UTC: Final = TIMER_ATTRIBUTES["StartUtc"]
TIMER_END_UTC: Final = TIMER_ATTRIBUTES["EndUtc"]
TIMER_START_CPU_TIME: Final = TIMER_ATTRIBUTES["StartCpuTime"]
TIMER_END_CPU_TIME: Final = TIMER_ATTRIBUTES["EndCpuTime"]
TIMER_END_MAX_RESIDENT_SET_SIZE: Final = TIMER_ATTRIBUTES["EndMaxResidentSetSize"]

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
    CPU_THREAD: "s",
    ENRICH: "",
    MEMORY_PEAK: "By",
    GPU_MEMORY_PEAK: "By",
    ENERGY_CPU: "J",
    ENERGY_GPU: "J",
    ENERGY_SYSTEM: "J",
    ENERGY_CPU_SOURCE: "",
    ENERGY_GPU_SOURCE: "",
    ENERGY_SYSTEM_SOURCE: "",
    TIMER_METHOD: "",
    TIMER_TASK: "",
    TIMER_VERSION: "",
    TASK_LABEL: "",
    **{
        TIMER_ATTRIBUTES[f"{phase}{suffix}"]: _TIMER_UNITS[suffix]
        for phase in ("Start", "End")
        for suffix in TIMER_KEY_SUFFIXES
    },
}
"""Every ``taskmeter.*`` attribute and its UCUM unit (empty when it has none)."""
