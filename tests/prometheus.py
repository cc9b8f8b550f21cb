"""A real Prometheus for tests: started on 127.0.0.1 with a generated config, always stopped.

Usage (in a test module)::

    from tests.conftest import require_executable
    from tests.prometheus import MetricsEndpoint, running_prometheus

    @pytest.fixture(scope="module")
    def prometheus(tmp_path_factory):
        binary = require_executable("prometheus", "prometheus")
        with MetricsEndpoint(lambda: "my_metric 1\\n") as endpoint, running_prometheus(
            binary, tmp_path_factory.mktemp("prometheus"), [ScrapeTarget(endpoint.address)]
        ) as server:
            server.wait_for_samples("my_metric", 3)
            yield server

Every wait is bounded; the server process is terminated (then killed) when
the ``with`` block ends, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


class MetricsEndpoint:
    """A ``/metrics`` endpoint on 127.0.0.1 whose text ``render()`` computes at each scrape."""

    def __init__(self, render: Callable[[], str]) -> None:
        self.render = render
        self.scrapes = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = endpoint.render().encode()
                endpoint.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as a scrape target."""
        return f"{LOCALHOST}:{self._server.server_address[1]}"

    def __enter__(self) -> MetricsEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class ScrapeTarget:
    """One scrape job: an address and the labels Prometheus adds to its series."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)
    job: str = "taskmeter-test"


class PrometheusServer:
    """A running Prometheus process and a small client for its HTTP API."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def api(self, path: str, timeout_s: float = 5.0, **params: str) -> dict[str, Any]:
        """GET ``/api/v1/<path>`` and return the decoded JSON."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=timeout_s) as r:
            document: dict[str, Any] = json.load(r)
            return document

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of an instant query, or ``None`` if it returned nothing."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        result = self.api("query", **params)["data"]["result"]
        if not result:
            return None
        if isinstance(result[0], dict):
            return float(result[0]["value"][1])
        return float(result[1])

    def wait_for_samples(self, metric: str, count: int, timeout_s: float = 30.0) -> None:
        """Wait (bounded) until Prometheus has scraped ``metric`` at least ``count`` times."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = self.value(f"count_over_time({metric}[5m])")
            if seen is not None and seen >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"Prometheus did not scrape {metric} {count} times in {timeout_s} s")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the server process (it accepts connections but never answers), then resume it."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit within 10 s)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def write_config(path: Path, targets: Sequence[ScrapeTarget], scrape_interval_s: float) -> None:
    """A Prometheus configuration scraping ``targets`` (JSON is valid YAML)."""
    interval = f"{round(scrape_interval_s * 1000)}ms"
    jobs: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(
            {"targets": [target.address], "labels": target.labels}
        )
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": static} for job, static in jobs.items()
        ],
    }
    path.write_text(json.dumps(config, indent=2))


@contextlib.contextmanager
def running_prometheus(
    binary: str,
    workdir: Path,
    targets: Sequence[ScrapeTarget],
    *,
    scrape_interval_s: float = 1.0,
    startup_timeout_s: float = 30.0,
    attempts: int = 3,
) -> Iterator[PrometheusServer]:
    """Run Prometheus on a free 127.0.0.1 port until the block ends.

    Raises ``RuntimeError`` (with the server's log) if it does not become
    ready within ``startup_timeout_s``.
    """
    config = workdir / "prometheus.yml"
    write_config(config, targets, scrape_interval_s)
    server: PrometheusServer | None = None
    try:
        for attempt in range(attempts):
            port = free_port()
            log = workdir / f"prometheus-{attempt}.log"
            with log.open("wb") as log_file:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={workdir / f'data-{attempt}'}",
                        f"--web.listen-address={LOCALHOST}:{port}",
                        "--log.level=warn",
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            server = PrometheusServer(process, f"http://{LOCALHOST}:{port}", log)
            if _wait_ready(server, startup_timeout_s):
                break
            server.stop()
            server = None
        if server is None:
            raise RuntimeError(f"Prometheus did not start; see the logs in {workdir}")
        yield server
    finally:
        if server is not None:
            server.stop()


def _wait_ready(server: PrometheusServer, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False  # exited (the port was taken, say)
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1.0) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False
