"""The spool: whole batches or none, owner-only, bounded (oldest dropped, counted), shared."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from taskmeter import _log
from taskmeter.export import Batch, Spool, SpoolCorruptError, decode_batch, encode_batch
from taskmeter.export.spool import HEADER_SIZE


def test_batch_round_trips_through_its_file_format() -> None:
    """encode_batch/decode_batch keep the signal, the item count and the bytes."""
    batch = Batch("metrics", 17, b"\x00\x01payload\xff")
    assert decode_batch(encode_batch(batch)) == batch


@pytest.mark.parametrize("cut", [0, 1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_truncated_file_is_detected(cut: int) -> None:
    """A file cut short anywhere (a crash mid-copy, a full disk) is corrupt, not a batch."""
    data = encode_batch(Batch("traces", 3, b"x" * 100))
    with pytest.raises(SpoolCorruptError):
        decode_batch(data[:cut])


def test_every_single_bit_flip_is_detected() -> None:
    """CRC-32 over the header fields and the payload catches any one damaged bit."""
    data = bytearray(encode_batch(Batch("logs", 2, b"hello spool")))
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SpoolCorruptError):
            decode_batch(bytes(damaged))


def test_put_writes_owner_only_files_in_an_owner_only_directory(tmp_path: Path) -> None:
    """The spool directory is created 0700 and each batch file 0600; no temporary file remains."""
    spool = Spool(tmp_path / "spool")
    assert spool.put("traces", b"abc", 1)
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    [entry] = spool.entries()
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [entry.path.name]
    with spool.claim(entry) as claimed:
        assert claimed is not None
        assert claimed.batch == Batch("traces", 1, b"abc")


def test_entries_are_oldest_first_and_filtered_by_signal(tmp_path: Path) -> None:
    """Names sort by creation time; entries(signal) lists only that signal."""
    spool = Spool(tmp_path)
    for index, signal in enumerate(["traces", "metrics", "traces"]):
        spool.put(signal, bytes([index]), 1)
    assert [e.signal for e in spool.entries()] == ["traces", "metrics", "traces"]
    traces = spool.entries("traces")
    assert len(traces) == 2
    with spool.claim(traces[0]) as first:
        assert first is not None and first.batch.payload == b"\x00"


def test_full_spool_drops_the_oldest_batches_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_bytes the oldest batches go, their items are counted by signal and logged once."""
    size = HEADER_SIZE + 1000
    spool = Spool(tmp_path, max_bytes=3 * size)
    for index in range(5):
        assert spool.put("traces", bytes([index]) * 1000, 10 + index)
    entries = spool.entries()
    assert len(entries) == 3
    assert spool.usage_bytes() <= spool.max_bytes
    payloads = []
    for entry in entries:
        with spool.claim(entry) as claimed:
            assert claimed is not None
            payloads.append(claimed.batch.payload[0])
    assert payloads == [2, 3, 4]  # the newest survive
    assert spool.stats.dropped_items == {"traces": 10 + 11}
    assert spool.stats.dropped_batches == 2
    assert _log.error_counts["export.spool.full"] == 2
    assert caplog.text.count("is full") == 1  # rate-limited


def test_batch_larger_than_the_bound_is_refused_and_counted(tmp_path: Path) -> None:
    """A single batch that can never fit is dropped (counted), and evicts nothing."""
    spool = Spool(tmp_path, max_bytes=2000)
    assert spool.put("traces", b"a" * 100, 1)
    assert not spool.put("traces", b"b" * 5000, 7)
    assert len(spool.entries()) == 1
    assert spool.stats.dropped_items == {"traces": 7}


def test_damaged_file_is_removed_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """claim() yields None for a truncated file, removes it and says so."""
    spool = Spool(tmp_path)
    spool.put("traces", b"x" * 50, 5)
    [entry] = spool.entries()
    with open(entry.path, "r+b") as handle:
        handle.truncate(HEADER_SIZE + 10)
    with spool.claim(entry) as claimed:
        assert claimed is None
    assert not entry.path.exists()
    assert spool.stats.corrupt_files == 1
    assert "damaged spool file" in caplog.text


def test_write_failure_is_counted_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC while writing: put() returns False, the items are counted, nothing is left."""
    spool = Spool(tmp_path)
    real_write = os.write

    def full_disk(fd: int, data: object) -> int:
        if fd > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "write", full_disk)
    assert not spool.put("traces", b"abc", 4)
    monkeypatch.undo()
    assert spool.stats.write_error_items == {"traces": 4}
    assert _log.error_counts["export.spool.write"] == 1
    assert "No space left on device" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_spool_under_a_file_is_a_counted_write_error(tmp_path: Path) -> None:
    """A spool path whose parent is a regular file cannot be created: counted, not raised."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    spool = Spool(blocker / "spool")
    assert not spool.put("metrics", b"x", 2)
    assert spool.stats.write_error_items == {"metrics": 2}
    assert spool.entries() == []


