"""What ``taskmeter run`` adds to a short command, against the bare command in the same run.

    python bench/bench_cli.py [--rounds N]

Runs ``python -c pass`` (the shortest real command: a Python start-up)

* bare,
* under ``taskmeter run -q`` with no exporter configured,
* under ``taskmeter run -q -o FILE`` (the task file written), and
* under ``taskmeter run -q`` exporting its span over OTLP/HTTP to a receiver
  on 127.0.0.1 started by this script,

interleaving the four in each round so drift affects all alike, and prints the
median wall time of each and its difference and ratio to the bare command.
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.received = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKMETER_"))}
    otlp_env = dict(env, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    command = [sys.executable, "-c", "pass"]
    run = [*taskmeter_command(), "run", "-q"]
    with tempfile.TemporaryDirectory() as scratch:
        cases = {
            "bare": (command, env),
            "taskmeter run": ([*run, "--", *command], env),
            "taskmeter run -o": ([*run, "-o", f"{scratch}/run.json", "--", *command], env),
            "taskmeter run, OTLP": ([*run, "--", *command], otlp_env),
        }
        for case_command, case_env in cases.values():  # warm the page cache
            timed(case_command, case_env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (case_command, case_env) in cases.items():
                times[name].append(timed(case_command, case_env))
    server.shutdown()

    bare = statistics.median(times["bare"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.rounds} rounds")
    print(f"{'case':<22}{'median':>10}{'minus bare':>12}{'ratio':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<22}{median * 1000:>8.1f}ms{(median - bare) * 1000:>10.1f}ms"
            f"{median / bare:>8.2f}"
        )
    print(f"spans received by the local OTLP endpoint: {server.received}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
