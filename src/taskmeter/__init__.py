"""taskmeter: measure what coarse units of work cost and publish it through OpenTelemetry.

A :class:`Task` is a span whose attributes carry its wall time, CPU time, peak
memory, peak GPU memory and energy; it is also LensKit's task record, saved
to a JSON file.  :func:`time_method` writes lsst.utils' timer keys into task
metadata and onto spans; :mod:`taskmeter.measure` derives lsst.verify-style
Measurements from them.
"""

from .__about__ import __version__
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
