"""taskmeter: measure what coarse units of work cost and publish it through OpenTelemetry.

A :class:`Task` is a span whose attributes carry its wall time, CPU time, peak
memory, peak GPU memory and energy; it is also LensKit's task record, saved
to a JSON file.  :func:`time_method` writes lsst.utils' timer keys into task
metadata and onto spans; :mod:`taskmeter.measure` derives lsst.verify-style
Measurements from them.

The public names are imported on first use (PEP 562), so that ``import
taskmeter`` (and the ``taskmeter`` command, which starts with it) does not pay
for pydantic and OpenTelemetry until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .figures import Figures
    from .formats import friendly_duration
    from .probes import Probe, active_probes, set_probes
    from .render import format_tree
    from .task import Task, TaskStatus
    from .taskfile import TaskFileError, load_task, save_task
    from .timer import TimerResult, log_info, time_method, time_this
    from .tracing import use_tracer_provider

__all__ = [
    "Figures",
    "Probe",
    "Task",
    "TaskFileError",
    "TaskStatus",
    "TimerResult",
    "__version__",
    "active_probes",
    "format_tree",
    "friendly_duration",
    "load_task",
    "log_info",
    "save_task",
    "set_probes",
    "time_method",
    "time_this",
    "use_tracer_provider",
]

_LAZY: dict[str, str] = {
    "Figures": ".figures",
    "friendly_duration": ".formats",
    "Probe": ".probes",
    "active_probes": ".probes",
    "set_probes": ".probes",
    "format_tree": ".render",
    "Task": ".task",
    "TaskStatus": ".task",
    "TaskFileError": ".taskfile",
    "load_task": ".taskfile",
    "save_task": ".taskfile",
    "use_tracer_provider": ".tracing",
    "TimerResult": ".timer",
    "log_info": ".timer",
    "time_method": ".timer",
    "time_this": ".timer",
}
"""Public name -> the module (relative to this package) that defines it."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