def test_a_spool_directory_removed_while_in_use_is_made_again(tmp_path: Path) -> None:
    """Removing the spool directory (a clean-up, a reset) loses no later batch."""
    directory = tmp_path / "spool"
    spool = Spool(directory)
    assert spool.put("traces", b"first", 1)
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()
    assert spool.put("traces", b"second", 2)
    assert spool.stats.write_errors == 0
    assert directory.stat().st_mode & 0o777 == 0o700
    [entry] = spool.entries()
    with spool.claim(entry) as claimed:
        assert claimed is not None
        assert claimed.batch.payload == b"second"


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    """A writer killed mid-write leaves a temporary file; the next spool removes it once old."""
    stale = tmp_path / ".tmp-99999-00000000000000000001-99999-000000.traces.otlp"
    fresh = tmp_path / ".tmp-99998-00000000000000000002-99998-000000.traces.otlp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    spool = Spool(tmp_path)
    assert spool.entries() == []  # temporaries are never listed
    spool.put("traces", b"x", 1)
    assert not stale.exists()
    assert fresh.exists()


def test_a_batch_locked_by_another_process_is_skipped(tmp_path: Path) -> None:
    """Two processes replaying one spool never send the same batch: the lock says who has it."""
    spool = Spool(tmp_path)
    spool.put("traces", b"one", 1)
    [entry] = spool.entries()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, os, sys, time
                fd = os.open({str(entry.path)!r}, os.O_RDWR)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with spool.claim(entry) as claimed:
            assert claimed is None
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    with spool.claim(entry) as claimed:  # the lock died with its holder
        assert claimed is not None
        claimed.done()
    assert spool.entries() == []


def test_claim_after_someone_else_removed_it_yields_nothing(tmp_path: Path) -> None:
    """A batch delivered and removed by another process between listing and locking is skipped."""
    spool = Spool(tmp_path)
    spool.put("traces", b"one", 1)
    [entry] = spool.entries()
    other = Spool(tmp_path)
    with other.claim(entry) as claimed:
        assert claimed is not None
        claimed.done()
    with spool.claim(entry) as claimed:
        assert claimed is None


def test_the_full_spool_error_counts_writes_and_the_stats_count_batches(tmp_path: Path) -> None:
    """A batch twice the size of the others evicts two of them in one write: one
    ``export.spool.full`` error, two dropped batches (the README says which counts what)."""
    size = len(encode_batch(Batch("traces", 1, b"x" * 1000)))
    spool = Spool(tmp_path, max_bytes=3 * size, durable=False)
    for _ in range(3):
        assert spool.put("traces", b"x" * 1000, 1)
    assert spool.put("traces", b"y" * (size + 1000), 2)
    assert spool.stats.dropped_batches == 2
    assert spool.stats.dropped_items == {"traces": 2}
    assert _log.error_counts["export.spool.full"] == 1


def test_an_entry_named_like_a_batch_that_is_not_a_file_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory, a symbolic link or a FIFO named like a batch is not one: not listed, not
    counted in the spool's size, never removed (it is not the spool's), named once in a warning."""
    spool = Spool(tmp_path)
    assert spool.put("traces", b"abc", 1)
    [batch] = spool.entries()
    strangers = [
        tmp_path / "00000000000000000001-1-000000.traces.otlp",
        tmp_path / "00000000000000000002-1-000000.traces.otlp",
        tmp_path / "00000000000000000003-1-000000.metrics.otlp",
    ]
    strangers[0].mkdir()
    strangers[1].symlink_to(batch.path)
    os.mkfifo(strangers[2])
    with caplog.at_level("WARNING", logger="taskmeter"):
        for _ in range(3):
            assert spool.entries() == [batch]
            assert spool.pending("metrics") == 0
        assert spool.usage_bytes() == batch.size
    for stranger in strangers:
        assert os.path.lexists(stranger)
        named = [r.getMessage() for r in caplog.records if str(stranger) in r.getMessage()]
        assert len(named) == 1 and named[0].startswith("not a file: "), named


def test_a_full_spool_evicts_batches_not_what_is_not_a_file(tmp_path: Path) -> None:
    """Room made for a new batch is taken from batches only: an older directory named
    like a batch stays, and the new batch is written."""
    spool = Spool(tmp_path, max_bytes=HEADER_SIZE + 100)
    stranger = tmp_path / "00000000000000000001-1-000000.traces.otlp"
    stranger.mkdir()
    assert spool.put("traces", b"x" * 100, 1)
    assert spool.put("traces", b"y" * 100, 1)
    [entry] = spool.entries()
    with spool.claim(entry) as claimed:
        assert claimed is not None and claimed.batch.payload == b"y" * 100
    assert stranger.is_dir()
