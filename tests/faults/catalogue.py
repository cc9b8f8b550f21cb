"""The fault catalogue: every component taskmeter depends on, failing in every way it can.

Each cell of the table *component x fault kind* is either a :class:`Scenario`
(registered with :func:`scenario`) or a reason why the fault cannot happen
to that component (:data:`NOT_APPLICABLE`).  ``test_matrix.py`` runs every
scenario and checks that the table has no hole, so a component is added as
one row: a name in :data:`COMPONENTS`, then one scenario or one reason per
fault kind.  The rows of auto-instrumentation, span enrichment and worker
processes are in modules of their own (imported at the end of this one).

A scenario injects its fault, runs :func:`run_application` (a computation of
known result inside a task with a task file, its spans captured) and
returns the :class:`Outcome`.  The matrix then checks what holds for every
fault (the application's result is right, the task finished, the error was
counted under ``counted`` and logged at most once) and the scenario's own
``check`` says what telemetry survived.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import taskmeter
from taskmeter import Task, TaskStatus, _log, load_task
from taskmeter.probes import (
    CpuTimeProbe,
    GpuMemoryProbe,
    LinuxRssHighWater,
    NvmlEnergyProbe,
    PeakMemoryProbe,
    Probe,
    ProcessProbe,
    PrometheusProbe,
    RaplProbe,
)
from taskmeter.probes.nvml import Nvml
from taskmeter.testing import capture_spans
from tests.export.servers import Answer, closed_port, scripted_endpoint, silent_endpoint
from tests.fakes import FakeGpu, FakeNvml, FakePowercap, gpu_uuid

COMPONENTS = (
    "probe.cpu",
    "probe.memory",
    "probe.process",
    "probe.rapl",
    "probe.nvml",
    "probe.prometheus",
    "monitor",
    "task-file",
    "measure-processor",
    "span-exporter",
    "metric-exporter",
    "spool-replay",
    "propagation",
    "instrumentation",
    "enrich-processor",
    "workers",
)
FAULTS = ("unreadable", "error", "timeout", "refused", "disk-full", "permission", "garbage")

EXPECTED = sum(i * i for i in range(20_000))


def application() -> int:
    """The measured program: its result must never change whatever fails below it."""
    return sum(i * i for i in range(20_000))


@dataclass
class Outcome:
    """What the application and its telemetry ended with."""

    result: int
    task: Task
    spans: list[ReadableSpan]
    file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def loaded(self) -> Task:
        """The task file, as a reader loads it."""
        assert self.file is not None
        return load_task(self.file)

    def span(self, name: str = "app") -> ReadableSpan:
        [found] = [s for s in self.spans if s.name == name]
        return found


@dataclass
class Scenario:
    component: str
    fault: str
    run: Callable[[Path, pytest.MonkeyPatch], Outcome]
    counted: str | None
    """The ``error_counts`` key (or prefix ending in ``.``) that must count the fault; ``None``
    for a figure that is simply absent (logged once at debug level)."""
    check: Callable[[Outcome], None]
    """What must survive: the other figures, the spans, the data."""
    logged: str | None = None
    """Text that exactly one warning of this process carries (a fault reported once, by a
    message that does not start with its key, such as a setting's name)."""


SCENARIOS: dict[tuple[str, str], Scenario] = {}

NOT_APPLICABLE: dict[tuple[str, str], str] = {}


def scenario(
    component: str,
    fault: str,
    *,
    counted: str | None,
    check: Callable[[Outcome], None],
    logged: str | None = None,
) -> Callable[[Callable[[Path, pytest.MonkeyPatch], Outcome]], Callable[..., Outcome]]:
    """Register the decorated function as the scenario of one cell."""
    assert component in COMPONENTS and fault in FAULTS, (component, fault)

    def register(
        run: Callable[[Path, pytest.MonkeyPatch], Outcome],
    ) -> Callable[[Path, pytest.MonkeyPatch], Outcome]:
        assert (component, fault) not in SCENARIOS
        SCENARIOS[(component, fault)] = Scenario(component, fault, run, counted, check, logged)
        return run

    return register


def not_applicable(component: str, reason: str, *faults: str) -> None:
    for fault in faults:
        assert (component, fault) not in NOT_APPLICABLE
        NOT_APPLICABLE[(component, fault)] = reason


def run_application(
    tmp_path: Path,
    *,
    probes: Sequence[Probe] | None = None,
    processors: Sequence[SpanProcessor] = (),
    during: Callable[[Task], None] | None = None,
    file: Path | None = None,
) -> Outcome:
    """Run :func:`application` in a task with a task file and captured spans."""
    if probes is not None:
        taskmeter.set_probes(probes)
    path = file if file is not None else tmp_path / "app.json"
    with capture_spans(*processors) as captured, Task("app", file=path) as task:
        if during is not None:
            during(task)
        with Task("step"):
            result = application()
    return Outcome(result, task, captured.spans, path)


# ---------------------------------------------------------------- shared checks


def cpu_survives(outcome: Outcome) -> None:
    assert outcome.task.cpu_time is not None and outcome.task.cpu_time > 0
    attributes = outcome.span().attributes or {}
    assert attributes["taskmeter.cpu.time"] == outcome.task.cpu_time
    assert outcome.loaded().status is TaskStatus.FINISHED


def memory_and_cpu_survive(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.task.peak_memory is not None


def no_energy_but_the_rest(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.task.cpu_power is None
    assert outcome.task.gpu_power is None
    assert outcome.task.system_power is None
    assert "taskmeter.energy.cpu" not in (outcome.span().attributes or {})


# ---------------------------------------------------------------- probe.cpu


class FailingClock:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __call__(self) -> tuple[float, float]:
        raise self.exc


def _cpu_clock_fails(exc: BaseException) -> Callable[[Path, pytest.MonkeyPatch], Outcome]:
    def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
        return run_application(
            tmp_path, probes=[CpuTimeProbe(FailingClock(exc)), PeakMemoryProbe()]
        )

    return run


def _cpu_absent_memory_kept(outcome: Outcome) -> None:
    assert outcome.task.cpu_time is None
    assert outcome.task.peak_memory is not None
    assert "taskmeter.cpu.time" not in (outcome.span().attributes or {})
    assert outcome.loaded().peak_memory == outcome.task.peak_memory


scenario("probe.cpu", "error", counted="probe.cpu.begin", check=_cpu_absent_memory_kept)(
    _cpu_clock_fails(OSError(errno.EIO, "getrusage failed"))
)
scenario("probe.cpu", "garbage", counted="probe.cpu.begin", check=_cpu_absent_memory_kept)(
    _cpu_clock_fails(ValueError("clock returned nonsense"))
)
not_applicable(
    "probe.cpu",
    "getrusage reads no file and asks no server: it can only fail (error, garbage)",
    "unreadable",
    "timeout",
    "refused",
    "disk-full",
    "permission",
)


# ---------------------------------------------------------------- probe.memory


def _fake_proc(tmp_path: Path, status: bytes | None, clear_refs: bool = True) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    if status is not None:
        (proc / "self" / "status").write_bytes(status)
    if clear_refs:
        (proc / "self" / "clear_refs").write_bytes(b"")
    return proc


def _memory_absent(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.task.peak_memory is None
    assert "taskmeter.memory.peak" not in (outcome.span().attributes or {})


@scenario("probe.memory", "unreadable", counted=None, check=_memory_absent)
def _memory_status_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = _fake_proc(tmp_path, status=None)
    probe = PeakMemoryProbe(LinuxRssHighWater(procfs=proc))
    return run_application(tmp_path, probes=[CpuTimeProbe(), probe])


@scenario("probe.memory", "garbage", counted=None, check=_memory_absent)
def _memory_status_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = _fake_proc(tmp_path, status=b"VmHWM:\tlots kB\nVmRSS: \xff\xfe\n")
    probe = PeakMemoryProbe(LinuxRssHighWater(procfs=proc))
    return run_application(tmp_path, probes=[CpuTimeProbe(), probe])


@scenario("probe.memory", "permission", counted=None, check=memory_and_cpu_survive)
def _memory_clear_refs_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # clear_refs cannot be opened (no permission, as in some containers): the peak is
    # then the process's, an upper bound, and still given.
    proc = _fake_proc(tmp_path, status=b"VmHWM:\t  2048 kB\n", clear_refs=False)
    (proc / "self" / "clear_refs").mkdir()  # opening it for writing fails (EISDIR)
    probe = PeakMemoryProbe(LinuxRssHighWater(procfs=proc))
    outcome = run_application(tmp_path, probes=[CpuTimeProbe(), probe])
    assert outcome.task.peak_memory == 2048 * 1024
    return outcome


@scenario("probe.memory", "error", counted="probe.memory.read", check=cpu_survives)
def _memory_read_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = _fake_proc(tmp_path, status=b"VmHWM:\t  2048 kB\n")
    source = LinuxRssHighWater(procfs=proc)
    probe = PeakMemoryProbe(source)

    def broken() -> int:
        raise OSError(errno.EIO, "Input/output error")

    def during(task: Task) -> None:
        monkeypatch.setattr(source, "high_water", broken)

    return run_application(tmp_path, probes=[CpuTimeProbe(), probe], during=during)


not_applicable(
    "probe.memory",
    "the kernel's /proc answers at once or not at all; nothing is written or sent",
    "timeout",
    "refused",
    "disk-full",
)


# ---------------------------------------------------------------- probe.process
# The default probe: CPU time and peak RSS from one getrusage per reading.


def _getrusage_fails(result: Callable[[int], Any]) -> Callable[[Path, pytest.MonkeyPatch], Outcome]:
    def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
        from taskmeter.probes import process as process_module

        monkeypatch.setattr(process_module, "_getrusage", result)
        return run_application(tmp_path, probes=[ProcessProbe()])

    return run


def _raise_eio(who: int) -> Any:
    raise OSError(errno.EIO, "getrusage failed")


def _not_a_rusage(who: int) -> Any:
    return (1.0, 2.0)  # no ru_utime, ru_maxrss...


def _process_figures_absent(outcome: Outcome) -> None:
    task = outcome.task
    assert task.cpu_time is None and task.peak_memory is None
    assert task.duration is not None
    attributes = outcome.span().attributes or {}
    assert "taskmeter.cpu.time" not in attributes and "taskmeter.memory.peak" not in attributes
    assert outcome.loaded().status is TaskStatus.FINISHED


scenario("probe.process", "error", counted="probe.process.begin", check=_process_figures_absent)(
    _getrusage_fails(_raise_eio)
)
scenario("probe.process", "garbage", counted="probe.process.begin", check=_process_figures_absent)(
    _getrusage_fails(_not_a_rusage)
)


@scenario("probe.process", "unreadable", counted=None, check=_memory_absent)
def _process_status_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = _fake_proc(tmp_path, status=None)
    return run_application(tmp_path, probes=[ProcessProbe(LinuxRssHighWater(procfs=proc))])


@scenario("probe.process", "permission", counted=None, check=memory_and_cpu_survive)
def _process_clear_refs_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    proc = _fake_proc(tmp_path, status=b"VmHWM:\t  4096 kB\n", clear_refs=False)
    (proc / "self" / "clear_refs").mkdir()  # opening it for writing fails (EISDIR)
    outcome = run_application(tmp_path, probes=[ProcessProbe(LinuxRssHighWater(procfs=proc))])
    assert outcome.task.peak_memory == 4096 * 1024  # the process's peak: an upper bound
    return outcome


not_applicable(
    "probe.process",
    "getrusage and the kernel's /proc answer at once or not at all; nothing is written or sent",
    "timeout",
    "refused",
    "disk-full",
)


# ---------------------------------------------------------------- probe.rapl


def _rapl(tmp_path: Path) -> tuple[FakePowercap, Any]:
    powercap = FakePowercap(tmp_path / "sys")
    zone = powercap.zone("intel-rapl:0", "package-0")
    return powercap, zone


@scenario("probe.rapl", "garbage", counted="probe.rapl.read", check=no_energy_but_the_rest)
def _rapl_counter_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    powercap, zone = _rapl(tmp_path)
    probe = RaplProbe(powercap.root)

    def during(task: Task) -> None:
        with (zone.path / "energy_uj").open("r+") as handle:
            handle.truncate()
            handle.write("not a number\n")

    return run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe], during=during
    )


@scenario("probe.rapl", "unreadable", counted=None, check=no_energy_but_the_rest)
def _rapl_counter_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    powercap, zone = _rapl(tmp_path)
    (zone.path / "energy_uj").unlink()
    (zone.path / "energy_uj").mkdir()  # present, but reading it fails (EISDIR)
    probe = RaplProbe(powercap.root)
    assert not probe.available
    return run_application(tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe])


@scenario("probe.rapl", "permission", counted="probe.rapl.read", check=no_energy_but_the_rest)
def _rapl_permission_mid_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    powercap, _ = _rapl(tmp_path)
    probe = RaplProbe(powercap.root)
    real_pread = os.pread

    def during(task: Task) -> None:
        def refuse(fd: int, size: int, offset: int) -> bytes:
            if size == 32:  # energy_uj reads
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_pread(fd, size, offset)

        monkeypatch.setattr(os, "pread", refuse)

    outcome = run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe], during=during
    )
    monkeypatch.undo()
    return outcome


