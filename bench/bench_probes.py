"""What each energy and GPU probe adds to a task, as a ratio to a task with only the
default CPU and memory probes, measured in the same run.

    python bench/bench_probes.py [--quick]

Hardware this machine lacks is replaced by the test suite's stand-ins: a
powercap tree of regular files (two packages with DRAM; reading a regular file
costs about what reading sysfs does) and a fake NVML module with four GPUs
(the figures are then taskmeter's own overhead, without the driver's call
latency).  Real RAPL and NVML are measured too where this machine has them.

Two shapes of workload:

* ``nested``: tasks inside a long-running root task (the usual case: the
  probes' samplers stay registered with the monitor);
* ``top-level``: one task after another with nothing around them (each task
  starts and stops the samplers of the probes that need them).

Rounds of every set-up are interleaved and the median round is reported, so
drift affects all alike.  With a ``prometheus`` binary on the PATH, the cost
of one Prometheus read (for tasks longer than ``min_duration``) is measured
against a real server too.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the stand-ins live in tests/

from tests.fakes import FakeGpu, FakeNvml, FakePowercap, gpu_uuid  # noqa: E402

import taskmeter  # noqa: E402
from _sdk import DropExporter  # noqa: E402
from taskmeter import Task  # noqa: E402
from taskmeter.figures import Figures  # noqa: E402
from taskmeter.probes import (  # noqa: E402
    CpuTimeProbe,
    GpuMemoryProbe,
    Nvml,
    NvmlEnergyProbe,
    PeakMemoryProbe,
    Probe,
    PrometheusProbe,
    RaplProbe,
)
from taskmeter.probes.torch_memory import TorchCudaHighWater  # noqa: E402


class FakeCuda:
    """torch.cuda's allocator statistics for one device, initialised."""

    def is_initialized(self) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def max_memory_allocated(self, device: int) -> int:
        return 1 << 30

    def reset_peak_memory_stats(self, device: int) -> None:
        return None


def fake_powercap(base: Path) -> FakePowercap:
    tree = FakePowercap(base)
    for socket in (0, 1):
        tree.zone(f"intel-rapl:{socket}", f"package-{socket}")
        tree.zone(f"intel-rapl:{socket}:0", "core")
        tree.zone(f"intel-rapl:{socket}:1", "dram")
    return tree


def fake_nvml(counter: bool) -> Nvml:
    gpus = [
        FakeGpu(gpu_uuid(i), energy_mj=1_000_000 if counter else None, processes={1: 1 << 30})
        for i in range(4)
    ]
    return Nvml(FakeNvml(gpus), environ={})


def setups(tree: FakePowercap) -> dict[str, list[Probe]]:
    """Probe sets by name; each is added to the default CPU and memory probes."""
    fake_torch = TorchCudaHighWater(SimpleNamespace(cuda=FakeCuda()))
    found: dict[str, list[Probe]] = {
        "baseline (cpu, memory)": [],
        "+ rapl (fake, 2 packages + dram)": [RaplProbe(tree.root, ("package", "dram"))],
        "+ nvml-counter (fake, 4 GPUs)": [NvmlEnergyProbe(fake_nvml(counter=True))],
        "+ nvml-sampled (fake, 4 GPUs)": [NvmlEnergyProbe(fake_nvml(counter=False))],
        "+ gpu-memory (fake NVML + torch)": [
            GpuMemoryProbe(fake_nvml(counter=True), torch_source=fake_torch)
        ],
        "+ prometheus (task < min_duration)": [
            PrometheusProbe("http://127.0.0.1:9", {"system": "x[{elapsed}ms]"})
        ],
    }
    found["+ all of the above"] = [p for probes in list(found.values()) for p in probes]
    real_rapl = RaplProbe()
    if real_rapl.available:
        found["+ rapl (this machine)"] = [real_rapl]
    real_gpu = NvmlEnergyProbe()
    if real_gpu.available:
        found[f"+ {real_gpu.source} (this machine)"] = [real_gpu, GpuMemoryProbe()]
    return found


def per_task_us(probes: list[Probe], nested: bool, n: int) -> float:
    taskmeter.set_probes([CpuTimeProbe(), PeakMemoryProbe(), *probes])
    gc.collect()
    with ExitStack() as stack:
        if nested:
            stack.enter_context(Task("bench root"))
        start = time.perf_counter()
        for _ in range(n):
            with Task("bench task"):
                pass
        elapsed = time.perf_counter() - start
    return elapsed / n * 1e6


def compare(found: dict[str, list[Probe]], nested: bool, n: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in found}
    for round_no in range(rounds + 1):
        for name, probes in found.items():
            cost = per_task_us(probes, nested, n)
            if round_no:  # the first round warms up
                samples[name].append(cost)
    return {name: statistics.median(values) for name, values in samples.items()}


@contextmanager
def real_prometheus(workdir: Path) -> Iterator[str | None]:
    import shutil

    from tests.prometheus import MetricsEndpoint, ScrapeTarget, running_prometheus

    binary = shutil.which("prometheus")
    if binary is None:
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()

    def render() -> str:
        return f"bench_energy_joules_total {100 * (time.time() - start):.3f}\n"

    with (
        MetricsEndpoint(render) as endpoint,
        running_prometheus(
            binary, workdir, [ScrapeTarget(endpoint.address)], scrape_interval_s=0.5
        ) as server,
    ):
        server.wait_for_samples("bench_energy_joules_total", 3)
        yield server.url


def prometheus_read_ms(url: str, n: int) -> float:
    probe = PrometheusProbe(
        url, {"system": "sum(increase(bench_energy_joules_total[{elapsed}ms]))"}, min_duration_s=0
    )
    state = probe.begin()
    time.sleep(1.0)
    costs = []
    for _ in range(n):
        figures = Figures()
        start = time.perf_counter()
        probe.read(state, figures)
        costs.append(time.perf_counter() - start)
        assert "system" in figures.energy_j
    probe.close()
    return statistics.median(costs) * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args(argv)
    n, rounds = (1_000, 3) if args.quick else (10_000, 7)

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    taskmeter.use_tracer_provider(provider)
    print(f"taskmeter {taskmeter.__version__}, Python {sys.version.split()[0]}")
    print(f"cost of one task, SimpleSpanProcessor + dropping exporter (median of {rounds})")
    report: Callable[[str], None] = print
    with tempfile.TemporaryDirectory() as tmp:
        found = setups(fake_powercap(Path(tmp) / "powercap"))
        for nested in (True, False):
            results = compare(found, nested, n, rounds)
            base = results["baseline (cpu, memory)"]
            report(f"\n{'nested under a root task' if nested else 'top-level tasks'}")
            for name, cost in results.items():
                report(f"  {name:38} {cost:7.1f}us  {cost / base:5.2f}x  (+{cost - base:5.1f}us)")
        taskmeter.set_probes(None)
        with real_prometheus(Path(tmp) / "prometheus") as url:
            if url is None:
                report("\nprometheus: no binary on the PATH, query cost not measured")
            else:
                query_ms = prometheus_read_ms(url, 20 if args.quick else 100)
                report(
                    f"\nprometheus read of a task >= min_duration (local server): "
                    f"{query_ms:.2f}ms per read  ({query_ms * 1e3 / base:,.0f}x the "
                    f"baseline task; {query_ms / 1e4 * 100:.3f}% of a 10 s task)"
                )
    taskmeter.use_tracer_provider(None)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
