"""Logging helpers for the telemetry path: log a problem once, count every one."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

logger = logging.getLogger("taskmeter")

_lock = threading.Lock()
_seen: set[str] = set()
_last_logged: dict[str, float] = {}
error_counts: Counter[str] = Counter()
"""Number of errors swallowed on the telemetry path, by key (for tests and metrics)."""


def debug_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` at debug level the first time ``key`` is seen in this process."""
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.debug(message, *args)


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.warning(message, *args)


def config_warning(key: str, message: str, *args: object) -> None:
    """Count a setting that cannot be used (under ``key``), and warn about it the first time.

    For configuration the program must not be stopped by (a malformed
    ``TASKMETER_*`` or ``OTEL_*`` variable, an exporter that cannot be made):
    every occurrence is counted in :data:`error_counts`, the warning is
    logged once per process.
    """
    with _lock:
        error_counts[key] += 1
    warn_once(key, message, *args)


def error_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as an error the first time ``key`` is seen in this process.

    For a source the user asked for by name that cannot work: loud, but the
    program being measured goes on.
    """
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.error(message, *args)


def swallowed(key: str, exc: BaseException, *, interval: float = 60.0) -> None:
    """Count an error that the telemetry path absorbed, and log it at most once per interval.

    The traceback is logged at debug level so that a flood of identical errors
    costs one line per ``interval`` seconds at warning level.
    """
    now = time.monotonic()
    with _lock:
        error_counts[key] += 1
        count = error_counts[key]
        last = _last_logged.get(key)
        if last is not None and now - last < interval:
            return
        _last_logged[key] = now
    logger.warning("%s: %s: %s (error %d of this kind)", key, type(exc).__name__, exc, count)
    logger.debug("%s traceback", key, exc_info=exc)


def count_more(key: str, extra: int) -> None:
    """Count ``extra`` more errors under ``key`` (reported together in one warning)."""
    with _lock:
        error_counts[key] += extra


def reset_for_tests() -> None:
    """Forget which messages were logged and every error count."""
    with _lock:
        _seen.clear()
        _last_logged.clear()
        error_counts.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
