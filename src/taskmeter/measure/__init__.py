"""lsst.verify-style Measurements from timer keys, in metadata or on spans.

* :class:`TimingMetric`, :class:`CpuTimingMetric`, :class:`MemoryMetric`:
  metric specs (``target=``, ``package=``, ``metric=``) whose
  ``measure(metadata)`` returns a :class:`Measurement`, or raises
  :class:`NoWorkFound` / :class:`MetricComputationError`.
* :func:`measure_metadata`, :func:`load_metadata`, :func:`load_specs`: what
  ``taskmeter measure`` does with files.
* :class:`MeasurementSpanProcessor`: the same Measurements from ending
  spans, recorded as OpenTelemetry metrics, with per-task metrics
  (:data:`TASK_METRICS`).
"""

from .errors import MetadataError, MetricComputationError, NoWorkFound, SpecError
from .instruments import METRIC_ATTRIBUTES, PROCESSOR_ERRORS, TASK_METRICS, TaskMetric
from .measurement import ESTIMATOR, Measurement
from .metadata import Metadata, Reading, load_metadata
from .processor import MeasurementSpanProcessor
from .report import MeasurementReport, measure_metadata
from .specfile import load_specs, spec_from_dict, specs_from_data
from .specs import CpuTimingMetric, MemoryMetric, MetricSpec, TimingMetric

__all__ = [
    "ESTIMATOR",
    "METRIC_ATTRIBUTES",
    "PROCESSOR_ERRORS",
    "TASK_METRICS",
    "CpuTimingMetric",
    "Measurement",
    "MeasurementReport",
    "MeasurementSpanProcessor",
    "MemoryMetric",
    "Metadata",
    "MetadataError",
    "MetricComputationError",
    "MetricSpec",
    "NoWorkFound",
    "Reading",
    "SpecError",
    "TaskMetric",
    "TimingMetric",
    "load_metadata",
    "load_specs",
    "measure_metadata",
    "spec_from_dict",
    "specs_from_data",
]
