"""What tests/test_multiprocess.py runs in worker processes.

A module of its own, without pytest, so that spawned workers import it
quickly; every function is importable by name, as ``spawn`` requires.
"""

from __future__ import annotations

import os
import time
from typing import Any

MIB = 1024 * 1024


def burn_cpu(seconds: float) -> None:
    """Compute until this process has used ``seconds`` more CPU time."""
    deadline = time.process_time() + seconds
    total = 0
    while time.process_time() < deadline:
        for i in range(2000):
            total += i * i


def burn_task(seconds: float, label: str = "burn") -> dict[str, Any]:
    """Burn ``seconds`` of CPU inside a task; its ids and figures, for the parent to check."""
    from taskmeter import Task

    with Task(label) as task:
        burn_cpu(seconds)
    return {
        "task_id": str(task.task_id),
        "parent_id": str(task.parent_id),
        "subprocess": task.subprocess,
        "pid": os.getpid(),
        "cpu_time": task.cpu_time,
        "trace_id": task.trace_id,
    }


def burn_under(parent: Any, seconds: float) -> dict[str, Any]:
    """Burn inside a task whose parent is a task of another process (passed pickled)."""
    from taskmeter import Task

    with Task("explicit", parent=parent) as task:
        burn_cpu(seconds)
    return {"task_id": str(task.task_id), "subprocess": task.subprocess}


def burn_thread_time_under(parent: Any, seconds: float) -> float:
    """Burn ``seconds`` of this thread's CPU time (a loop on ``time.thread_time``) inside a
    task whose parent is a task of another process (passed pickled); returns the burn."""
    from taskmeter import Task

    with Task("handed", parent=parent):
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass
        burnt = time.thread_time() - start
    return burnt


def burn_under_when_told(parent: Any, seconds: float, started: str, go: str) -> float:
    """As :func:`burn_thread_time_under`, once the file ``go`` exists; creates the file
    ``started`` first (so the parent knows ``parent`` reached this worker)."""
    from pathlib import Path

    Path(started).touch()
    deadline = time.monotonic() + 30
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return burn_thread_time_under(parent, seconds)


def burn_under_id(parent_id: Any, seconds: float) -> dict[str, Any]:
    """Burn inside a task whose parent is named by its id (a task of another process)."""
    from taskmeter import Task

    with Task("by id", parent=parent_id) as task:
        burn_cpu(seconds)
    return {"task_id": str(task.task_id), "subprocess": task.subprocess}


def setup_otlp(endpoint: str) -> None:
    """Send this process's spans to ``endpoint`` over OTLP/HTTP (a spawned worker's set-up)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "taskmeter-worker"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)


def setup_durable(spool: str, endpoint: str) -> None:
    """Export this process's spans durably through ``spool`` (a spawned worker's set-up)."""
    from opentelemetry import trace

    from taskmeter.export import durable_tracer_provider

    trace.set_tracer_provider(durable_tracer_provider(spool, endpoint=endpoint, timeout_s=2.0))


def quick_task(label: str) -> dict[str, Any]:
    """A short task; its ids, for the parent to find its span."""
    from taskmeter import Task

    with Task(label) as task:
        pass
    return {"task_id": str(task.task_id), "span_id": task.span_id, "pid": os.getpid()}


def process_main(endpoint: str, seconds: float, label: str) -> None:
    """The target of a spawned ``Process``: set up OTLP, then burn in a task."""
    setup_otlp(endpoint)
    burn_task(seconds, label)


def nested_workers(seconds: float) -> None:
    """A worker that burns in a task and starts a worker of its own inside it."""
    import multiprocessing

    from taskmeter import Task

    with Task("middle"):
        burn_cpu(seconds)
        child = multiprocessing.get_context("fork").Process(
            target=burn_task, args=(seconds, "grandchild")
        )
        child.start()
        child.join()


def _vm_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def report_child_state(connection: Any, allocate_mib: int) -> None:
    """Send back what a forked child inherited, then the peak of a task that allocates."""
    from taskmeter import Task, active_probes, propagation
    from taskmeter.monitor import get_monitor
    from taskmeter.probes import PeakMemoryProbe, SampledProbe
    from taskmeter.task import _running

    inherited = propagation.inherited
    state: dict[str, Any] = {
        "running": len(_running),
        "current": Task.current() is not None,
        "monitor_jobs": get_monitor().job_names(),
        "peak_trackers": sum(
            p.register.open_count for p in active_probes() if isinstance(p, PeakMemoryProbe)
        ),
        "sampled_open": sum(p.open_tasks for p in active_probes() if isinstance(p, SampledProbe)),
        "inherited_parent": str(inherited.parent_id) if inherited else None,
        "flush_spans": inherited.flush_spans if inherited else None,
    }
    with Task("child allocates") as task:
        state["rss_at_start"] = _vm_rss()
        data = bytearray(allocate_mib * MIB)
        for offset in range(0, len(data), 4096):
            data[offset] = 1
        del data
    state["peak_memory"] = task.peak_memory
    state["task_id"] = str(task.task_id)
    connection.send(state)
    connection.close()


def pooled_connections(session: Any) -> int:
    """Idle keep-alive connections in a requests session's pools."""
    pools = session.adapters["http://"].poolmanager.pools
    keys = pools.keys()  # a copy: urllib3's container refuses iteration
    return sum(1 for key in keys for conn in list(pools[key].pool.queue) if conn is not None)


def report_connections(session: Any, connection: Any) -> None:
    """Send back how many pooled connections a forked child sees."""
    connection.send(pooled_connections(session))
    connection.close()


def spans_exported_when_task_ended(label: str) -> int:
    """Run a task under a batching tracer provider that would wait a minute; how many
    spans its exporter had received when the task ended (a worker flushes them first)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import taskmeter
    from taskmeter import Task

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    taskmeter.use_tracer_provider(provider)
    with Task(label):
        pass
    return len(exporter.get_finished_spans())


def record_exit_shutdown(path: str) -> None:
    """Build an :class:`~taskmeter.instrumentation.sdk.SdkSetup` whose span processor
    writes to ``path`` the name of the thread that shuts it down at this worker's exit."""
    import threading

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from taskmeter.instrumentation.sdk import SdkSetup

    class NotingProcessor(SpanProcessor):
        def shutdown(self) -> None:
            with open(path, "a") as handle:
                handle.write(threading.current_thread().name + "\n")

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(NotingProcessor())
    SdkSetup(tracer_provider, MeterProvider()).register_exit()


def burn_task_elsewhere(seconds: float, directory: str) -> dict[str, Any]:
    """:func:`burn_task` after changing this process's working directory to ``directory``."""
    os.chdir(directory)
    return burn_task(seconds)
