"""Energy from a real Prometheus, scraping counters that advance at known rates."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import taskmeter
from taskmeter import Task, _log
from taskmeter.probes import CpuTimeProbe, PrometheusProbe
from taskmeter.probes.prometheus import PrometheusQueryError, parse_query_result
from taskmeter.testing import SpanCapture
from tests.conftest import require_executable
from tests.prometheus import MetricsEndpoint, PrometheusServer, ScrapeTarget, running_prometheus

SYSTEM_W = 120.0
CPU_W = 45.0
MACHINE = "testbox"
SYSTEM_QUERY = (
    'sum(increase(taskmeter_test_system_energy_joules_total{{machine="{machine}"}}[{elapsed}ms]))'
)
CPU_QUERY = (
    'sum(increase(taskmeter_test_cpu_energy_joules_total{{machine="{machine}"}}[{elapsed}ms]))'
)


class EnergyMeter:
    """Counters that advance at SYSTEM_W and CPU_W watts, read at scrape time."""

    def __init__(self) -> None:
        self.start = time.time()

    def render(self) -> str:
        elapsed = time.time() - self.start
        return (
            "# TYPE taskmeter_test_system_energy_joules_total counter\n"
            f"taskmeter_test_system_energy_joules_total {5000 + SYSTEM_W * elapsed:.6f}\n"
            "# TYPE taskmeter_test_cpu_energy_joules_total counter\n"
            f"taskmeter_test_cpu_energy_joules_total {800 + CPU_W * elapsed:.6f}\n"
        )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = require_executable("prometheus", "prometheus")
    meter = EnergyMeter()
    with (
        MetricsEndpoint(meter.render) as endpoint,
        running_prometheus(
            binary,
            tmp_path_factory.mktemp("prometheus"),
            [ScrapeTarget(endpoint.address, {"machine": MACHINE})],
            scrape_interval_s=0.5,
        ) as server,
    ):
        server.wait_for_samples("taskmeter_test_system_energy_joules_total", 4)
        yield server


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def make_probe(server: PrometheusServer, **options: float) -> PrometheusProbe:
    settings: dict[str, float] = {"min_duration_s": 0.0, "timeout_s": 5.0} | options
    return PrometheusProbe(
        server.url, {"system": SYSTEM_QUERY, "cpu": CPU_QUERY}, machine=MACHINE, **settings
    )


def test_task_energy_matches_the_rate_of_the_scraped_counters(
    prometheus: PrometheusServer, spans: SpanCapture
) -> None:
    """Joules over the task's window, per domain, within 5 % of rate x duration."""
    taskmeter.set_probes([CpuTimeProbe(), make_probe(prometheus, min_duration_s=1.0)])
    with Task("measured") as task:
        time.sleep(3.0)
    assert task.duration is not None
    assert task.system_power == pytest.approx(SYSTEM_W * task.duration, rel=0.05)
    assert task.cpu_power == pytest.approx(CPU_W * task.duration, rel=0.05)
    assert task.energy_sources == {"system": "prometheus", "cpu": "prometheus"}
    attributes = spans.one("measured").attributes or {}
    assert attributes["taskmeter.energy.system"] == task.system_power
    assert attributes["taskmeter.energy.system.source"] == "prometheus"
    assert attributes["taskmeter.energy.cpu.source"] == "prometheus"


def test_query_is_evaluated_at_the_read_time_not_later(prometheus: PrometheusServer) -> None:
    """A window that ended in the past is queried as it was, through the time parameter."""
    probe = make_probe(prometheus)
    ended = time.time() - 2.0
    energy = probe.query_energy(2.0, ended)
    assert energy["system"] == pytest.approx(SYSTEM_W * 2.0, rel=0.05)


def test_tasks_shorter_than_min_duration_send_no_query(prometheus: PrometheusServer) -> None:
    probe = make_probe(prometheus, min_duration_s=60.0)
    taskmeter.set_probes([probe])
    with Task("short") as task:
        pass
    assert probe.queries_sent == 0
    assert task.system_power is None and task.energy_sources == {}


