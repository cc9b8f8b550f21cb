"""OpenTelemetry exporters in a forked child: drop the connections of the parent."""

from __future__ import annotations

import sys
import types
from typing import Any

_WALK_DEPTH = 10
_WALK_LIMIT = 5000
_LEAVES = (
    str,
    bytes,
    int,
    float,
    type,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
)


def drop_inherited_connections() -> int:
    """In a forked child: close the HTTP connections the OpenTelemetry exporters inherited.

    The OTLP/HTTP exporters keep keep-alive connections (a ``requests``
    session, or a ``urllib3`` pool).  A child that exported on one inherited
    from its parent would write its requests into the parent's socket, and
    the collector would reject both (spans lost on both sides).  Closing
    them in the child only releases its copies of the sockets; the exporters
    then open their own.  The exporters are found from the tracer, meter and
    logger providers, by a bounded walk of their attributes (the exporters'
    internals differ between versions).  Returns how many were closed.
    """
    requests_mod = sys.modules.get("requests")
    urllib3_mod = sys.modules.get("urllib3")
    if requests_mod is None and urllib3_mod is None:
        return 0
    closeable: tuple[type, ...] = ()
    if requests_mod is not None:
        closeable += (requests_mod.Session,)
    if urllib3_mod is not None:
        closeable += (urllib3_mod.PoolManager, urllib3_mod.HTTPConnectionPool)
    closed = 0
    for target in _find_instances(_telemetry_roots(), closeable):
        if urllib3_mod is not None and isinstance(target, urllib3_mod.PoolManager):
            target.clear()  # closes its pools; the manager stays usable
        else:
            target.close()  # a requests session stays usable after close()
        closed += 1
    return closed


def _telemetry_roots() -> list[Any]:
    from opentelemetry import trace

    from . import tracing

    roots: list[Any] = [tracing.current_tracer_provider(), trace.get_tracer_provider()]
    if "opentelemetry.sdk.metrics" in sys.modules:
        from opentelemetry import metrics

        roots.append(metrics.get_meter_provider())
    if "opentelemetry.sdk._logs" in sys.modules:
        from opentelemetry import _logs

        roots.append(_logs.get_logger_provider())
    return [root for root in roots if root is not None]


def _find_instances(roots: list[Any], types: tuple[type, ...]) -> list[Any]:
    found: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 0) for root in roots]
    while stack and len(seen) < _WALK_LIMIT:
        obj, depth = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types):
            found.append(obj)
            continue
        if depth >= _WALK_DEPTH:
            continue
        if isinstance(obj, list | tuple | set | frozenset):
            children: Any = obj
        elif isinstance(obj, dict):
            children = obj.values()
        elif isinstance(obj, _LEAVES):
            continue
        else:
            children = _attribute_values(obj)
        stack.extend((child, depth + 1) for child in children)
    return found


def _attribute_values(obj: Any) -> list[Any]:
    values: list[Any] = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                values.append(getattr(obj, name, None))
    return values
