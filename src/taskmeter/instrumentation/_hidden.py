"""Hide variables from the OpenTelemetry SDK's classes while one is made.

Some SDK classes read an ``OTEL_*`` variable from the environment whatever
arguments they are given, and raise (or log its value) when they cannot use
it.  taskmeter reads such a variable first, reports it once, passes what
applies instead as an argument, and hides the variable from the SDK for as
long as the object is being made.

The process environment itself is left alone: changing it (``unsetenv`` and
``setenv``) while other threads run is unsafe in C (a ``getenv`` in a gRPC
thread may read freed memory), a subprocess started meanwhile would miss the
variable, and putting it back could undo another thread's change.  What is
swapped is Python's view: ``os.environ`` and the ``environ`` name that SDK
modules import from :mod:`os`, each replaced by a view without the hidden
variables (writes go through to the real mapping).  Python code of other
threads reading ``os.environ`` in that moment (microseconds, once at set-up)
misses the hidden variables too.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

__all__ = ["blank_otlp_variables", "hidden_from_environment"]

_OTLP_SETTINGS = (
    "ENDPOINT",
    "PROTOCOL",
    "TIMEOUT",
    "COMPRESSION",
    "HEADERS",
    "INSECURE",
    "CERTIFICATE",
    "CLIENT_KEY",
    "CLIENT_CERTIFICATE",
)
"""The settings of an OTLP exporter, each a general ``OTEL_EXPORTER_OTLP_<SETTING>``
variable and one per signal, ``OTEL_EXPORTER_OTLP_<SIGNAL>_<SETTING>``."""


def blank_otlp_variables(signal: str) -> list[str]:
    """The OTLP exporter variables of ``signal`` (its own and the general ones) set to
    an empty or blank value in ``os.environ``.  The OpenTelemetry specification reads
    them as unset; the SDK's exporters use such a value as it is (an endpoint of
    spaces, a certificate file named so), so they are hidden while one is made."""
    names = []
    for setting in _OTLP_SETTINGS:
        for name in (
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_{setting}",
            f"OTEL_EXPORTER_OTLP_{setting}",
        ):
            value = os.environ.get(name)
            if value is not None and not value.strip():
                names.append(name)
    return names


_hiding = threading.Lock()

_SDK_PACKAGE = "opentelemetry."
"""Modules of this package whose ``environ`` (imported from :mod:`os`) is swapped."""


class _EnvironmentWithout(MutableMapping[str, str]):
    """``os.environ`` as seen without ``hidden``; writes reach ``os.environ`` itself."""

    def __init__(self, real: MutableMapping[str, str], hidden: frozenset[str]) -> None:
        self._real = real
        self._hidden = hidden

    def __getitem__(self, name: str) -> str:
        if name in self._hidden:
            raise KeyError(name)
        return self._real[name]

    def __setitem__(self, name: str, value: str) -> None:
        self._real[name] = value

    def __delitem__(self, name: str) -> None:
        del self._real[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._real) if name not in self._hidden)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        """A plain dict of the visible variables (as ``os.environ.copy()``)."""
        return dict(self)


@contextmanager
def hidden_from_environment(*names: str) -> Iterator[None]:
    """Inside the block, ``os.environ`` and the SDK modules' ``environ`` lack ``names``."""
    real = os.environ
    present = frozenset(name for name in names if name in real)
    if not present:
        yield
        return
    with _hiding:
        view = _EnvironmentWithout(real, present)
        swapped = [
            module
            for name, module in list(sys.modules.items())
            if name.startswith(_SDK_PACKAGE) and getattr(module, "environ", None) is real
        ]
        os.environ = view  # type: ignore[assignment]  # noqa: B003 (Python's view only)
        for module in swapped:
            module.environ = view  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for module in swapped:
                module.environ = real  # type: ignore[attr-defined]
            os.environ = real  # noqa: B003
