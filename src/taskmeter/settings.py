"""Settings read from ``TASKMETER_*`` environment variables.

A malformed value never stops the program being measured: it is reported
once as a warning naming the variable, and the default is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from ._log import warn_once

T = TypeVar("T")

ENV_MACHINE = "TASKMETER_MACHINE"
ENV_MONITOR_INTERVAL = "TASKMETER_MONITOR_INTERVAL"
ENV_DISABLE_TIMER = "TASKMETER_DISABLE_TIMER"
ENV_LSST_DISABLE_TIMER = "LSST_UTILS_DISABLE_TIMER"
ENV_METRIC_SPECS = "TASKMETER_METRIC_SPECS"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

DEFAULT_MONITOR_INTERVAL = 10.0
"""Seconds between refreshes of the files of running tasks."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def env_value(
    name: str,
    parse: Callable[[str], T],
    default: T,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Parse the environment variable ``name``; on a bad value warn once and return ``default``."""
    env = os.environ if environ is None else environ
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        return parse(text.strip())
    except (ValueError, TypeError) as exc:
        warn_once(f"env.{name}", "ignoring %s=%r: %s; using %r", name, text, exc, default)
        return default


def machine(environ: Mapping[str, str] | None = None) -> str | None:
    """The project-meaningful machine label (``TASKMETER_MACHINE``), if set.

    Read on every call (it is on the path of every new task, so it is kept
    to one dictionary lookup).
    """
    text = (os.environ if environ is None else environ).get(ENV_MACHINE)
    if text is None:
        return None
    return text.strip() or None


def monitor_interval(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between task-file refreshes (``TASKMETER_MONITOR_INTERVAL``)."""
    return env_value(ENV_MONITOR_INTERVAL, _positive_float, DEFAULT_MONITOR_INTERVAL, environ)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of 1/true/yes/on or 0/false/no/off")


def timers_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``time_method`` leaves functions undecorated.

    ``LSST_UTILS_DISABLE_TIMER`` disables the timers when it is set at all,
    whatever its value (as in lsst.utils); ``TASKMETER_DISABLE_TIMER`` when it
    is a true value (``1``, ``true``, ``yes``, ``on``).
    """
    env = os.environ if environ is None else environ
    if ENV_LSST_DISABLE_TIMER in env:
        return True
    return env_value(ENV_DISABLE_TIMER, _bool, False, env)


def metric_specs_file(environ: Mapping[str, str] | None = None) -> str | None:
    """The metric-spec file named by ``TASKMETER_METRIC_SPECS``, if set."""
    text = (os.environ if environ is None else environ).get(ENV_METRIC_SPECS)
    if text is None:
        return None
    return text.strip() or None
