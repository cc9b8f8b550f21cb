"""What the ``taskmeter`` command costs: ``run`` around a short command, and ``show``'s start-up.

    python bench/bench_cli.py [--rounds N] [--only run|show|output] [--mib N] [--baseline-src DIR]

``run``: runs a Python start-up that writes the time its first line ran (the
shortest real command; the time tells how long ``taskmeter`` took to start it)

* bare,
* under ``taskmeter run -q`` with no exporter configured,
* under ``taskmeter run -q -o FILE`` (the task file written), and
* under ``taskmeter run -q`` exporting its span over OTLP/HTTP to a receiver
  on 127.0.0.1 started by this script,

interleaving the four in each round so drift affects all alike, and prints the
median wall time of each and its difference and ratio to the bare command, and
the median delay before the command starts beyond the bare command's.

``show``: ``python -m taskmeter show FILE`` on a task file of 200 tasks,
against ``python -c pass`` and ``python -c "import pydantic"`` (what reading a
task file cannot avoid), interleaved; the median wall and CPU time (user +
system) of each.

``output`` (only with ``--only output``): ``dd`` writing ``--mib`` MiB of
zeros into a pipe read by ``cat``, bare and under ``taskmeter run -q``,
interleaved; the median throughput of each, their ratio, and the ratio once
taskmeter's fixed cost (``true`` under it, minus ``true`` bare, measured in
the same rounds) is taken off: the command writes to the file descriptors it
inherits, which taskmeter never reads.

``--baseline-src DIR`` adds ``show``, ``run`` and ``run`` exporting, run from
another checkout's ``src`` directory (``git archive main src | tar -x -C
/tmp/base``, then ``--baseline-src /tmp/base/src``), to compare a change with
the code before it in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Accept(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export (an empty response is success)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.received += 1  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        return


def taskmeter_command() -> list[str]:
    script = Path(sys.executable).with_name("taskmeter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskmeter"]


def timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def timed_cpu(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def task_file(path: Path, count: int = 200) -> None:
    """A finished task tree of ``count`` tasks: a root, 10 stages, their steps."""
    now = time.time()

    def task(label: str, subtasks: list[dict[str, object]]) -> dict[str, object]:
        return {
            "label": label,
            "status": "finished",
            "start_time": now,
            "finish_time": now + 1.5,
            "duration": 1.5,
            "cpu_time": 1.25,
            "peak_memory": 123_456_789,
            "subtasks": subtasks,
        }

    per_stage = (count - 11) // 10
    stages = [
        task(f"stage {s}", [task(f"step {s}.{i}", []) for i in range(per_stage)]) for s in range(10)
    ]
    path.write_text(json.dumps(task("pipeline", stages)))


def bench_show(rounds: int, baseline_src: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    here_src = str(Path(__file__).resolve().parent.parent / "src")
    with tempfile.TemporaryDirectory() as scratch:
        path = f"{scratch}/tasks.json"
        task_file(Path(path))
        show = [sys.executable, "-m", "taskmeter", "show", path]
        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "import pydantic": ([sys.executable, "-c", "import pydantic"], env),
            "taskmeter show": (show, dict(env, PYTHONPATH=here_src)),
        }
        if baseline_src:
            cases["taskmeter show, baseline"] = (show, dict(env, PYTHONPATH=baseline_src))
        for case_command, case_env in cases.values():  # warm the page cache
            timed_cpu(case_command, case_env)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (case_command, case_env) in cases.items():
                wall, cpu = timed_cpu(case_command, case_env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    bare = statistics.median(walls["python -c pass"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} rounds")
    print(f"{'case':<26}{'wall':>9}{'minus bare':>12}{'ratio':>7}{'cpu':>9}")
    for name in cases:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        print(
            f"{name:<26}{wall * 1000:>7.1f}ms{(wall - bare) * 1000:>10.1f}ms"
            f"{wall / bare:>7.2f}{cpu * 1000:>7.1f}ms"
        )
    if baseline_src:
        ratio = statistics.median(walls["taskmeter show"]) / statistics.median(
            walls["taskmeter show, baseline"]
        )
        print(f"taskmeter show / baseline (wall): {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--only", choices=("run", "show", "output"), help="one part of the benchmark"
    )
    parser.add_argument("--mib", type=int, default=4000, help="MiB written (--only output)")
    parser.add_argument("--baseline-src", metavar="DIR", help="another checkout's src")
    args = parser.parse_args()
    if args.only == "output":
        bench_output(args.rounds, args.mib)
        return
    if args.only != "run":
        bench_show(args.rounds, args.baseline_src)
    if args.only != "show":
        bench_run(args.rounds, args.baseline_src)


def piped(command: list[str]) -> float:
    """Seconds ``command | cat > /dev/null`` takes."""
    began = time.perf_counter()
    writer = subprocess.Popen(command, stdout=subprocess.PIPE)
    subprocess.run(["cat"], stdin=writer.stdout, stdout=subprocess.DEVNULL, check=True)
    assert writer.stdout is not None
    writer.stdout.close()
    if writer.wait() != 0:
        raise SystemExit(f"{command[0]} failed")
    return time.perf_counter() - began


def bench_output(rounds: int, mib: int) -> None:
    """Throughput of a command's output, bare and under ``taskmeter run``."""
    run = [*taskmeter_command(), "run", "-q", "--"]
    writer = ["dd", "if=/dev/zero", "bs=1M", f"count={mib}", "status=none"]
    times: dict[str, list[float]] = {"bare": [], "taskmeter run": [], "true": [], "run true": []}
    for _ in range(rounds):
        times["bare"].append(piped(writer))
        times["taskmeter run"].append(piped([*run, *writer]))
        times["true"].append(piped(["true"]))
        times["run true"].append(piped([*run, "true"]))
    median = {name: statistics.median(values) for name, values in times.items()}
    fixed = median["run true"] - median["true"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} rounds, {mib} MiB")
    for name in ("bare", "taskmeter run"):
        print(f"{name:15s} {mib / median[name]:8.0f} MiB/s  (median {median[name]:.3f} s)")
    print(f"taskmeter run's fixed cost (true under it, minus bare): {fixed * 1000:.0f} ms")
    print(f"throughput ratio taskmeter run / bare: {median['bare'] / median['taskmeter run']:.3f}")
    net = median["taskmeter run"] - fixed
    print(f"  with the fixed cost taken off: {median['bare'] / net:.3f}")


