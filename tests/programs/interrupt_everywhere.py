"""Interrupt two nested tasks at every point of taskmeter's own code where a signal could.

Run as a program (``python interrupt_everywhere.py [STRIDE]``): each run raises a
``KeyboardInterrupt`` from a trace function at the k-th point, in taskmeter's
own modules, where the interpreter runs signal handlers (on entering a
function, after a call returns, at a loop's backward jump), while an outer
and an inner task start, the inner one's block raises a first
``KeyboardInterrupt`` (a Ctrl-C), and both finish; for k = 1, 1 + STRIDE, ...
until a run ends before its k-th point.  After each run nothing may be left
over: a lock held (which would hang every later task), a task running or
current, a span context current.  Prints one JSON line: the number of runs
and points, and the first leftover found (``null`` if none).  A run that
hangs is caught by the caller's timeout.
"""

from __future__ import annotations

import contextvars
import dis
import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import taskmeter
from taskmeter import Task
from taskmeter.probes.peaks import _registers
from taskmeter.task import _active_stack, _running

SOURCE = str(Path(taskmeter.__file__).parent)


class _Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Injected(KeyboardInterrupt):
    """The interrupt raised by the trace function (a second Ctrl-C)."""


_BREAKING = {dis.opmap[name] for name in ("CALL", "CALL_FUNCTION_EX", "JUMP_BACKWARD")}
"""The instructions after which the interpreter runs pending signal handlers."""


def _interrupting_tracer(target: int, seen: list[int], where: list[str]) -> Any:
    previous: dict[int, int] = {}  # a frame's id -> the opcode it ran last

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            opcode = frame.f_code.co_code[frame.f_lasti]
            before = previous.get(id(frame))
            previous[id(frame)] = opcode
            if before in _BREAKING:
                seen[0] += 1
                if seen[0] == target:
                    code = frame.f_code
                    name = Path(code.co_filename).name
                    where.append(f"{name}:{frame.f_lineno} {code.co_name}")
                    raise _Injected
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename.startswith(SOURCE):
            # A function's entry, where a signal can come before its first line
            # (no opcode event is delivered for its RESUME).
            seen[0] += 1
            if seen[0] == target:
                where.append(f"{Path(frame.f_code.co_filename).name} {frame.f_code.co_name} ENTRY")
                raise _Injected
            frame.f_trace_opcodes = True
            previous.pop(id(frame), None)
            return local
        return None

    return global_


def one_run(target: int, made: list[Task], where: list[str]) -> int:
    seen = [0]
    sys.settrace(_interrupting_tracer(target, seen, where))
    try:
        outer = Task("outer")
        made.append(outer)
        with outer:
            inner = Task("inner")
            made.append(inner)
            with inner:
                raise KeyboardInterrupt("first")
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return seen[0]


def leftover(made: list[Task]) -> str | None:
    for register in list(_registers):
        if register._lock.locked():
            return f"a peak register's lock is held ({register.source!r})"
    for task in made:
        state = task.__dict__.get("_tm") or getattr(task, "_tm", None)
        if state is not None and state.lock.locked():
            return f"{task.label}'s lock is held"
        if task.status.value == "running":
            return f"{task.label} is still running"
    if Task.current() is not None or _active_stack.get():
        return f"a task is still active: {_active_stack.get()}"
    if _running:
        return f"a task is still registered as running: {list(_running)}"
    if trace.get_current_span().get_span_context().is_valid:
        return "a task's span is still current"
    return None


def _opcode_events_work() -> bool:
    """Whether a trace function can ask for a frame's instructions (Python 3.12 and
    3.13 deliver no opcode events for ``f_trace_opcodes`` set this way)."""
    seen = [0]

    def probe() -> int:
        value = 1
        return value + 1

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            seen[0] += 1
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is probe.__code__:
            frame.f_trace_opcodes = True
            return local
        return None

    sys.settrace(global_)
    try:
        probe()
    finally:
        sys.settrace(None)
    return seen[0] > 0


def main() -> None:
    stride = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if not _opcode_events_work():
        print(json.dumps({"unsupported": f"no opcode events on Python {sys.version.split()[0]}"}))
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    taskmeter.use_tracer_provider(provider)
    with Task("warm-up"), Task("warm-up inner"):
        pass
    target, runs = 1, 0
    found: dict[str, list[str]] = {}
    while True:
        made: list[Task] = []
        where: list[str] = []
        # A copy of the context for each run: what one run leaves active does
        # not carry over to the next.
        context = contextvars.copy_context()
        executed = context.run(one_run, target, made, where)
        runs += 1
        problem = context.run(leftover, made)
        if problem is not None:
            found.setdefault(problem.split(" ", 1)[1], []).append(where[0])
            _running.clear()
        for register in list(_registers):
            if register._lock.locked():
                print(json.dumps({"runs": runs, "lock held after": where[0]}))
                return
            if register.open_count:  # a tracker whose opening was interrupted
                found.setdefault("tracker left open", []).append(where[0])
                register.forget_all()
        if executed < target:  # nothing left to interrupt
            break
        target += stride
    print(json.dumps({"runs": runs, "points": executed, "leftovers": found}))


if __name__ == "__main__":
    main()
