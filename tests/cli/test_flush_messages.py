"""``taskmeter flush`` says what happens to the spool it flushes when delivery fails."""

from __future__ import annotations

from pathlib import Path

from taskmeter.export import Spool
from tests.export.servers import closed_port

from .runner import taskmeter
from .test_flush import spool_spans


def test_a_failed_flush_says_the_batches_stay_in_the_spool_not_that_it_spools(
    tmp_path: Path,
) -> None:
    """The batches being flushed come from the spool: the warning says they stay there,
    where it said "spooling to" the spool, as if more were being written to it."""
    spool_spans(tmp_path, 5)
    before = Spool(tmp_path).entries()
    result = taskmeter(
        "flush", str(tmp_path), "--otlp-endpoint", f"http://127.0.0.1:{closed_port()}"
    )
    assert result.returncode == 1
    assert "spooling to" not in result.stderr, result.stderr
    assert f"the spooled batches stay in {tmp_path}" in result.stderr, result.stderr
    assert Spool(tmp_path).entries() == before
