"""The examples run as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .collector import CollectorUnderTest

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_prints_tree_and_writes_task_file(tmp_path: Path) -> None:
    out = tmp_path / "quickstart.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--out",
            str(out),
            "--data-mib",
            "64",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "quickstart pipeline" in result.stdout
    assert "epoch 2" in result.stdout
    assert f"task file: {out}" in result.stdout
    document = json.loads(out.read_text())
    assert document["status"] == "finished"
    labels = [sub["label"] for sub in document["subtasks"]]
    assert labels == ["load data", "train model", "evaluate"]
    load = document["subtasks"][0]
    assert load["peak_memory"] >= 64 * 1024 * 1024
    train = document["subtasks"][1]
    assert train["cpu_time"] >= 0.35
    assert document["trace_id"] and len(document["trace_id"]) == 32


def run_energy_example(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "energy.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_energy_example_prints_every_figure_or_not_measured() -> None:
    result = run_energy_example("--seconds", "0.2")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    for figure in ("cpu energy", "gpu energy", "system energy", "peak GPU memory"):
        value = lines[figure].strip()
        assert value == "not measured" or value.endswith(")") or value.endswith("MiB"), value
    assert lines["probes"].strip().startswith("process")


def test_energy_example_require_names_what_is_missing() -> None:
    from taskmeter.probes import RaplProbe

    result = run_energy_example("--seconds", "0.1", "--require", "rapl")
    if RaplProbe().available:
        assert result.returncode == 0
        assert "(rapl)" in result.stdout
    else:
        assert result.returncode == 2
        assert "energy source 'rapl' asked for but" in result.stderr


def test_energy_example_takes_system_energy_from_a_configured_prometheus(
    tmp_path: Path,
) -> None:
    """The TOML file named by TASKMETER_ENERGY_CONFIG, a machine label, a real Prometheus."""
    import os
    import time

    from tests.conftest import require_executable
    from tests.prometheus import MetricsEndpoint, ScrapeTarget, running_prometheus

    binary = require_executable("prometheus", "prometheus")
    start = time.time()

    def render() -> str:
        return f"demo_energy_joules_total {50.0 * (time.time() - start):.4f}\n"

    with (
        MetricsEndpoint(render) as endpoint,
        running_prometheus(
            binary,
            tmp_path,
            [ScrapeTarget(endpoint.address, {"host": "demo-box"})],
            scrape_interval_s=0.5,
        ) as server,
    ):
        server.wait_for_samples("demo_energy_joules_total", 4)
        config = tmp_path / "energy.toml"
        config.write_text(
            f'[prometheus]\nurl = "{server.url}"\nmin_duration = 0.5\n\n'
            "[machines.demo-box.power_queries]\n"
            'system = \'sum(increase(demo_energy_joules_total{{host="{machine}"}}'
            "[{elapsed}ms]))'\n"
        )
        env = dict(os.environ)
        env.update(
            TASKMETER_ENERGY_CONFIG=str(config),
            TASKMETER_MACHINE="demo-box",
            no_proxy="127.0.0.1",
            NO_PROXY="127.0.0.1",
        )
        result = run_energy_example("--seconds", "2", env=env)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("system energy"))
    assert line.endswith("J (prometheus)")
    joules = float(line.split(":")[1].split()[0])
    task_line = next(line for line in result.stdout.splitlines() if line.startswith("task:"))
    duration = float(task_line.rsplit(",", 1)[1].split()[0])
    assert abs(joules - 50.0 * duration) <= 0.05 * 50.0 * duration  # 50 W


def test_manual_spans_example_exports_enriched_spans_to_a_collector(
    rotel_collector: CollectorUnderTest,
) -> None:
    """The spans the example selects arrive at a real collector with known CPU and memory."""
    from taskmeter import attributes as attr

    from .collector import attributes_of, wait_until
    from .helpers import MIB

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "manual_spans.py"),
            "--otlp-endpoint",
            rotel_collector.grpc_endpoint,
            "--mib",
            "96",
            "--cpu-s",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "report: not enriched" in result.stdout
    sink = rotel_collector.sink
    names = ("pipeline", "load data", "train model", "report")
    assert wait_until(lambda: all(sink.spans(n) for n in names), timeout=20)
    spans = {name: attributes_of(sink.spans(name)[0].attributes) for name in names}
    assert 0.3 <= spans["train model"][attr.CPU_THREAD] < 0.35
    assert spans["load data"][attr.MEMORY_PEAK] >= 96 * MIB
    assert spans["train model"][attr.MEMORY_PEAK] < spans["load data"][attr.MEMORY_PEAK]
    assert spans["pipeline"][attr.CPU_TIME] >= spans["train model"][attr.CPU_TIME]
    assert spans["pipeline"][attr.MEMORY_PEAK] >= spans["load data"][attr.MEMORY_PEAK]
    assert attr.CPU_TIME not in spans["report"]
