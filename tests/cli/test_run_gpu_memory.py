"""``taskmeter run`` reports the peak GPU memory of the command's processes (through NVML)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import taskmeter
from taskmeter import _log
from taskmeter.cli import main
from taskmeter.cli._treegpu import TreeGpuMemory
from taskmeter.probes import GpuMemoryProbe, Nvml, ProcessProbe
from taskmeter.probes.nvml import GpuDevice
from tests.fakes import LIBRARY_NOT_FOUND, FakeGpu, FakeNvml, gpu_uuid

GIB = 1 << 30


def tree_command(pid_dir: Path) -> list[str]:
    """A python child that publishes its pid, and a grandchild that publishes its own."""
    script = pid_dir / "tree.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "pid_dir, role = sys.argv[1], sys.argv[2]\n"
        "path = os.path.join(pid_dir, role)\n"
        "with open(path + '.tmp', 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        "os.rename(path + '.tmp', path)\n"
        "if role == 'child':\n"
        "    grandchild = subprocess.Popen([sys.executable, __file__, pid_dir, 'grandchild'])\n"
        "    time.sleep(1.0)\n"
        "    grandchild.wait()\n"
        "else:\n"
        "    time.sleep(0.8)\n"
    )
    return [sys.executable, str(script), str(pid_dir), "child"]


class TreeGpu(FakeGpu):
    """A GPU whose process list holds the processes of the test's tree that have
    published their pid: ``usage`` maps a role (``child``, ``grandchild``) to bytes."""

    def __init__(self, uuid: str, pid_dir: Path, usage: dict[str, int]) -> None:
        super().__init__(uuid)
        self.pid_dir = pid_dir
        self.usage = usage

    @property  # type: ignore[override]
    def processes(self) -> dict[int, int | None]:
        listed: dict[int, int | None] = {1: 5 * GIB}  # another user's process
        for role, used in self.usage.items():
            path = self.pid_dir / role
            if path.exists():
                listed[int(path.read_text())] = used
        return listed

    @processes.setter
    def processes(self, value: dict[int, int | None]) -> None:
        pass  # the dataclass's initial value: the list is made from the pid files


def run_with_gpus(tmp_path: Path, nvml: Nvml) -> dict[str, object]:
    """``taskmeter run`` the tree with a GPU memory probe over ``nvml``; the task file."""
    taskmeter.set_probes([ProcessProbe(), GpuMemoryProbe(nvml, interval_s=0.05)])
    out = tmp_path / "run.json"
    command = tree_command(tmp_path)
    assert main(["run", "-q", "--interval", "0.05", "-o", str(out), "--", *command]) == 0
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_peak_gpu_memory_of_the_command(tmp_path: Path) -> None:
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {"child": 3 * GIB})
    document = run_with_gpus(tmp_path, Nvml(FakeNvml([gpu]), environ={}))
    assert document["peak_gpu_memory"] == 3 * GIB


def test_peak_gpu_memory_sums_the_tree_on_one_gpu(tmp_path: Path) -> None:
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {"child": 1 * GIB, "grandchild": 2 * GIB})
    document = run_with_gpus(tmp_path, Nvml(FakeNvml([gpu]), environ={}))
    assert document["peak_gpu_memory"] == 3 * GIB


def test_peak_gpu_memory_sums_the_tree_over_gpus(tmp_path: Path) -> None:
    first = TreeGpu(gpu_uuid(0), tmp_path, {"child": 1 * GIB})
    second = TreeGpu(gpu_uuid(1), tmp_path, {"grandchild": 4 * GIB})
    document = run_with_gpus(tmp_path, Nvml(FakeNvml([first, second]), environ={}))
    assert document["peak_gpu_memory"] == 5 * GIB


def test_no_gpu_memory_figure_when_the_tree_is_on_no_gpu(tmp_path: Path) -> None:
    # NVML works, but lists none of the command's processes (only another one).
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {})
    document = run_with_gpus(tmp_path, Nvml(FakeNvml([gpu]), environ={}))
    assert document["peak_gpu_memory"] is None


def test_no_gpu_memory_figure_without_nvml(tmp_path: Path) -> None:
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {"child": 3 * GIB})
    fake = FakeNvml([gpu], init_error=LIBRARY_NOT_FOUND)
    document = run_with_gpus(tmp_path, Nvml(fake, environ={}))
    assert document["peak_gpu_memory"] is None


@pytest.mark.parametrize("error", [3, 15])  # Not Supported; GPU is lost
def test_a_gpu_whose_processes_cannot_be_listed_gives_no_figure_and_no_error(
    tmp_path: Path, error: int
) -> None:
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {"child": 3 * GIB})
    gpu.processes_error = error
    document = run_with_gpus(tmp_path, Nvml(FakeNvml([gpu]), environ={}))
    assert document["peak_gpu_memory"] is None


def test_the_summary_shows_the_peak_gpu_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gpu = TreeGpu(gpu_uuid(0), tmp_path, {"child": 3 * GIB})
    taskmeter.set_probes([ProcessProbe(), GpuMemoryProbe(Nvml(FakeNvml([gpu]), environ={}))])
    assert main(["run", "--no-status", "--interval", "0.05", "--", *tree_command(tmp_path)]) == 0
    lines = capsys.readouterr().err.splitlines()
    (row,) = [line for line in lines if line.split()[:3] == ["peak", "GPU", "memory"]]
    assert "3.0 GiB" in row
    assert "sampled every 0.05 s" in row


def test_a_process_whose_usage_nvml_does_not_report_makes_the_sample_count_for_nothing() -> None:
    gpu = FakeGpu(gpu_uuid(0), processes={100: 1 * GIB, 101: None})
    sampler = TreeGpuMemory(Nvml(FakeNvml([gpu]), environ={}))
    assert sampler.nvml.start()
    sampler.sample([100])
    assert sampler.peak_bytes == 1 * GIB
    sampler.sample([100, 101])  # part of the tree unknown: no sum is made of the rest
    assert sampler.peak_bytes == 1 * GIB


def test_an_unexpected_error_in_a_sample_is_counted_not_raised() -> None:
    class Broken(Nvml):
        def devices(self) -> tuple[GpuDevice, ...]:
            raise RuntimeError("driver trouble")

    sampler = TreeGpuMemory(Broken(FakeNvml([FakeGpu(gpu_uuid(0))]), environ={}))
    assert sampler.nvml.start()
    sampler.sample([100])
    assert sampler.peak_bytes is None
    assert _log.error_counts["run.gpu-memory"] == 1