@scenario("probe.rapl", "error", counted="probe.rapl.read", check=no_energy_but_the_rest)
def _rapl_zone_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    powercap, _ = _rapl(tmp_path)
    probe = RaplProbe(powercap.root)

    def during(task: Task) -> None:
        for counter in probe._counters:  # the driver unloaded: the descriptors go bad
            os.close(counter.fd)
            counter.fd = os.open(os.devnull, os.O_WRONLY)

    return run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe], during=during
    )


not_applicable(
    "probe.rapl",
    "sysfs counters are read locally, never written or fetched over a network",
    "timeout",
    "refused",
    "disk-full",
)


# ---------------------------------------------------------------- probe.nvml


def _nvml(gpus: list[FakeGpu], **kwargs: Any) -> Nvml:
    return Nvml(FakeNvml(gpus, **kwargs), environ={})


@scenario("probe.nvml", "error", counted="probe.nvml-energy.sample", check=no_energy_but_the_rest)
def _nvml_gpu_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    gpu = FakeGpu(gpu_uuid(0), processes={os.getpid(): 1 << 30})
    nvml = _nvml([gpu])
    energy = NvmlEnergyProbe(nvml, counter_interval_s=0.01)
    probes = [CpuTimeProbe(), PeakMemoryProbe(), energy, GpuMemoryProbe(nvml)]

    def during(task: Task) -> None:
        gpu.failing = True  # "GPU is lost" from every call from now on
        seen = energy.sample_count
        deadline = time.monotonic() + 10.0
        while energy.sample_count < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.005)  # the monitor's reads fail

    return run_application(tmp_path, probes=probes, during=during)


