"""The span attributes a collector receives are the README's: names, value types that fit
their units, and values in those units, over OTLP/gRPC and OTLP/HTTP.

A program runs under ``opentelemetry-instrument`` (taskmeter sets up the SDK) with
tasks, a timed method and a marked span of its own, and sends to a real collector
(rotel); the test reads back what the collector forwarded.
"""

from __future__ import annotations

from typing import Any

import pytest

from taskmeter import attributes as attr
from tests.collector import CollectorUnderTest, wait_until

from .runner import run_instrumented_program

PROGRAM = """
import json, os, time
from opentelemetry import trace
from taskmeter import Task, time_method

class Isr:
    def __init__(self):
        self.metadata = {}

    def getFullName(self):
        return "isr"

    @time_method
    def run(self, seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

with Task("visit") as visit:
    with Task("ccd") as ccd:
        Isr().run(0.1)
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("marked step", attributes={"taskmeter.enrich": True}):
        sum(range(10000))
print(json.dumps({"visit": str(visit.task_id), "ccd": str(ccd.task_id),
                  "ccd_peak": ccd.peak_memory, "pid": os.getpid()}))
"""

STANDARD = {attr.HOST_NAME: "", attr.PROCESS_PID: "", attr.CODE_FUNCTION_NAME: ""}
BOOLEAN = {attr.TASK_SUBPROCESS, attr.ENRICH}
INTEGER = {attr.TIMER_VERSION, attr.PROCESS_PID}


def expected_kind(name: str) -> str:
    """The OTLP value kind an attribute must arrive as, by its documented unit."""
    unit = {**attr.ATTRIBUTE_UNITS, **STANDARD}[name]
    if name in BOOLEAN:
        return "bool_value"
    if name in INTEGER or unit == "By" or unit.startswith("{"):
        return "int_value"
    if unit in ("s", "J"):
        return "double_value"
    return "string_value"


def received(span: Any) -> dict[str, tuple[str, Any]]:
    """Attribute name -> (OTLP value kind, value)."""
    found = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        found[kv.key] = (kind, getattr(kv.value, kind))
    return found


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_task_timer_and_enriched_spans_arrive_as_documented(
    rotel_collector: CollectorUnderTest, protocol: str
) -> None:
    """Every attribute is a documented name with the value kind of its unit, each kind of
    span carries its documented set, and the values are in the documented units."""
    endpoint = (
        rotel_collector.grpc_endpoint if protocol == "grpc" else rotel_collector.http_endpoint
    )
    ran = run_instrumented_program(
        ["-c", PROGRAM],
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "attribute-check",
            "TASKMETER_MACHINE": "rack-7",
        },
    )
    sink = rotel_collector.sink
    names = ("visit", "ccd", "Isr.run", "marked step")
    assert wait_until(lambda: all(sink.spans(n) for n in names), 10.0), ran.stderr
    spans = {name: received(sink.spans(name)[0]) for name in names}

    for name, attributes in spans.items():
        for key, (kind, _value) in attributes.items():
            assert key in attr.ATTRIBUTE_UNITS or key in STANDARD, (name, key)
            assert kind == expected_kind(key), (name, key, kind)

    task_keys = {
        attr.TASK_ID,
        attr.TASK_STATUS,
        attr.TASK_SUBPROCESS,
        attr.MACHINE,
        attr.DURATION,
        attr.CPU_TIME,
        attr.CPU_USER,
        attr.CPU_SYSTEM,
        attr.CPU_TOTAL,
        attr.MEMORY_PEAK,
        attr.HOST_NAME,
        attr.PROCESS_PID,
    }
    assert set(spans["visit"]) == task_keys
    assert set(spans["ccd"]) == task_keys | {attr.TASK_PARENT_ID}
    timer_keys = set(attr.TIMER_ATTRIBUTES.values()) | {
        attr.TIMER_METHOD,
        attr.TIMER_TASK,
        attr.TIMER_VERSION,
        attr.TASK_LABEL,
        attr.HOST_NAME,
        attr.CODE_FUNCTION_NAME,
    }
    assert set(spans["Isr.run"]) == timer_keys
    enriched_keys = {
        attr.ENRICH,
        attr.MACHINE,
        attr.DURATION,
        attr.CPU_TIME,
        attr.CPU_USER,
        attr.CPU_SYSTEM,
        attr.CPU_THREAD,
        attr.MEMORY_PEAK,
    }
    assert set(spans["marked step"]) == enriched_keys

    ccd, visit, timer = spans["ccd"], spans["visit"], spans["Isr.run"]
    assert ccd[attr.TASK_ID][1] == ran.found["ccd"]
    assert ccd[attr.TASK_PARENT_ID][1] == visit[attr.TASK_ID][1] == ran.found["visit"]
    assert ccd[attr.TASK_STATUS][1] == "finished"
    assert ccd[attr.MACHINE][1] == "rack-7"
    assert ccd[attr.PROCESS_PID][1] == ran.found["pid"]
    assert ccd[attr.MEMORY_PEAK][1] == ran.found["ccd_peak"] >= 64 * 1024 * 1024  # bytes
    assert 0.1 <= ccd[attr.CPU_TIME][1] <= ccd[attr.DURATION][1] + 0.05  # seconds
    cpu_s = timer[attr.TIMER_END_CPU_TIME][1] - timer[attr.TIMER_START_CPU_TIME][1]
    assert 0.1 <= cpu_s < 0.5
    assert timer[attr.TIMER_END_MAX_RESIDENT_SET_SIZE][1] > 16 * 1024 * 1024  # bytes, not KiB
    assert timer[attr.TIMER_METHOD][1] == "run" and timer[attr.TIMER_TASK][1] == "isr"
    assert timer[attr.TASK_LABEL][1] == "ccd" and timer[attr.TIMER_VERSION][1] == 1
    assert timer[attr.TIMER_START_UTC][1].endswith("+00:00")
