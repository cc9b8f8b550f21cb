"""Energy of a task from Prometheus queries, as LensKit configures them per machine.

When a task long enough to be meaningful (``min_duration_s``) is read, each
configured query is formatted with the task's duration in milliseconds
(``{elapsed}``) and the machine label (``{machine}``), and evaluated by
Prometheus *at the moment of the read* (the ``time`` parameter), so the
figure covers the task's own window.  The task's span needs the figure before
it ends, so the final read waits for the answer; to keep a slow or dead
server from stalling the application:

* tasks shorter than ``min_duration_s`` (10 s by default) never query;
* the queries of one read run in parallel, and the read waits at most
  ``timeout_s`` (2 s by default) for all of them together;
* after a failure (no connection, timeout, server error) the probe stops
  querying for a back-off period (30 s, doubling up to 10 min), so a dead
  server costs one timeout per period, not one per task;
* a query Prometheus rejects as malformed is dropped, with one warning.

Prometheus's figure lags by up to a scrape interval (the last samples before
the task ended may not be scraped yet; ``increase()`` extrapolates from the
samples it has), and it is as machine-wide as the metric queried.  HTTP uses
only the standard library, honouring the usual ``*_proxy`` variables.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from ..__about__ import __version__
from .._log import debug_once, swallowed, warn_once
from ..figures import Figures
from .base import Probe
from .energy_config import (
    DEFAULT_MIN_DURATION_S,
    DEFAULT_TIMEOUT_S,
    PrometheusSettings,
    check_query_template,
)

SOURCE = "prometheus"
DEFAULT_BACKOFF_S = 30.0
MAX_BACKOFF_S = 600.0
_MAX_RESPONSE_BYTES = 1 << 20


class PrometheusQueryError(Exception):
    """Prometheus answered, but not with one number."""


class PrometheusProbe(Probe):
    """Energy by domain from per-machine Prometheus queries.

    Args:
        url: Base URL of the Prometheus server.
        queries: Query templates by energy domain (``system``, ``cpu``, ``gpu``),
            with ``{elapsed}`` (milliseconds) and ``{machine}`` placeholders.
        machine: The machine label substituted for ``{machine}``.
        timeout_s: Longest wait for the answers when a task is read.
        min_duration_s: Tasks shorter than this are not queried.
        backoff_s: Pause after a failure (doubles on each further failure, up
            to ``MAX_BACKOFF_S``).
    """

    name = "prometheus"

    def __init__(
        self,
        url: str,
        queries: Mapping[str, str],
        *,
        machine: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        min_duration_s: float = DEFAULT_MIN_DURATION_S,
        backoff_s: float = DEFAULT_BACKOFF_S,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus url must be an http(s) URL, got {url!r}")
        if not queries:
            raise ValueError("at least one Prometheus query is needed")
        for domain, template in queries.items():
            check_query_template(domain, template, machine)
        for label, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s)):
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if not (isinstance(min_duration_s, int | float) and 0 <= min_duration_s < math.inf):
            raise ValueError(f"min_duration_s must be >= 0 seconds, got {min_duration_s!r}")
        self.endpoint = url.rstrip("/") + "/api/v1/query"
        self.queries = dict(queries)
        self.machine = machine
        # A lock or a socket waits at most TIMEOUT_MAX (292 years); a longer wait raises.
        self.timeout_s = min(float(timeout_s), threading.TIMEOUT_MAX)
        self.min_duration_s = float(min_duration_s)
        self._initial_backoff_s = float(backoff_s)
        self._backoff_s = float(backoff_s)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._opener = urllib.request.build_opener()
        self.queries_sent = 0
        """Number of queries sent (for tests and diagnostics)."""
        _probes.add(self)

    @classmethod
    def from_settings(cls, settings: PrometheusSettings) -> PrometheusProbe:
        """A probe for the settings :func:`.energy_config.load_energy_config` read."""
        missing = settings.missing()
        if missing is not None:
            raise ValueError(f"Prometheus energy not configured: {missing}")
        assert settings.url is not None
        return cls(
            settings.url,
            settings.queries,
            machine=settings.machine,
            timeout_s=settings.timeout_s,
            min_duration_s=settings.min_duration_s,
        )

    def begin(self, *, reset_peak: bool = True) -> float:
        return time.perf_counter()

    def read(self, state: float, figures: Figures) -> None:
        elapsed_s = time.perf_counter() - state
        if elapsed_s < self.min_duration_s:
            debug_once(
                "prometheus.short",
                "tasks shorter than %.1f s are not queried from Prometheus",
                self.min_duration_s,
            )
            return
        if time.monotonic() < self._down_until:
            debug_once(
                "prometheus.down",
                "Prometheus at %s failed recently; not queried until it has rested",
                self.endpoint,
            )
            return
        for domain, joules in self.query_energy(elapsed_s, time.time()).items():
            figures.set_energy(domain, joules, SOURCE)

    def query_energy(self, elapsed_s: float, at_time: float) -> dict[str, float]:
        """Ask for every domain's joules over ``elapsed_s`` ending at UNIX time ``at_time``.

        Waits at most ``timeout_s``.  Domains without an answer are left out;
        failures are counted and logged, and start the back-off.
        """
        elapsed_ms = max(int(elapsed_s * 1000), 1)
        jobs = {
            domain: self._submit(template.format(elapsed=elapsed_ms, machine=self.machine), at_time)
            for domain, template in list(self.queries.items())
        }
        done, _ = wait_futures(jobs.values(), timeout=self.timeout_s)
        results: dict[str, float] = {}
        failed: BaseException | None = None
        for domain, future in jobs.items():
            if future not in done:
                failed = TimeoutError(f"no answer from {self.endpoint} within {self.timeout_s} s")
                continue
            try:
                value = future.result()
            except PrometheusQueryError as exc:
                self._query_problem(domain, exc)
                continue
            except _Rejected as exc:
                warn_once(
                    f"prometheus.rejected.{domain}",
                    "Prometheus rejected the %s energy query %r (%s); it is no longer sent",
                    domain,
                    self.queries.get(domain),
                    exc,
                )
                self.queries.pop(domain, None)
                continue
            except Exception as exc:
                failed = exc
                continue
            if value is None:
                debug_once(
                    f"prometheus.empty.{domain}",
                    "the %s energy query returned no data (not scraped yet?)",
                    domain,
                )
            else:
                results[domain] = value
        if failed is not None:
            swallowed("probe.prometheus.query", failed)
            with self._lock:
                self._down_until = time.monotonic() + self._backoff_s
                self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
        elif jobs:
            with self._lock:
                self._backoff_s = self._initial_backoff_s
        return results

    def _query_problem(self, domain: str, exc: PrometheusQueryError) -> None:
        warn_once(
            f"prometheus.result.{domain}",
            "no %s energy from Prometheus: %s (query %r)",
            domain,
            exc,
            self.queries.get(domain),
        )

    def _submit(self, query: str, at_time: float) -> Future[float | None]:
        with self._lock:
            executor = self._executor
            if executor is None:
                executor = self._executor = ThreadPoolExecutor(
                    max_workers=len(self.queries) or 1, thread_name_prefix="taskmeter-prometheus"
                )
            self.queries_sent += 1
        return executor.submit(self._query, query, at_time)

    def _query(self, query: str, at_time: float) -> float | None:
        parameters = urllib.parse.urlencode(
            {
                "query": query,
                "time": f"{at_time:.3f}",
                "timeout": f"{max(int(self.timeout_s * 1000), 1)}ms",
            }
        )
        request = urllib.request.Request(
            f"{self.endpoint}?{parameters}",
            headers={"Accept": "application/json", "User-Agent": f"taskmeter/{__version__}"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body = response.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(_MAX_RESPONSE_BYTES)
            except OSError:
                body = b""
            exc.close()
            if exc.code == 400:
                raise _Rejected(_error_text(body) or f"HTTP {exc.code}") from None
            raise
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise PrometheusQueryError(f"not JSON: {exc}") from None
        return parse_query_result(document)

    def close(self) -> None:
        """Stop the query threads (waiting for none)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._executor = None


