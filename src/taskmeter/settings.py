"""Settings read from ``TASKMETER_*`` environment variables.

A malformed value never stops the program being measured: it is reported
once as a warning naming the variable, and the default is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from ._log import config_warning

T = TypeVar("T")

ENV_MACHINE = "TASKMETER_MACHINE"
ENV_MONITOR_INTERVAL = "TASKMETER_MONITOR_INTERVAL"
ENV_ENERGY = "TASKMETER_ENERGY"
ENV_ENERGY_CONFIG = "TASKMETER_ENERGY_CONFIG"
ENV_DISABLE_TIMER = "TASKMETER_DISABLE_TIMER"
ENV_LSST_DISABLE_TIMER = "LSST_UTILS_DISABLE_TIMER"
ENV_METRIC_SPECS = "TASKMETER_METRIC_SPECS"
ENV_ENRICH = "TASKMETER_ENRICH"
ENV_CONFIGURE_SDK = "TASKMETER_CONFIGURE_SDK"

ENV_SPOOL_DIR = "TASKMETER_SPOOL_DIR"
ENV_SPOOL_MAX_BYTES = "TASKMETER_SPOOL_MAX_BYTES"
ENV_RECORD_COMMAND = "TASKMETER_RECORD_COMMAND"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

DEFAULT_MONITOR_INTERVAL = 10.0
"""Seconds between refreshes of the files of running tasks."""
MIN_MONITOR_INTERVAL = 0.001
"""The shortest refresh interval accepted (a smaller one would keep a core busy)."""
MAX_MACHINE_LABEL = 255
"""The longest machine label accepted (it is an attribute of every span)."""
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
"""Default bound of the export spool (256 MiB)."""
LONGEST_EXPORT_WAIT_S = 3600.0
"""The longest export timeout, batch delay or metric export interval accepted, in seconds
(an hour): far under what a thread can wait (``threading.TIMEOUT_MAX``), past which a
value made the export threads fail."""
LARGEST_COUNT = 2**31 - 1
"""The largest queue or batch size accepted (a larger one cannot be held in a C size)."""

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def positive_int(text: str) -> int:
    """A positive integer up to :data:`LARGEST_COUNT`, for :func:`env_value`
    (``ValueError`` otherwise)."""
    value = int(text)
    if not 0 < value <= LARGEST_COUNT:
        raise ValueError(f"must be a positive integer up to {LARGEST_COUNT}")
    return value


def export_wait_ms(text: str) -> float:
    """Milliseconds of a timeout, delay or interval, more than 0 and up to
    :data:`LONGEST_EXPORT_WAIT_S`, for :func:`env_value` (``ValueError`` otherwise)."""
    value = float(text)
    if not 0 < value <= LONGEST_EXPORT_WAIT_S * 1000:
        raise ValueError(
            f"must be a number of milliseconds more than 0 and up to "
            f"{LONGEST_EXPORT_WAIT_S * 1000:.0f} (an hour)"
        )
    return value


def export_wait_ms_int(text: str) -> int:
    """:func:`export_wait_ms` as a whole number of milliseconds (at least 1)."""
    return max(round(export_wait_ms(text)), 1)


def _monitor_seconds(text: str) -> float:
    value = _positive_float(text)
    if value < MIN_MONITOR_INTERVAL:
        raise ValueError(f"must be at least {MIN_MONITOR_INTERVAL:g} s")
    return value


def parse_size(text: str) -> int:
    """A size in bytes from ``"268435456"``, ``"256MiB"``, ``"256M"`` (binary) or ``"1GB"``.

    Raises ``ValueError`` for anything else, or for a size that is not positive.
    """
    stripped = text.strip().lower().replace(" ", "")
    number = stripped.rstrip("bikmgt")
    unit = stripped[len(number) :]
    scale = _SIZE_UNITS.get(unit)
    if scale is None or not number:
        raise ValueError("expected a size such as 268435456, 256MiB or 1G")
    try:
        value = float(number)
    except ValueError:
        raise ValueError("expected a size such as 268435456, 256MiB or 1G") from None
    if not 0 < value < float("inf"):
        raise ValueError("must be a positive size")
    size = int(value * scale)
    if size <= 0 or size > 1 << 62:
        raise ValueError("must be between 1 byte and 4 EiB")
    return size


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
        config_warning(f"env.{name}", "ignoring %s=%r: %s; using %r", name, text, exc, default)
        return default


def _shortened(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters (a value quoted in a warning)."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 5]}...' ({len(text)} characters)"


_UNREAD: object = object()
_machine: object = _UNREAD


def machine(environ: Mapping[str, str] | None = None) -> str | None:
    """The project-meaningful machine label, if one is set.

    ``TASKMETER_MACHINE``; where it is unset, the ``machine`` of the energy
    configuration (``TASKMETER_ENERGY_CONFIG``, LensKit's layout), as LensKit
    records it.  Read once, when the first task is created (it is on the path
    of every new task); :func:`reload` reads both again.  A configuration that
    cannot be read gives no label, quietly: the energy probes' detection reports it.
    """
    global _machine
    if environ is None and _machine is not _UNREAD:
        return _machine  # type: ignore[return-value]
    text = env_text(ENV_MACHINE, environ)
    if text is None:
        value = _configured_machine(environ)
    else:  # set: the configuration is not asked, even where this one is unusable
        value = _usable_machine(text, ENV_MACHINE, f"env.{ENV_MACHINE}")
    if environ is None:
        _machine = value
    return value


def env_machine(environ: Mapping[str, str] | None = None) -> str | None:
    """The machine label of ``TASKMETER_MACHINE`` alone (not cached); ``None`` if unset
    or unusable (said once in a warning)."""
    return _usable_machine(env_text(ENV_MACHINE, environ), ENV_MACHINE, f"env.{ENV_MACHINE}")


def _configured_machine(environ: Mapping[str, str] | None) -> str | None:
    """The ``machine`` of the energy configuration, if one is named and names one."""
    path = energy_config_path(environ)
    if path is None:
        return None
    from .probes.energy_config import configured_machine

    try:
        value = configured_machine(path)
    except ValueError:
        return None
    origin = f"{ENV_ENERGY_CONFIG}={path!r}: machine"
    return _usable_machine(value, origin, f"env.{ENV_ENERGY_CONFIG}.machine")


def _usable_machine(value: str | None, origin: str, key: str) -> str | None:
    """``value``, unless it is too long or not printable (counted under ``key`` and said
    once in a warning naming ``origin``)."""
    if value is not None and (len(value) > MAX_MACHINE_LABEL or not value.isprintable()):
        config_warning(
            key,
            "ignoring %s=%s: a machine label is at most %d printable characters; "
            "recording no machine label",
            origin,
            _shortened(value),
            MAX_MACHINE_LABEL,
        )
        return None
    return value


def reload() -> None:
    """Forget cached settings, so the next use reads the environment again."""
    global _machine
    _machine = _UNREAD


def monitor_interval(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between task-file refreshes (``TASKMETER_MONITOR_INTERVAL``)."""
    return env_value(ENV_MONITOR_INTERVAL, _monitor_seconds, DEFAULT_MONITOR_INTERVAL, environ)


def env_text(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The stripped value of the environment variable ``name``; ``None`` if unset or blank."""
    text = (os.environ if environ is None else environ).get(name)
    if text is None:
        return None
    return text.strip() or None


def energy_sources(environ: Mapping[str, str] | None = None) -> str | None:
    """The energy and GPU sources asked for (``TASKMETER_ENERGY``), unparsed; ``None`` if unset.

    Parsed by :func:`taskmeter.probes.selection.parse_energy_selection`.
    """
    return env_text(ENV_ENERGY, environ)


def energy_config_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The energy configuration file (``TASKMETER_ENERGY_CONFIG``), if set."""
    return env_text(ENV_ENERGY_CONFIG, environ)


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
    return env_text(ENV_METRIC_SPECS, environ)


DEFAULT_ENRICH = "root,marked"
"""The spans enriched when ``TASKMETER_ENRICH`` is unset: local roots and marked spans."""


def enrich_selection(environ: Mapping[str, str] | None = None) -> str:
    """Which spans to enrich (``TASKMETER_ENRICH``), unparsed.

    Parsed by :meth:`taskmeter.enrich.SpanSelector.parse`.
    """
    return env_text(ENV_ENRICH, environ) or DEFAULT_ENRICH


def configure_sdk(environ: Mapping[str, str] | None = None) -> bool:
    """Whether auto-instrumentation may configure the SDK (``TASKMETER_CONFIGURE_SDK``).

    Only when nothing else (a distro's configurator) configured it first.
    """
    return env_value(ENV_CONFIGURE_SDK, _bool, True, environ)


def spool_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """The export spool directory (``TASKMETER_SPOOL_DIR``); ``None``: no spool."""
    return env_text(ENV_SPOOL_DIR, environ)


def usable_spool_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """:func:`spool_dir`, if it is (or can be made) a directory this process can write to;
    else ``None``, said once in a warning naming the variable."""
    directory = spool_dir(environ)
    if directory is None:
        return None
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):  # the spool makes the missing levels
        existing = os.path.dirname(existing)
    if os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK):
        return directory
    config_warning(
        f"env.{ENV_SPOOL_DIR}",
        "ignoring %s=%r: %s is not a directory this process can write to; exporting "
        "without a spool (what cannot be delivered is dropped and counted)",
        ENV_SPOOL_DIR,
        directory,
        existing,
    )
    return None


def spool_max_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The bound of the export spool (``TASKMETER_SPOOL_MAX_BYTES``), in bytes."""
    return env_value(ENV_SPOOL_MAX_BYTES, parse_size, DEFAULT_SPOOL_MAX_BYTES, environ)


def record_command(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``taskmeter run`` records the command's arguments (``TASKMETER_RECORD_COMMAND``)."""
    return env_value(ENV_RECORD_COMMAND, _bool, False, environ)
