"""A program that measures itself with taskmeter: one task with one subtask.

With a file argument, it records its spans with an SDK tracer provider and
writes the parent span id of its top-level span to that file.
"""

import json
import math
import sys
import time

from taskmeter import Task


def burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    total = 0.0
    while time.process_time() < deadline:
        for i in range(1, 1000):
            total += math.sqrt(i)


exporter = None
if len(sys.argv) > 1:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from taskmeter import use_tracer_provider

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)

with Task("child work"), Task("child step"):
    burn(0.3)

if exporter is not None:
    span = next(s for s in exporter.get_finished_spans() if s.name == "child work")
    with open(sys.argv[1], "w") as handle:
        json.dump(
            {
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
                "subprocess": span.attributes["taskmeter.task.subprocess"],
                "parent_task": span.attributes.get("taskmeter.task.parent_id"),
            },
            handle,
        )