def bench_run(rounds: int, baseline_src: str | None) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.received = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    here = dict(env)
    run = [*taskmeter_command(), "run", "-q"]
    if baseline_src:
        # Both from a src directory, started the same way, so only the code differs.
        here["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
        run = [sys.executable, "-m", "taskmeter", "run", "-q"]
    with tempfile.TemporaryDirectory() as scratch:
        stamp = f"{scratch}/started"
        # The command writes when it started: what taskmeter does before it is the delay.
        command = [sys.executable, "-c", STAMP, stamp]
        cases = {
            "bare": (command, env),
            "taskmeter run": ([*run, "--", *command], here),
            "taskmeter run -o": ([*run, "-o", f"{scratch}/run.json", "--", *command], here),
            "taskmeter run, OTLP": (
                [*run, "--", *command],
                dict(here, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
            ),
        }
        if baseline_src:
            baseline = dict(env, PYTHONPATH=baseline_src)
            cases["taskmeter run, baseline"] = ([*run, "--", *command], baseline)
            cases["taskmeter run, OTLP, baseline"] = (
                [*run, "--", *command],
                dict(baseline, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
            )
        for case_command, case_env in cases.values():  # warm the page cache
            timed_start(case_command, case_env, stamp)
        times: dict[str, list[float]] = {name: [] for name in cases}
        delays: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (case_command, case_env) in cases.items():
                wall, delay = timed_start(case_command, case_env, stamp)
                times[name].append(wall)
                delays[name].append(delay)
    server.shutdown()

    bare = statistics.median(times["bare"])
    bare_delay = statistics.median(delays["bare"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} rounds")
    print(f"{'case':<32}{'median':>10}{'minus bare':>12}{'ratio':>8}{'start delay':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        delay = statistics.median(delays[name]) - bare_delay
        print(
            f"{name:<32}{median * 1000:>8.1f}ms{(median - bare) * 1000:>10.1f}ms"
            f"{median / bare:>8.2f}{delay * 1000:>11.1f}ms"
        )
    print("start delay: from launch to the command's first line, minus the bare command's")
    if baseline_src:
        for case in ("taskmeter run", "taskmeter run, OTLP"):
            wall = statistics.median(times[case]) / statistics.median(times[f"{case}, baseline"])
            delay = (statistics.median(delays[case]) - bare_delay) / (
                statistics.median(delays[f"{case}, baseline"]) - bare_delay
            )
            print(f"{case} / baseline: wall {wall:.2f}, start delay {delay:.2f}")
    print(f"spans received by the local OTLP endpoint: {server.received}")  # type: ignore[attr-defined]


STAMP = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"
"""The command: writes the wall-clock time its first line ran to the file it is given."""


def timed_start(command: list[str], env: dict[str, str], stamp: str) -> tuple[float, float]:
    """Wall seconds of ``command``, and seconds from its launch to the time it wrote."""
    launched = time.time()
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    return wall, float(Path(stamp).read_text()) - launched


if __name__ == "__main__":
    main()