@scenario("probe.nvml", "unreadable", counted=None, check=no_energy_but_the_rest)
def _nvml_library_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    nvml = _nvml([FakeGpu(gpu_uuid(0))], init_error=12)  # NVML Shared Library Not Found
    probe = NvmlEnergyProbe(nvml)
    assert not probe.available
    return run_application(tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe])


@scenario("probe.nvml", "garbage", counted=None, check=memory_and_cpu_survive)
def _nvml_memory_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # The driver reports no usage for this process (usedGpuMemory None): no GPU figure.
    gpu = FakeGpu(gpu_uuid(0), processes={os.getpid(): None})
    outcome = run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), GpuMemoryProbe(_nvml([gpu]))]
    )
    assert outcome.task.peak_gpu_memory is None
    return outcome


@scenario("probe.nvml", "permission", counted=None, check=no_energy_but_the_rest)
def _nvml_no_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    nvml = _nvml([FakeGpu(gpu_uuid(0))], init_error=4)  # NVML_ERROR_NO_PERMISSION
    return run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), NvmlEnergyProbe(nvml)]
    )


not_applicable(
    "probe.nvml",
    "NVML calls are local library calls: they fail (error) but do not time out or connect",
    "timeout",
    "refused",
    "disk-full",
)


# ---------------------------------------------------------------- probe.prometheus