class _Rejected(Exception):
    """Prometheus refused the query itself (HTTP 400): retrying will not help."""


def parse_query_result(document: Any) -> float | None:
    """The single number in a Prometheus ``/api/v1/query`` answer.

    ``None`` when the result is empty (no data for the window yet); raises
    :class:`PrometheusQueryError` for an error answer, several series, or a
    value that is not a finite, non-negative number.
    """
    if not isinstance(document, dict):
        raise PrometheusQueryError("the answer is not a JSON object")
    if document.get("status") != "success":
        raise PrometheusQueryError(
            f"{document.get('errorType', 'error')}: {document.get('error', document)}"
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusQueryError("the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        sample = result
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusQueryError(
                f"the query returned {len(result)} series; aggregate it (sum(...)) to one"
            )
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    else:
        raise PrometheusQueryError(f"expected a vector or a scalar, got {kind!r}")
    if not (isinstance(sample, list) and len(sample) == 2):
        raise PrometheusQueryError(f"malformed sample {sample!r}")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise PrometheusQueryError(f"not a number: {sample[1]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise PrometheusQueryError(f"not an energy: {value}")
    return value


def _error_text(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and "error" in document:
        return f"{document.get('errorType', 'error')}: {document['error']}"
    return None


_probes: weakref.WeakSet[PrometheusProbe] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for probe in list(_probes):
        probe._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
