"""A spawned worker's exit is bounded when taskmeter built its OpenTelemetry SDK.

Under ``opentelemetry-instrument`` a spawned worker runs the instrumentor
too, and with no distro taskmeter builds the tracer and meter providers.  A
spawned worker exits through ``sys.exit``, so their shutdown runs at its
exit; with a collector that accepts connections and never answers, the
SDK's own exit hooks held each worker for the exporters' timeouts (about
10 s here, ``bench`` figures in the README).  taskmeter shuts the providers
it built down itself, for at most ``WORKER_EXIT_TIMEOUT_S`` in a worker, and
says what that costs: nothing with a spool, the undelivered data without.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from taskmeter.instrumentation.sdk import WORKER_EXIT_TIMEOUT_S
from tests import mp_workers
from tests.export.servers import silent_endpoint

from .runner import ROOT, flush_spool_into_sink, run_instrumented_program

PROGRAM = ROOT / "tests" / "programs" / "spawned_worker_exit.py"
SETTINGS = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "8000",  # longer than the bound, as the default 10 s is
    "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    "OTEL_SERVICE_NAME": "worker-exit",
}


def test_worker_exit_is_bounded_and_the_loss_is_said() -> None:
    """No spool: the worker exits within the bound (it waited the exporters' 8 s before),
    and one warning says that what the exporters had not delivered is lost."""
    with silent_endpoint() as silent:
        ran = run_instrumented_program(
            [str(PROGRAM), "plain"],
            {**SETTINGS, "OTEL_EXPORTER_OTLP_ENDPOINT": silent.url},
            timeout=120,
        )
    assert ran.found["exitcode"] == 0
    assert ran.found["exit_s"] < WORKER_EXIT_TIMEOUT_S + 1.5, ran.stderr
    assert "did not finish within 3 s of its exit" in ran.stderr
    assert "are lost" in ran.stderr


def test_worker_exit_with_a_spool_is_quick_and_keeps_the_spans(tmp_path: Path) -> None:
    """With TASKMETER_SPOOL_DIR the worker's span waits in the spool: the exit does not
    wait on the network, no warning, and `taskmeter flush` delivers the span later."""
    spool = tmp_path / "spool"
    with silent_endpoint() as silent:
        ran = run_instrumented_program(
            [str(PROGRAM), "span"],
            {
                **SETTINGS,
                "OTEL_EXPORTER_OTLP_ENDPOINT": silent.url,
                "TASKMETER_SPOOL_DIR": str(spool),
            },
            timeout=120,
        )
    assert ran.found["exitcode"] == 0
    assert ran.found["exit_s"] < WORKER_EXIT_TIMEOUT_S, ran.stderr
    assert "did not finish" not in ran.stderr
    delivered = flush_spool_into_sink(spool, lambda sink: sink.spans("worker span"))
    assert len(delivered) >= 1


def test_a_worker_shuts_the_providers_down_in_a_bounded_thread(tmp_path: Path) -> None:
    """A spawned worker's exit shuts the providers down once, in the thread whose wait
    is bounded: Python 3.12 lets no exit hook start a thread (the shutdown then ran in
    the main thread, without a bound), so there it runs among multiprocessing's exit
    finalizers, which a worker runs before the interpreter finalizes."""
    path = tmp_path / "shutdown.txt"
    process = multiprocessing.get_context("spawn").Process(
        target=mp_workers.record_exit_shutdown, args=(str(path),)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert path.read_text().splitlines() == ["taskmeter-shutdown"]
