"""Shared fixtures: captured spans, and isolation of taskmeter's process-wide state."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest

import taskmeter
from taskmeter import _log, settings
from taskmeter.export import endpoints
from taskmeter.task import _active_stack, _running
from taskmeter.testing import SpanCapture, capture_spans

IN_CI = bool(os.environ.get("CI"))

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Started as a background job of a shell without job control (``cmd &``), which
    # starts it with SIGINT ignored: every program the tests start would inherit
    # that, and the tests of what Ctrl-C does would see nothing happen.  A handler
    # here is reset to the default in those programs when they start.
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The rotel collector and the OTLP sink fixtures (otlp_sink, rotel_collector).
pytest_plugins = ["tests.collector"]


def require_executable(name: str, package: str) -> str:
    """Path of ``name``; skip the test locally if it is missing, fail it in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found (Debian package {package}; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    """Capture the spans of taskmeter's tasks for one test."""
    with capture_spans() as captured:
        yield captured


@pytest.fixture(autouse=True)
def _isolate_taskmeter_state() -> Iterator[None]:
    token = _active_stack.set(())
    probes = taskmeter.active_probes()
    _log.reset_for_tests()
    settings.reload()
    endpoints.forget()  # a port that failed in one test may serve the next one
    yield
    running = [entry() for entry in _running.values()]
    leaked = [task.label for task in running if task is not None]
    _running.clear()
    _active_stack.reset(token)
    taskmeter.set_probes(probes)
    assert not leaked, f"tasks left running: {leaked}"