def _prometheus(url: str) -> PrometheusProbe:
    return PrometheusProbe(
        url, {"system": "sum(x[{elapsed}ms])"}, timeout_s=0.3, min_duration_s=0.0
    )


def _prometheus_run(tmp_path: Path, url: str) -> Outcome:
    began = time.monotonic()
    outcome = run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), _prometheus(url)]
    )
    outcome.extra["seconds"] = time.monotonic() - began
    return outcome


def _no_system_energy_quickly(outcome: Outcome) -> None:
    no_energy_but_the_rest(outcome)
    assert outcome.extra["seconds"] < 3.0, "a dead Prometheus costs at most its timeout"


@scenario(
    "probe.prometheus", "timeout", counted="probe.prometheus.query", check=_no_system_energy_quickly
)
def _prometheus_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with silent_endpoint() as endpoint:
        return _prometheus_run(tmp_path, endpoint.url)


@scenario(
    "probe.prometheus", "refused", counted="probe.prometheus.query", check=_no_system_energy_quickly
)
def _prometheus_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _prometheus_run(tmp_path, f"http://127.0.0.1:{closed_port()}")


@scenario(
    "probe.prometheus", "error", counted="probe.prometheus.query", check=_no_system_energy_quickly
)
def _prometheus_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(500, body=b"internal error")] * 4) as endpoint:
        return _prometheus_run(tmp_path, endpoint.url)


@scenario("probe.prometheus", "garbage", counted=None, check=_no_system_energy_quickly)
def _prometheus_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    answers = [Answer(200, body=b'{"status": "success", "data": {"resultType": "matrix"}}')] * 4
    with scripted_endpoint(*answers) as endpoint:
        return _prometheus_run(tmp_path, endpoint.url)


@scenario(
    "probe.prometheus",
    "permission",
    counted="probe.prometheus.query",
    check=_no_system_energy_quickly,
)
def _prometheus_forbidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(403)] * 4) as endpoint:
        return _prometheus_run(tmp_path, endpoint.url)


not_applicable(
    "probe.prometheus",
    "the probe reads Prometheus over HTTP; it has no file to read or write",
    "unreadable",
    "disk-full",
)


# ---------------------------------------------------------------- monitor


