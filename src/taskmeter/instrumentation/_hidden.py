"""Hide variables the OpenTelemetry SDK's classes read themselves while one is made.

Some SDK classes read an ``OTEL_*`` variable from ``os.environ`` whatever
arguments they are given, and raise (or log its value) when they cannot use
it.  taskmeter reads such a variable first, reports it once, passes what
applies instead as an argument, and hides the variable for as long as the
object is being made: other threads may miss it for that long (the SDK is
set up as the program starts).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hidden_from_environment"]

_hiding = threading.Lock()


@contextmanager
def hidden_from_environment(*names: str) -> Iterator[None]:
    """``os.environ`` without ``names`` inside the block; restored after it."""
    with _hiding:
        saved = {name: os.environ.pop(name) for name in names if name in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)
