"""collector-config/ agrees with itself and with the names the library emits.

Docker does not run here, so the compose stack is checked piece by piece:
the collector's pipelines, the addresses each part uses for the others,
Grafana's provisioning, and every PromQL expression of the dashboard against
the Prometheus names that taskmeter's instruments produce.  Those names are
taken from a real exporter (``opentelemetry-exporter-prometheus``) fed by the
real ``MeasurementSpanProcessor``, and the collector's translation rules are
checked to give the same names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from taskmeter import attributes as attr
from taskmeter.measure import (
    METRIC_ATTRIBUTES,
    PROCESSOR_ERRORS,
    TASK_METRICS,
    CpuTimingMetric,
    MeasurementSpanProcessor,
)

from . import dashboard

CONFIG = dashboard.CONFIG
SPEC = CpuTimingMetric(target="score_batch", package="webapp", metric="ScoreCpuTime")


def load_yaml(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONFIG / relative).read_text())
    return document


COLLECTOR = load_yaml("otelcol.yaml")
COMPOSE = load_yaml("compose.yaml")
PROMETHEUS = load_yaml("prometheus.yml")
DATASOURCES = load_yaml("grafana/provisioning/datasources/datasources.yaml")
PROVIDERS = load_yaml("grafana/provisioning/dashboards/dashboards.yaml")


# ------------------------------------------------------------------ names the library emits

_UNIT_SUFFIX = {"s": "seconds", "By": "bytes", "J": "joules"}


def prometheus_name(instrument: str, unit: str, *, counter: bool = False) -> str:
    """The collector's (and Prometheus') translation of an OpenTelemetry metric name.

    Characters outside ``[a-zA-Z0-9_:]`` become ``_``; the unit is appended
    (``s`` -> ``_seconds``, ``By`` -> ``_bytes``, ``J`` -> ``_joules``;
    annotations such as ``{error}`` add nothing); monotonic counters end in
    ``_total``.  Histograms are the base name with ``_bucket``, ``_sum`` and
    ``_count``.
    """
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", instrument.lower())
    name = re.sub(r"__+", "_", name)
    suffix = _UNIT_SUFFIX.get(unit)
    if suffix and not name.endswith(f"_{suffix}"):
        name += f"_{suffix}"
    if counter:
        name += "_total"
    return name


def expected_series() -> dict[str, str]:
    """Prometheus sample name -> its histogram/counter base name, by the translation rules."""
    series: dict[str, str] = {}
    histograms = [(m.name, m.unit) for m in TASK_METRICS] + [(SPEC.metric_name, SPEC.unit)]
    for name, unit in histograms:
        base = prometheus_name(name, unit)
        for suffix in ("_bucket", "_sum", "_count"):
            series[base + suffix] = base
    errors = prometheus_name(PROCESSOR_ERRORS, "{error}", counter=True)
    series[errors] = errors
    return series


def label_name(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


ALLOWED_LABELS = {label_name(a) for a in METRIC_ATTRIBUTES} | {"le", "job", "instance"}


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """What opentelemetry-exporter-prometheus serves for every instrument: name -> labels."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        processor = MeasurementSpanProcessor([SPEC], meter_provider=provider)
        figures: dict[str, Any] = {metric.source: 1.0 for metric in TASK_METRICS}
        task = ReadableSpan(
            "fit",
            context=SpanContext(1, 2, False),
            attributes={
                attr.TASK_ID: "t",
                attr.TASK_STATUS: "finished",
                attr.HOST_NAME: "h",
                attr.MACHINE: "m",
                **figures,
            },
        )
        timer = ReadableSpan(
            "score_batch",
            context=SpanContext(1, 3, False),
            attributes={
                attr.TIMER_METHOD: "score_batch",
                attr.TASK_LABEL: "fit",
                attr.HOST_NAME: "h",
                attr.TIMER_START_CPU_TIME: 1.0,
                attr.TIMER_END_CPU_TIME: 2.5,
                attr.TIMER_START_UTC: "2026-01-01T00:00:00+00:00",
                attr.TIMER_END_UTC: "2026-01-01T00:00:02+00:00",
            },
        )
        broken = ReadableSpan(
            "bad",
            context=SpanContext(1, 4, False),
            attributes={attr.TIMER_METHOD: "score_batch", attr.TIMER_START_CPU_TIME: 1.0},
        )
        for span in (task, timer, broken):
            processor.on_end(span)
        from prometheus_client import generate_latest

        text = generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(("taskmeter_", "webapp_")):
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_translation_rules_match_the_prometheus_exporter(exported: dict[str, set[str]]) -> None:
    """The rules the dashboard is written against give exactly what a real exporter serves."""
    assert set(exported) == set(expected_series())
    scope_labels = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
    for name, labels in exported.items():
        assert labels - scope_labels <= ALLOWED_LABELS, name


# ------------------------------------------------------------------ the dashboard


def test_every_dashboard_query_uses_metrics_and_labels_the_library_emits() -> None:
    series = expected_series()
    measurement_base = prometheus_name(SPEC.metric_name, SPEC.unit)
    for expr in dashboard.expressions():
        metrics, labels = dashboard.names_in(
            dashboard.substitute(expr, measurement=measurement_base)
        )
        assert metrics, expr
        unknown = metrics - set(series)
        assert not unknown, f"{unknown} in {expr}"
        assert labels <= ALLOWED_LABELS, f"{labels - ALLOWED_LABELS} in {expr}"
        if "_bucket" in expr:
            assert "le" in labels, f"histogram_quantile needs le: {expr}"