class _SampledBroken(RaplProbe):
    """A RAPL probe whose periodic sample fails (a counter read by the monitor thread)."""

    name = "rapl"

    def sample(self) -> None:
        raise OSError(errno.EIO, "sample failed")


@scenario("monitor", "error", counted="monitor.probe.rapl", check=memory_and_cpu_survive)
def _monitor_job_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    powercap, zone = _rapl(tmp_path)
    probe = _SampledBroken(powercap.root)
    # A sample every 5 ms, well within the counter's wrap period (which a
    # loaded machine must not exceed between the task's own reads).
    probe.sample_interval = 0.005
    assert probe.wrap_period_s > 60

    def during(task: Task) -> None:
        deadline = time.monotonic() + 5
        while _log.error_counts["monitor.probe.rapl"] < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        zone.advance(2.0)

    outcome = run_application(
        tmp_path, probes=[CpuTimeProbe(), PeakMemoryProbe(), probe], during=during
    )
    assert _log.error_counts["monitor.probe.rapl"] >= 3, "the failing job kept its schedule"
    assert outcome.task.cpu_power == 2.0  # its own reads still work
    return outcome


@scenario("monitor", "permission", counted="monitor.thread", check=memory_and_cpu_survive)
def _monitor_thread_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # The process may start no more threads (RLIMIT_NPROC, a container's pids limit).
    from taskmeter import monitor

    fresh = monitor.Monitor()
    monkeypatch.setattr(monitor, "_monitor", fresh)

    real_start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name == "taskmeter-monitor":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    outcome = run_application(tmp_path)
    monkeypatch.undo()
    return outcome


not_applicable(
    "monitor",
    "the monitor runs callbacks; their own faults are the rows of the components they call",
    "unreadable",
    "timeout",
    "refused",
    "disk-full",
    "garbage",
)


# ---------------------------------------------------------------- task-file


def _file_kept_or_absent(outcome: Outcome) -> None:
    assert outcome.task.cpu_time is not None
    attributes = outcome.span().attributes or {}
    assert attributes["taskmeter.cpu.time"] == outcome.task.cpu_time


@scenario("task-file", "permission", counted="taskfile.save", check=_file_kept_or_absent)
def _taskfile_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    import tempfile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    outcome = run_application(tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / "app.json").exists()
    outcome.file = None
    return outcome


@scenario("task-file", "unreadable", counted="taskfile.save", check=_file_kept_or_absent)
def _taskfile_parent_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    (tmp_path / "blocker").write_text("")
    outcome = run_application(tmp_path, file=tmp_path / "blocker" / "app.json")
    outcome.file = None
    return outcome


