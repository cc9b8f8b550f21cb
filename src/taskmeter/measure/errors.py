"""The outcomes of a measurement that are not a Measurement."""

from __future__ import annotations

__all__ = ["MetadataError", "MetricComputationError", "NoWorkFound", "SpecError"]


class NoWorkFound(Exception):
    """The metadata holds no keys for the target: the measured step did not run.

    Not an error: nothing is measured, and nothing is emitted.
    """


class MetricComputationError(RuntimeError):
    """The target's keys are there but give no value.

    Raised when only one of a start/end pair is present, when a value has the
    wrong type (a string where a number belongs, NaN, a nested list), when
    the start and end lists hold different numbers of calls, when the end
    comes before the start, or when one key fragment matches several keys.
    """


class SpecError(ValueError):
    """A metric spec (in a file, or on the command line) is malformed."""


class MetadataError(ValueError):
    """A metadata file cannot be read as task metadata."""
