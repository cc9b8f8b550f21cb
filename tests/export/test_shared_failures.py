"""One signal's failure to reach the endpoint spares the others (and the exit) its timeout."""

from __future__ import annotations

import time
from pathlib import Path

from taskmeter.export import endpoints
from taskmeter.export.delivery import Delivery
from taskmeter.export.senders import GrpcSender, HttpSender
from taskmeter.export.spool import Spool

from .servers import Answer, scripted_endpoint, silent_endpoint

PAYLOAD = b"\x0a\x00"


def http_delivery(signal: str, url: str, spool: Spool | None, timeout_s: float = 0.5) -> Delivery:
    return Delivery(signal, HttpSender(signal, f"{url}/v1/{signal}", timeout_s=timeout_s), spool)


def timed(action: object) -> float:
    began = time.monotonic()
    assert callable(action)
    action()
    return time.monotonic() - began


def test_metrics_spool_at_once_after_traces_found_the_endpoint_silent(tmp_path: Path) -> None:
    """A collector that accepts and never answers costs the first signal one timeout;
    the second signal's batch goes to the spool without touching the network."""
    spool = Spool(tmp_path)
    with silent_endpoint() as silent:
        traces = http_delivery("traces", silent.url, spool)
        metrics = http_delivery("metrics", silent.url, spool)
        try:
            first = timed(lambda: traces.submit(PAYLOAD, 3))
            second = timed(lambda: metrics.submit(PAYLOAD, 5))
        finally:
            traces.close()
            metrics.close()
    assert first >= 0.45  # it waited out the 0.5 s timeout
    assert second < 0.2
    assert metrics.stats.failed_attempts == 0
    assert (traces.stats.spooled_items, metrics.stats.spooled_items) == (3, 5)
    assert spool.pending("traces") == 1 and spool.pending("metrics") == 1


def test_grpc_signals_share_the_failure_too(tmp_path: Path) -> None:
    """The same over gRPC: DEADLINE_EXCEEDED for traces marks host:port for metrics."""
    spool = Spool(tmp_path)
    with silent_endpoint() as silent:
        target = silent.url.removeprefix("http://")
        traces = Delivery(
            "traces", GrpcSender("traces", target, insecure=True, timeout_s=0.5), spool
        )
        metrics = Delivery(
            "metrics", GrpcSender("metrics", target, insecure=True, timeout_s=0.5), spool
        )
        try:
            traces.submit(PAYLOAD, 1)
            second = timed(lambda: metrics.submit(PAYLOAD, 1))
        finally:
            traces.close()
            metrics.close()
    assert second < 0.2
    assert metrics.stats.failed_attempts == 0
    assert spool.pending("metrics") == 1


def test_an_exit_just_after_a_failure_does_not_try_again(tmp_path: Path) -> None:
    """Closing both deliveries right after the endpoint failed takes no second timeout,
    and their batches wait in the spool: nothing lost."""
    spool = Spool(tmp_path)
    with silent_endpoint() as silent:
        traces = http_delivery("traces", silent.url, spool)
        metrics = http_delivery("metrics", silent.url, spool)
        traces.submit(PAYLOAD, 1)
        metrics.submit(PAYLOAD, 1)
        closing = timed(lambda: (traces.close(), metrics.close()))
    assert closing < 0.3
    assert spool.pending("traces") == 1 and spool.pending("metrics") == 1


def test_an_exit_long_after_a_failure_tries_once_more(tmp_path: Path) -> None:
    """A failure older than the exit gap: the exit gives the endpoint one short try
    (it may be back), and it delivers."""
    spool = Spool(tmp_path)
    spool.put("traces", PAYLOAD, 2)
    with scripted_endpoint() as endpoint:
        traces = http_delivery("traces", endpoint.url, spool)
        endpoints.mark_down(traces.sender.address, time.monotonic() + 60)
        endpoints._marks[traces.sender.address].failed_at -= 10  # it failed 10 s ago
        traces.close()
    assert len(endpoint.requests) == 1
    assert spool.pending("traces") == 0


def test_an_http_status_is_not_shared(tmp_path: Path) -> None:
    """503 for traces is the traces service's answer: metrics still go to the network."""
    spool = Spool(tmp_path)
    with scripted_endpoint(Answer(503)) as endpoint:
        traces = http_delivery("traces", endpoint.url, spool)
        metrics = http_delivery("metrics", endpoint.url, spool)
        try:
            traces.submit(PAYLOAD, 1)
            metrics.submit(PAYLOAD, 4)
        finally:
            metrics.close()
            traces.close()  # its retries must not fail into the tests after this one
    assert traces.stats.spooled_items == 1
    assert metrics.stats.sent_items == 4
    assert metrics.stats.spooled_items == 0
    assert [r.path for r in endpoint.requests] == ["/v1/traces", "/v1/metrics"]


def test_a_delivered_request_clears_the_mark(tmp_path: Path) -> None:
    """Once any signal gets through, the others send directly again."""
    spool = Spool(tmp_path)
    with scripted_endpoint() as endpoint:
        traces = http_delivery("traces", endpoint.url, spool)
        metrics = http_delivery("metrics", endpoint.url, spool)
        endpoints.mark_down(traces.sender.address, time.monotonic() + 60)
        try:
            metrics.submit(PAYLOAD, 1)  # the endpoint is marked: spooled
            assert metrics.stats.spooled_items == 1 and not endpoint.requests
            assert metrics.flush(5)  # a flush ignores the back-off, and gets through
            assert not endpoints.is_down(traces.sender.address)
            traces.submit(PAYLOAD, 2)
        finally:
            traces.close()
            metrics.close()
    assert traces.stats.sent_items == 2  # sent directly: the mark is gone
    assert traces.stats.spooled_items == 0
    assert not endpoints.is_down(traces.sender.address)
    assert metrics.stats.replayed_items == 1
    assert spool.pending() == 0


def test_without_a_spool_the_mark_is_not_a_reason_to_drop(tmp_path: Path) -> None:
    """A delivery with no spool still tries the network: skipping it would lose the batch."""
    with scripted_endpoint() as endpoint:
        metrics = http_delivery("metrics", endpoint.url, None)
        endpoints.mark_down(metrics.sender.address, time.monotonic() + 60)
        metrics.submit(PAYLOAD, 4)
        metrics.close()
    assert metrics.stats.sent_items == 4
    assert metrics.stats.lost_items == 0
