"""Exit statuses and messages shared by the verbs."""

from __future__ import annotations

import contextlib
import sys

EXIT_OK = 0
EXIT_NO_MATCH = 1
"""``show``: no task matched the filters (like ``grep``)."""
EXIT_USAGE = 2
"""The options were wrong (argparse's status)."""
EXIT_BAD_FILE = 3
"""``show``/``report``: the task file is missing, unreadable or not a task file."""
EXIT_OUTPUT_FAILED = 4
"""``report``: the output could not be written."""
EXIT_TASKMETER_FAILED = 125
"""``run``: taskmeter itself failed before starting the command (as ``env`` and ``timeout``)."""
EXIT_NOT_EXECUTABLE = 126
"""``run``: the command exists but could not be executed (as shells)."""
EXIT_NOT_FOUND = 127
"""``run``: the command was not found (as shells)."""


def error(message: str) -> None:
    """Print ``taskmeter: error: message`` on standard error."""
    say(f"taskmeter: error: {message}")


def say(message: str) -> None:
    """Print a line on standard error, ignoring a closed stream."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)