@scenario("task-file", "disk-full", counted="taskfile.save", check=_file_kept_or_absent)
def _taskfile_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # A real limit, enforced by the kernel: files of this process may not exceed 4 KiB
    # (EFBIG, as a full disk gives ENOSPC), in a child process.
    program = textwrap.dedent(
        f"""
        import json, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from taskmeter import Task, _log
        path = {str(tmp_path / "app.json")!r}
        with Task("app", file=path) as task:
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            for i in range(40):
                with Task(f"step {{i}}"):
                    pass
            result = sum(i * i for i in range(20_000))
        print(json.dumps({{"result": result, "errors": dict(_log.error_counts),
                           "cpu": task.cpu_time, "status": task.status.value}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKMETER_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["errors"].get("taskfile.save", 0) >= 1
    assert "File too large" in done.stderr  # logged
    _log.error_counts["taskfile.save"] += report["errors"]["taskfile.save"]
    task = Task.model_validate(
        {"label": "app", "status": report["status"], "cpu_time": report["cpu"]}
    )
    outcome = Outcome(report["result"], task, [], tmp_path / "app.json")
    kept = outcome.loaded()  # the last file that fitted is still whole
    assert kept.status is TaskStatus.RUNNING
    outcome.extra["kept"] = kept
    return outcome


def _disk_full_check(outcome: Outcome) -> None:
    assert outcome.task.cpu_time is not None
    assert outcome.extra["kept"].label == "app"


SCENARIOS[("task-file", "disk-full")].check = _disk_full_check
not_applicable(
    "task-file",
    "writing a local file neither times out nor connects; its content is taskmeter's own",
    "timeout",
    "refused",
    "garbage",
)


@scenario("task-file", "error", counted="taskfile.save", check=_file_kept_or_absent)
def _taskfile_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    real_replace = os.replace

    def during(task: Task) -> None:
        def fail(src: Any, dst: Any) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "replace", fail)

    outcome = run_application(tmp_path, during=during)
    monkeypatch.setattr(os, "replace", real_replace)
    kept = outcome.loaded()
    assert kept.status is TaskStatus.RUNNING  # the file written at the start, whole
    assert [p.name for p in tmp_path.iterdir() if p.name != "app.json"] == []
    outcome.file = None
    return outcome


# ---------------------------------------------------------------- measure-processor


def _timer_span_processor(tmp_path: Path, provider: Any) -> Any:
    from taskmeter.measure import CpuTimingMetric, MeasurementSpanProcessor

    return MeasurementSpanProcessor(
        [CpuTimingMetric(target="app.work", package="pkg", metric="WorkCpu")],
        meter_provider=provider,
    )


def _spans_all_there(outcome: Outcome) -> None:
    cpu_survives(outcome)
    names = {span.name for span in outcome.spans}
    assert {"app", "step"} <= names


@scenario("measure-processor", "error", counted="measure.span.", check=_spans_all_there)
def _processor_meter_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider()
    processor = _timer_span_processor(tmp_path, provider)
    for _, instrument in processor._task_instruments:

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the meter is broken")

        monkeypatch.setattr(instrument, "record", refuse)
    return run_application(tmp_path, processors=[processor])


@scenario("measure-processor", "garbage", counted="measure.", check=_spans_all_there)
def _processor_odd_attributes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from opentelemetry.sdk.metrics import MeterProvider

    processor = _timer_span_processor(tmp_path, MeterProvider())

    def during(task: Task) -> None:
        tracer = taskmeter.tracing.get_tracer()
        with tracer.start_as_current_span("bad timer") as span:
            span.set_attributes(
                {
                    "taskmeter.timer.method": "work",
                    "taskmeter.timer.task": "app",
                    "taskmeter.timer.start.cpu_time": "yesterday",
                    "taskmeter.timer.end.cpu_time": float("nan"),
                }
            )
        with tracer.start_as_current_span("bad task") as span:
            span.set_attributes({"taskmeter.task.id": "x", "taskmeter.duration": float("inf")})

    return run_application(tmp_path, processors=[processor], during=during)


not_applicable(
    "measure-processor",
    "the processor reads span attributes in memory; its inputs' faults are 'garbage', its "
    "meter's are 'error'",
    "unreadable",
    "timeout",
    "refused",
    "disk-full",
    "permission",
)


# ---------------------------------------------------------------- span-exporter


@contextmanager
def _exporting(
    tmp_path: Path, endpoint: str, *, spool: Path | None = None, timeout_s: float = 1.0
) -> Iterator[Any]:
    from taskmeter.export import DurableSpanExporter, DurableSpanProcessor

    exporter = DurableSpanExporter(
        spool if spool is not None else tmp_path / "spool", endpoint=endpoint, timeout_s=timeout_s
    )
    processor = DurableSpanProcessor(exporter, schedule_delay_s=0.05)
    yield exporter, processor


def _export_run(tmp_path: Path, endpoint: str, **kwargs: Any) -> Outcome:
    with _exporting(tmp_path, endpoint, **kwargs) as (exporter, processor):
        began = time.monotonic()
        outcome = run_application(tmp_path, processors=[processor])
        processor.force_flush(2_000)
        outcome.extra["seconds"] = time.monotonic() - began
        outcome.extra["stats"] = exporter.stats
        outcome.extra["spool"] = exporter.spool
        processor.shutdown()
    return outcome


def _spans_kept_in_the_spool(outcome: Outcome) -> None:
    cpu_survives(outcome)
    stats = outcome.extra["stats"]
    assert stats.lost_items == 0
    assert stats.spooled_items == len(outcome.spans)
    assert outcome.extra["spool"].pending("traces") >= 1


@scenario(
    "span-exporter", "refused", counted="export.traces.unavailable", check=_spans_kept_in_the_spool
)
def _exporter_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _export_run(tmp_path, f"http://127.0.0.1:{closed_port()}")


@scenario(
    "span-exporter", "timeout", counted="export.traces.unavailable", check=_spans_kept_in_the_spool
)
def _exporter_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with silent_endpoint() as endpoint:
        return _export_run(tmp_path, endpoint.url, timeout_s=0.3)


@scenario(
    "span-exporter", "error", counted="export.traces.unavailable", check=_spans_kept_in_the_spool
)
def _exporter_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(503)] * 10) as endpoint:
        return _export_run(tmp_path, endpoint.url)


@scenario(
    "span-exporter",
    "permission",
    counted="export.traces.unavailable",
    check=_spans_kept_in_the_spool,
)
def _exporter_401(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(401)] * 10) as endpoint:
        return _export_run(tmp_path, endpoint.url)


def _spans_rejected_counted(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["stats"].rejected_items == len(outcome.spans)


@scenario(
    "span-exporter", "garbage", counted="export.traces.rejected", check=_spans_rejected_counted
)
def _exporter_400(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(400)] * 10) as endpoint:
        return _export_run(tmp_path, endpoint.url)


def _fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write to a file (not stdin, stdout or stderr) fails as on a full disk."""
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        if fd > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)


