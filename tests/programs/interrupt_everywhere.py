"""Interrupt two nested tasks at every step of taskmeter's own code, one step per run.

Run as a program (``python interrupt_everywhere.py [STRIDE]``): each run raises a
``KeyboardInterrupt`` from a trace function at the k-th bytecode instruction
that taskmeter's own modules execute while an outer and an inner task start,
the inner one's block raises a first ``KeyboardInterrupt`` (a Ctrl-C), and both
finish, for k = 1, 1 + STRIDE, ... until a run ends before its k-th
instruction.  An interrupt may come at any instruction, not only where a
signal handler's would, so every window is covered.  After each run, nothing
may be left over: a lock held (which would hang every later task), a task
running or current, a span context current.  Prints one JSON line: the
number of runs and instructions, and the first leftover found (``null`` if
none).  A run that hangs is caught by the caller's timeout.
"""

from __future__ import annotations

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


def _interrupting_tracer(target: int, seen: list[int], where: list[str]) -> Any:
    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            seen[0] += 1
            if seen[0] == target:
                where.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
                raise _Injected
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename.startswith(SOURCE):
            frame.f_trace_opcodes = True
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


def main() -> None:
    stride = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    taskmeter.use_tracer_provider(provider)
    with Task("warm-up"), Task("warm-up inner"):
        pass
    target, runs, found = 1, 0, None
    while True:
        made: list[Task] = []
        where: list[str] = []
        executed = one_run(target, made, where)
        runs += 1
        found = leftover(made)
        if found is not None:
            found = f"interrupted at instruction {target} ({where[0]}): {found}"
            break
        if executed < target:  # nothing left to interrupt
            break
        target += stride
    print(json.dumps({"runs": runs, "instructions": executed, "leftover": found}))


if __name__ == "__main__":
    main()