def test_dashboard_charts_every_task_metric_and_the_measurements() -> None:
    used = set()
    for expr in dashboard.expressions():
        used |= dashboard.names_in(dashboard.substitute(expr))[0]
    bases = {expected_series()[name] for name in used}
    for metric in TASK_METRICS:
        assert prometheus_name(metric.name, metric.unit) in bases, metric.name
    assert prometheus_name(PROCESSOR_ERRORS, "{error}", counter=True) in bases
    measurement_panels = [p for p in dashboard.panels() if p.get("repeat") == "measurement"]
    assert measurement_panels, "a panel repeated for each Measurement"


def test_dashboard_variables_select_on_names_the_library_emits() -> None:
    series = expected_series()
    for query in dashboard.variable_queries():
        selector, label = dashboard.label_values(dashboard.substitute(query))
        metrics, labels = dashboard.names_in(selector)
        assert label in ALLOWED_LABELS | {"__name__"}, query
        assert labels <= ALLOWED_LABELS | {"__name__"}, query
        for name in metrics:  # a name, or a __name__ regex that must match some
            assert name in series or any(re.fullmatch(name, s) for s in series), query
    measurement = next(
        v for v in dashboard.load()["templating"]["list"] if v["name"] == "measurement"
    )
    pattern = re.compile(measurement["regex"].strip("/"))
    captured = {m.group(1) for name in series if (m := pattern.match(name))}
    assert prometheus_name(SPEC.metric_name, SPEC.unit) in captured


def test_dashboard_datasources_are_provisioned() -> None:
    uids = {source["uid"] for source in DATASOURCES["datasources"]}
    for panel in dashboard.panels():
        assert panel["datasource"]["uid"] in uids
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
    for variable in dashboard.load()["templating"]["list"]:
        assert variable["datasource"]["uid"] in uids


# ------------------------------------------------------------------ the collector and the stack


def _components(kind: str) -> set[str]:
    return set(COLLECTOR.get(kind) or {})


def test_collector_pipelines_use_defined_components() -> None:
    pipelines = COLLECTOR["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for pipeline in pipelines.values():
        assert set(pipeline["receivers"]) <= _components("receivers")
        assert set(pipeline["processors"]) <= _components("processors")
        assert set(pipeline["exporters"]) <= _components("exporters")
        assert pipeline["processors"][0] == "memory_limiter"  # first, as the collector advises
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    protocols = COLLECTOR["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_addresses_between_the_parts_agree() -> None:
    services = COMPOSE["services"]
    jaeger_host, jaeger_port = _host_port(COLLECTOR["exporters"]["otlp/jaeger"]["endpoint"])
    assert jaeger_host in services and jaeger_port == 4317  # Jaeger's OTLP/gRPC port
    _, metrics_port = _host_port(COLLECTOR["exporters"]["prometheus"]["endpoint"])
    (job,) = PROMETHEUS["scrape_configs"]
    assert job["honor_labels"] is True  # keep the job/instance the collector derives
    (target,) = job["static_configs"][0]["targets"]
    scrape_host, scrape_port = _host_port(target)
    assert scrape_host == "otel-collector" and scrape_host in services
    assert scrape_port == metrics_port
    urls = {source["type"]: source["url"] for source in DATASOURCES["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}
    published = {p.rsplit(":", 1)[-1] for p in services["otel-collector"]["ports"]}
    assert published == {"4317", "4318"}


def test_compose_mounts_files_that_exist_where_each_part_reads_them() -> None:
    services = COMPOSE["services"]
    mounts: dict[str, str] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert (CONFIG / source).exists(), source
            mounts[target] = source
    collector_args = " ".join(services["otel-collector"]["command"])
    config_target = collector_args.split("--config=")[1].split()[0]
    assert Path(mounts[config_target]).name == "otelcol.yaml"
    prometheus_args = " ".join(services["prometheus"]["command"])
    assert Path(mounts[prometheus_args.split("--config.file=")[1].split()[0]]).name == (
        "prometheus.yml"
    )
    (provider,) = PROVIDERS["providers"]
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == "./grafana/dashboards"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{dashboard.DASHBOARD.name}"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"


def test_each_dashboard_query_uses_labels_its_own_metrics_carry(
    exported: dict[str, set[str]],
) -> None:
    """Per expression, every label it selects or groups on is one the real exporter serves
    on the metrics of that expression (not merely on some metric of the library)."""
    measurement_base = prometheus_name(SPEC.metric_name, SPEC.unit)
    scrape_labels = {"job", "instance"}
    for expr in dashboard.expressions():
        metrics, labels = dashboard.names_in(
            dashboard.substitute(expr, measurement=measurement_base)
        )
        carried = set().union(*(exported[name] for name in metrics))
        assert labels <= carried | scrape_labels, f"{labels - carried - scrape_labels} in {expr}"
    for query in dashboard.variable_queries():
        selector, label = dashboard.label_values(dashboard.substitute(query))
        metrics, labels = dashboard.names_in(selector)
        named = {m for m in metrics if m in exported} or {
            name for name in exported if any(re.fullmatch(m, name) for m in metrics)
        }
        carried = set().union(*(exported[name] for name in named)) | {"__name__"}
        assert named, query
        assert (labels | {label}) - {"__name__"} <= carried | scrape_labels, query