def _spans_lost_counted(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["stats"].lost_items == len(outcome.spans)


@scenario("span-exporter", "disk-full", counted="export.spool.write", check=_spans_lost_counted)
def _exporter_spool_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    _fill_disk(monkeypatch)
    outcome = _export_run(tmp_path, f"http://127.0.0.1:{closed_port()}")
    monkeypatch.undo()
    return outcome


@scenario("span-exporter", "unreadable", counted="export.spool.write", check=_spans_lost_counted)
def _exporter_spool_under_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    (tmp_path / "blocker").write_text("")
    return _export_run(
        tmp_path, f"http://127.0.0.1:{closed_port()}", spool=tmp_path / "blocker" / "spool"
    )


# ---------------------------------------------------------------- metric-exporter


def _metric_run(tmp_path: Path, endpoint: str, **kwargs: Any) -> Outcome:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from taskmeter.export import DurableMetricExporter
    from taskmeter.measure import MeasurementSpanProcessor

    exporter = DurableMetricExporter(tmp_path / "spool", endpoint=endpoint, **kwargs)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    processor = MeasurementSpanProcessor(meter_provider=provider)
    outcome = run_application(tmp_path, processors=[processor])
    reader.collect()
    outcome.extra["stats"] = exporter.stats
    outcome.extra["spool"] = exporter.spool
    provider.shutdown()
    return outcome


def _points_kept(outcome: Outcome) -> None:
    cpu_survives(outcome)
    stats = outcome.extra["stats"]
    assert stats.lost_items == 0 and stats.spooled_items >= 2  # duration and cpu of 2 tasks
    assert outcome.extra["spool"].pending("metrics") >= 1


@scenario("metric-exporter", "refused", counted="export.metrics.unavailable", check=_points_kept)
def _metrics_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _metric_run(tmp_path, f"http://127.0.0.1:{closed_port()}")


@scenario("metric-exporter", "timeout", counted="export.metrics.unavailable", check=_points_kept)
def _metrics_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with silent_endpoint() as endpoint:
        return _metric_run(tmp_path, endpoint.url, timeout_s=0.3)


@scenario("metric-exporter", "error", counted="export.metrics.unavailable", check=_points_kept)
def _metrics_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(503)] * 10) as endpoint:
        return _metric_run(tmp_path, endpoint.url)


@scenario("metric-exporter", "permission", counted="export.metrics.unavailable", check=_points_kept)
def _metrics_403(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(403)] * 10) as endpoint:
        return _metric_run(tmp_path, endpoint.url)


def _points_rejected(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["stats"].rejected_items >= 2


@scenario("metric-exporter", "garbage", counted="export.metrics.rejected", check=_points_rejected)
def _metrics_400(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(400)] * 10) as endpoint:
        return _metric_run(tmp_path, endpoint.url)


def _points_lost_counted(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["stats"].lost_items >= 2


@scenario("metric-exporter", "disk-full", counted="export.spool.write", check=_points_lost_counted)
def _metrics_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    _fill_disk(monkeypatch)
    outcome = _metric_run(tmp_path, f"http://127.0.0.1:{closed_port()}")
    monkeypatch.undo()
    return outcome


not_applicable(
    "metric-exporter",
    "the spool directory is the span exporter's row (shared code)",
    "unreadable",
)


# ---------------------------------------------------------------- spool-replay


def _replay_run(
    tmp_path: Path, prepare: Callable[[Path], None], endpoint: str, timeout_s: float = 1.0
) -> Outcome:
    """An earlier run left batches in the spool; this run's exporter replays them."""
    from taskmeter.export import Spool

    spool = Spool(tmp_path / "spool")
    prepare(tmp_path / "spool")
    with _exporting(tmp_path, endpoint, spool=tmp_path / "spool", timeout_s=timeout_s) as (
        exporter,
        processor,
    ):
        outcome = run_application(tmp_path, processors=[processor])
        processor.force_flush(3_000)
        outcome.extra["stats"] = exporter.stats
        outcome.extra["spool"] = spool
        processor.shutdown()
    return outcome


def _earlier_batches(directory: Path, count: int = 3) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from taskmeter.export import Spool

    spool = Spool(directory)
    for _ in range(count):
        spool.put("traces", ExportTraceServiceRequest().SerializeToString(), 1)


def _replayed_all_whole(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["spool"].pending() == 0
    assert outcome.extra["stats"].replayed_batches >= 2


@scenario("spool-replay", "garbage", counted="export.spool.corrupt", check=_replayed_all_whole)
def _replay_damaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    def prepare(directory: Path) -> None:
        _earlier_batches(directory)
        victim = sorted(directory.glob("*.otlp"))[1]
        data = victim.read_bytes()
        victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]) if len(data) > 28 else data[:20])

    with scripted_endpoint() as endpoint:
        return _replay_run(tmp_path, prepare, endpoint.url)