def test_query_prometheus_rejects_is_dropped_with_one_warning(
    prometheus: PrometheusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed query (HTTP 400) is reported once and not sent again; others still work."""
    probe = PrometheusProbe(
        prometheus.url,
        {"system": SYSTEM_QUERY, "gpu": "sum(rate(broken[{elapsed}ms]"},
        machine=MACHINE,
        min_duration_s=0.0,
    )
    first = probe.query_energy(1.0, time.time())
    second = probe.query_energy(1.0, time.time())
    assert set(first) == set(second) == {"system"}
    assert "gpu" not in probe.queries
    assert caplog.text.count("rejected the gpu energy query") == 1
    assert probe.queries_sent == 3


def test_query_returning_several_series_gives_no_figure(
    prometheus: PrometheusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Several series are not silently reduced to the first: no figure, one warning."""
    probe = PrometheusProbe(
        prometheus.url,
        {
            "system": 'label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), '
            '"a", "y", "", "")'
        },
        min_duration_s=0.0,
    )
    assert probe.query_energy(1.0, time.time()) == {}
    assert "2 series" in caplog.text


def test_stopped_server_costs_one_bounded_wait_then_backs_off(
    prometheus: PrometheusServer,
) -> None:
    """A server that accepts but never answers delays a task by at most the timeout,
    and later tasks do not wait at all while the probe backs off."""
    probe = make_probe(prometheus, timeout_s=0.3)
    taskmeter.set_probes([CpuTimeProbe(), probe])
    with prometheus.paused():
        started = time.perf_counter()
        with Task("stalled") as stalled:
            pass
        first = time.perf_counter() - started
        sent = probe.queries_sent
        started = time.perf_counter()
        with Task("backing off") as later:
            pass
        second = time.perf_counter() - started
    assert stalled.system_power is None and stalled.cpu_time is not None
    assert later.system_power is None
    assert first < 0.3 + 0.5
    assert second < 0.05
    assert probe.queries_sent == sent
    assert _log.error_counts["probe.prometheus.query"] == 1


def test_refused_connection_is_counted_not_raised() -> None:
    from tests.prometheus import free_port

    probe = PrometheusProbe(
        f"http://127.0.0.1:{free_port()}", {"system": SYSTEM_QUERY}, min_duration_s=0.0
    )
    taskmeter.set_probes([probe])
    with Task("no server") as task:
        pass
    assert task.status.value == "finished"
    assert task.system_power is None
    assert _log.error_counts["probe.prometheus.query"] == 1


def test_a_timeout_longer_than_the_platform_can_wait_waits_as_long_as_it_can(
    prometheus: PrometheusServer,
) -> None:
    """``timeout = 1e10`` (over 292 years) is past what a lock or a socket can wait on: the
    answer is still waited for, and taken, rather than every query failing."""
    probe = make_probe(prometheus, timeout_s=1e10)
    ended = time.time() - 2.0
    energy = probe.query_energy(2.0, ended)
    assert energy["system"] == pytest.approx(SYSTEM_W * 2.0, rel=0.05)
    assert not _log.error_counts


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "12.5"]}}, 12.5),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]},
            },
            3.0,
        ),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, None),
    ],
)
def test_parse_single_number_answers(document: object, expected: float | None) -> None:
    assert parse_query_result(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}},
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "-4"]}},
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "many"]}},
        ["not", "an", "object"],
    ],
)
def test_parse_rejects_what_is_not_one_energy(document: object) -> None:
    with pytest.raises(PrometheusQueryError):
        parse_query_result(document)


@pytest.mark.parametrize(
    ("url", "queries", "message"),
    [
        ("localhost:9090", {"system": "x"}, "http"),
        ("http://p:9090", {}, "at least one"),
        ("http://p:9090", {"chassis": "x"}, "unknown energy domain"),
        ("http://p:9090", {"system": 'x{instance="a"}[{elapsed}ms]'}, "doubled"),
    ],
)
def test_bad_probe_arguments_are_clear_errors(
    url: str, queries: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusProbe(url, queries)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        PrometheusProbe("http://p:9090", {"system": "x"}, timeout_s=0)