@scenario("spool-replay", "unreadable", counted="export.spool.corrupt", check=_replayed_all_whole)
def _replay_truncated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    def prepare(directory: Path) -> None:
        _earlier_batches(directory)
        victim = sorted(directory.glob("*.otlp"))[0]
        victim.write_bytes(victim.read_bytes()[:10])

    with scripted_endpoint() as endpoint:
        return _replay_run(tmp_path, prepare, endpoint.url)


def _replay_kept(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.extra["spool"].pending() >= 3  # earlier batches and this run's, all kept


@scenario("spool-replay", "refused", counted="export.traces.unavailable", check=_replay_kept)
def _replay_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    return _replay_run(tmp_path, _earlier_batches, f"http://127.0.0.1:{closed_port()}")


@scenario("spool-replay", "timeout", counted="export.traces.unavailable", check=_replay_kept)
def _replay_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with silent_endpoint() as endpoint:
        return _replay_run(tmp_path, _earlier_batches, endpoint.url, timeout_s=0.3)


@scenario("spool-replay", "error", counted="export.traces.unavailable", check=_replay_kept)
def _replay_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with scripted_endpoint(*[Answer(503)] * 20) as endpoint:
        return _replay_run(tmp_path, _earlier_batches, endpoint.url)


@scenario("spool-replay", "permission", counted="export.spool.remove", check=cpu_survives)
def _replay_cannot_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    # Delivered, but the file cannot be removed (a read-only spool): counted; the batch is
    # sent again later (at least once), the application never notices.
    real_unlink = os.unlink

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".otlp") and not Path(path).name.startswith("."):
            raise PermissionError(errno.EACCES, "Permission denied")
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse)
    with scripted_endpoint() as endpoint:
        outcome = _replay_run(tmp_path, _earlier_batches, endpoint.url)
    monkeypatch.undo()
    # Each earlier batch was sent once here, not over and over.
    assert len(endpoint.requests) <= 3 + outcome.extra["stats"].sent_batches
    return outcome


not_applicable(
    "spool-replay",
    "replay only reads and removes files; a full disk is the exporters' row",
    "disk-full",
)


# ---------------------------------------------------------------- propagation


def _delivered_or_counted(outcome: Outcome) -> None:
    cpu_survives(outcome)
    assert outcome.task.subprocess is True  # adopted the parent named in the environment


def _adopting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subtask_dir: Path) -> Outcome:
    from taskmeter import propagation

    environ = {
        "TASKMETER_PARENT_TASK": "6f1c1d0e-8a36-4c47-9b51-0d7f4b1e2a3c",
        "TASKMETER_SUBTASK_DIR": str(subtask_dir),
    }
    monkeypatch.setattr(propagation, "inherited", propagation.Inherited.from_environment(environ))
    return run_application(tmp_path)


@scenario(
    "propagation",
    "unreadable",
    counted="env.TASKMETER_SUBTASK_DIR",
    check=_delivered_or_counted,
    logged="TASKMETER_SUBTASK_DIR",
)
def _deliver_dir_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    (tmp_path / "blocker").write_text("")
    return _adopting(tmp_path, monkeypatch, tmp_path / "blocker" / "subtasks")


@scenario("propagation", "permission", counted="propagation.deliver", check=_delivered_or_counted)
def _deliver_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("dir", "")).endswith("subtasks"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    (tmp_path / "subtasks").mkdir()
    return _adopting(tmp_path, monkeypatch, tmp_path / "subtasks")


@scenario("propagation", "garbage", counted=None, check=cpu_survives)
def _malformed_parent_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from taskmeter import propagation

    environ = {"TASKMETER_PARENT_TASK": "not-a-uuid", "TRACEPARENT": "00-zz-yy-01"}
    monkeypatch.setattr(propagation, "inherited", propagation.Inherited.from_environment(environ))
    outcome = run_application(tmp_path)
    assert outcome.task.parent_id is None and outcome.task.subprocess is False
    return outcome


not_applicable(
    "propagation",
    "delivery writes one local file; its faults are the rows above",
    "error",
    "timeout",
    "refused",
    "disk-full",
)


# The rows of the later components register themselves on import.
from . import enrich_rows, instrumentation_rows, worker_rows  # noqa: E402, F401
