"""A directory of OTLP requests that could not be delivered yet.

Each batch is one file holding one serialized OTLP export request (the
protobuf bytes an exporter sends), framed so that a reader can tell a whole
file from a damaged one::

    offset  size  field
    0       8     magic b"TMSPOOL1"
    8       1     format version (1)
    9       1     signal: 1 traces, 2 metrics, 3 logs
    10      2     reserved (0)
    12      4     items in the request (spans, data points, log records), little-endian
    16      8     payload length in bytes, little-endian
    24      4     CRC-32 of bytes 8..24 and of the payload
    28      ...   payload

A file is written under a temporary name (owner-only), synced, and renamed
into place, so a crash leaves either no batch or a whole one.  Names sort by
creation time (``<ns>-<pid>-<seq>.<signal>.otlp``), so the oldest batch is
the first.  A process delivering a batch holds an exclusive ``flock`` on it
until it has removed it, so two processes replaying one spool do not send a
batch twice (a lock dies with its process: a crash never strands a batch).

The spool is bounded (:attr:`Spool.max_bytes`): a batch that does not fit
evicts the oldest batches until it does; what is evicted is counted
(:attr:`SpoolStats.dropped_items`) and logged.  Nothing here ever raises into
the application: write failures (a full disk, a permission error) are counted
and logged, and reported by :meth:`Spool.put` returning ``False``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._log import logger, swallowed, warn_once

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SIGNALS",
    "Batch",
    "ClaimedBatch",
    "Spool",
    "SpoolCorruptError",
    "SpoolEntry",
    "SpoolFullError",
    "SpoolStats",
    "decode_batch",
    "encode_batch",
]

SIGNALS = ("traces", "metrics", "logs")
"""The OTLP signals a spool holds."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Default bound of a spool's batch files together (256 MiB)."""

MAGIC = b"TMSPOOL1"
VERSION = 1
_HEADER = struct.Struct("<8sBBHIQI")
HEADER_SIZE = _HEADER.size
"""Bytes before the payload (28)."""
_SIGNAL_CODES = {signal: code for code, signal in enumerate(SIGNALS, start=1)}
_SUFFIX = ".otlp"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_S = 600.0
"""A temporary file this old belongs to a writer that died (writes take milliseconds)."""
_RESCAN_S = 1.0


class SpoolCorruptError(ValueError):
    """A spool file is not a whole batch (truncated, damaged, or not a spool file)."""


class SpoolFullError(Exception):
    """Batches were evicted (or refused) to keep the spool within its bound."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One OTLP export request as it was spooled."""

    signal: str
    """``traces``, ``metrics`` or ``logs``."""
    items: int
    """Spans, metric data points or log records in the request."""
    payload: bytes
    """The serialized ``Export<Signal>ServiceRequest``."""


def encode_batch(batch: Batch) -> bytes:
    """The bytes of a spool file holding ``batch``."""
    code = _SIGNAL_CODES.get(batch.signal)
    if code is None:
        raise ValueError(f"unknown OTLP signal {batch.signal!r}; expected one of {SIGNALS}")
    if not 0 <= batch.items < 1 << 32:
        raise ValueError(f"item count out of range: {batch.items!r}")
    head = _HEADER.pack(MAGIC, VERSION, code, 0, batch.items, len(batch.payload), 0)
    checksum = zlib.crc32(batch.payload, zlib.crc32(head[8:24]))
    return head[:24] + struct.pack("<I", checksum) + batch.payload


def decode_batch(data: bytes) -> Batch:
    """The batch in the bytes of a spool file.

    Raises:
        SpoolCorruptError: the bytes are not a whole batch: too short, another
            kind of file, a length that does not match, or a checksum that
            does not (a truncated or damaged file).
    """
    if len(data) < HEADER_SIZE:
        raise SpoolCorruptError(f"{len(data)} bytes, shorter than a spool header")
    magic, version, code, _reserved, items, length, checksum = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SpoolCorruptError("not a taskmeter spool file (bad magic)")
    if version != VERSION:
        raise SpoolCorruptError(f"unknown spool format version {version}")
    if not 1 <= code <= len(SIGNALS):
        raise SpoolCorruptError(f"unknown signal code {code}")
    if length != len(data) - HEADER_SIZE:
        raise SpoolCorruptError(
            f"payload of {len(data) - HEADER_SIZE} bytes where the header says {length}"
            " (truncated?)"
        )
    payload = data[HEADER_SIZE:]
    if zlib.crc32(payload, zlib.crc32(data[8:24])) != checksum:
        raise SpoolCorruptError("checksum mismatch (damaged file)")
    return Batch(SIGNALS[code - 1], items, bytes(payload))


@dataclass
class SpoolStats:
    """What a :class:`Spool` did in this process (counters only grow)."""

    batches_written: int = 0
    items_written: int = 0
    batches_removed: int = 0
    """Batches removed after delivery (or rejection) by this process."""
    dropped_batches: int = 0
    """Batches evicted (oldest first) or refused to stay within the bound."""
    dropped_items: dict[str, int] = field(default_factory=dict)
    """Items lost to the bound, by signal."""
    write_errors: int = 0
    """Batches that could not be written (full disk, permissions, ...)."""
    write_error_items: dict[str, int] = field(default_factory=dict)
    corrupt_files: int = 0
    """Damaged files found, and removed."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """A batch file waiting in the spool."""

    path: Path
    signal: str
    size: int


class ClaimedBatch:
    """A batch locked for delivery by this process; :meth:`done` removes it."""

    __slots__ = ("_spool", "batch", "entry")

    def __init__(self, spool: Spool, entry: SpoolEntry, batch: Batch) -> None:
        self._spool = spool
        self.entry = entry
        self.batch = batch

    def done(self) -> bool:
        """Remove the batch: it was delivered (or refused for good).

        ``False`` if it could not be removed (counted and logged): it will be
        delivered again, by a later process (at least once).
        """
        return self._spool._remove(self.entry)


class Spool:
    """A bounded directory of undelivered OTLP requests, safe to share between processes.

    Args:
        directory: Where the batch files live; created (owner-only) on first
            write.
        max_bytes: Bound of the batch files together; the oldest batches are
            evicted to stay within it.
        durable: Sync each file to disk before it is renamed into place (a
            power failure then loses nothing that was spooled).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        durable: bool = True,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.durable = durable
        self.stats = SpoolStats()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._usage: int | None = None
        self._usage_at = 0.0
        self._ready = False
        _spools.add(self)

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # ---------------------------------------------------------------- writing

    def put(self, signal: str, payload: bytes, items: int) -> bool:
        """Store one request; ``False`` if it could not be stored (counted and logged)."""
        try:
            data = encode_batch(Batch(signal, items, payload))
        except ValueError as exc:
            swallowed("export.spool.encode", exc)
            return False
        size = len(data)
        with self._lock:
            if size > self.max_bytes:
                self._count_dropped(signal, items)
                swallowed(
                    "export.spool.full",
                    SpoolFullError(
                        f"a {signal} batch of {size} bytes is larger than the spool's bound "
                        f"({self.max_bytes} bytes); {items} item(s) dropped"
                    ),
                )
                return False
            try:
                self._prepare()
                self._make_room(size)
                try:
                    path = self._write(signal, data)
                except FileNotFoundError:
                    # The directory was removed since it was made here: make it again.
                    self._ready = False
                    self._prepare()
                    path = self._write(signal, data)
            except OSError as exc:
                self.stats.write_errors += 1
                lost = self.stats.write_error_items
                lost[signal] = lost.get(signal, 0) + items
                swallowed("export.spool.write", _describe_os_error(exc, self.directory))
                return False
            self.stats.batches_written += 1
            self.stats.items_written += items
            if self._usage is not None:
                self._usage += size
        logger.debug("spooled %d %s item(s) as %s", items, signal, path.name)
        return True

    def _prepare(self) -> None:
        if self._ready:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self.directory))
        self._remove_stale_temporaries()
        self._ready = True

    def _write(self, signal: str, data: bytes) -> Path:
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.{signal}{_SUFFIX}"
        final = self.directory / name
        temporary = self.directory / f"{_TEMP_PREFIX}{os.getpid()}-{name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temporary, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        os.close(fd)
        try:
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return final

    def _make_room(self, size: int) -> None:
        usage = self._current_usage()
        if usage + size <= self.max_bytes:
            return
        usage = self._current_usage(rescan=True)
        if usage + size <= self.max_bytes:
            return
        evicted_batches = 0
        evicted_items: dict[str, int] = {}
        for entry in self.entries():
            if usage + size <= self.max_bytes:
                break
            items = self._evict(entry)
            if items is None:
                continue  # being delivered by someone, or gone already
            usage -= entry.size
            evicted_batches += 1
            evicted_items[entry.signal] = evicted_items.get(entry.signal, 0) + items
        self._usage = usage
        for signal, items in evicted_items.items():
            self._count_dropped(signal, items, batches=0)
        self.stats.dropped_batches += evicted_batches
        if evicted_batches:
            lost = ", ".join(f"{n} {signal} item(s)" for signal, n in evicted_items.items())
            swallowed(
                "export.spool.full",
                SpoolFullError(
                    f"spool {self.directory} is full ({self.max_bytes} bytes): the oldest "
                    f"{evicted_batches} batch(es) were dropped, {lost}"
                ),
            )

    def _evict(self, entry: SpoolEntry) -> int | None:
        """Remove an old batch to make room; its item count, or ``None`` if it was not removed."""
        try:
            fd = os.open(entry.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None
            head = os.pread(fd, HEADER_SIZE, 0)
            items = 0
            if len(head) == HEADER_SIZE:
                magic, _v, _c, _r, items, _l, _crc = _HEADER.unpack(head)
                if magic != MAGIC:
                    items = 0
            if not _same_file(fd, entry.path):
                return None
            os.unlink(entry.path)
            return int(items)
        finally:
            os.close(fd)

    def _count_dropped(self, signal: str, items: int, *, batches: int = 1) -> None:
        self.stats.dropped_batches += batches
        dropped = self.stats.dropped_items
        dropped[signal] = dropped.get(signal, 0) + items

    # ---------------------------------------------------------------- reading

    def entries(self, signal: str | None = None) -> list[SpoolEntry]:
        """The batches waiting (of ``signal``, if given), oldest first.

        Temporary files of writes in progress are not listed.  A spool whose
        directory does not exist is empty.  An entry named like a batch that is
        not a regular file (a directory, a symbolic link, a FIFO) is not one:
        not listed, never removed (it is not the spool's), and named once in a
        warning.
        """
        found: list[SpoolEntry] = []
        try:
            scanner = os.scandir(self.directory)
        except FileNotFoundError:
            return found
        except OSError as exc:  # not a directory, no permission: nothing can be listed
            swallowed("export.spool.list", exc)
            return found
        with scanner:
            for item in scanner:
                name = item.name
                if name.startswith(".") or not name.endswith(_SUFFIX):
                    continue
                kind = name[: -len(_SUFFIX)].rpartition(".")[2]
                if kind not in _SIGNAL_CODES or (signal is not None and kind != signal):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    _warn_not_a_file(Path(item.path))
                    continue
                found.append(SpoolEntry(Path(item.path), kind, info.st_size))
        found.sort(key=lambda e: e.path.name)
        return found

    def pending(self, signal: str | None = None) -> int:
        """How many batches wait (of ``signal``, if given)."""
        return len(self.entries(signal))

    @contextlib.contextmanager
    def claim(self, entry: SpoolEntry) -> Iterator[ClaimedBatch | None]:
        """Lock ``entry`` for delivery and read it.

        Yields ``None`` when the batch is being delivered by another process,
        was removed meanwhile, or is damaged (a damaged file is removed,
        counted and logged).  Call :meth:`ClaimedBatch.done` once it is
        delivered; the lock is released when the block ends.
        """
        try:
            fd = os.open(entry.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield None
                return
            # Locked after another process delivered and removed it: skip it.
            if not _same_file(fd, entry.path):
                yield None
                return
            data = _read_all(fd)
            try:
                batch = decode_batch(data)
            except SpoolCorruptError as exc:
                self._discard_corrupt(entry, exc)
                yield None
                return
            yield ClaimedBatch(self, entry, batch)
        finally:
            os.close(fd)

    def _discard_corrupt(self, entry: SpoolEntry, exc: SpoolCorruptError) -> None:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
        with self._lock:
            self.stats.corrupt_files += 1
            if self._usage is not None:
                self._usage -= entry.size
        swallowed(
            "export.spool.corrupt",
            SpoolCorruptError(f"removed damaged spool file {entry.path.name}: {exc}"),
        )

    def _remove(self, entry: SpoolEntry) -> bool:
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            swallowed(
                "export.spool.remove",
                OSError(
                    exc.errno, f"cannot remove {entry.path.name} from {self.directory}: {reason}"
                ),
            )
            return False
        with self._lock:
            self.stats.batches_removed += 1
            if self._usage is not None:
                self._usage -= entry.size
        return True

    # ---------------------------------------------------------------- size

    def usage_bytes(self) -> int:
        """Bytes of the batch files waiting now."""
        return sum(entry.size for entry in self.entries())

    def _current_usage(self, *, rescan: bool = False) -> int:
        now = time.monotonic()
        if rescan or self._usage is None or now - self._usage_at > _RESCAN_S:
            self._usage = self.usage_bytes()
            self._usage_at = now
        return self._usage

    def _remove_stale_temporaries(self) -> None:
        now = time.time()
        try:
            scanner = os.scandir(self.directory)
        except OSError:
            return
        with scanner:
            for item in scanner:
                if not item.name.startswith(_TEMP_PREFIX):
                    continue
                with contextlib.suppress(OSError):
                    info = item.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and now - info.st_mtime > _STALE_TEMP_S:
                        os.unlink(item.path)


_spools: weakref.WeakSet[Spool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork would never be released here.
    for spool in list(_spools):
        spool._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _warn_not_a_file(path: Path) -> None:
    """Say once in this process that ``path``, named like a batch, is not a file."""
    warn_once(
        f"export.spool.not-a-file:{path}",
        "not a file: %s (named like a spool batch, left alone)",
        path,
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        opened = os.fstat(fd)
        linked = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (linked.st_dev, linked.st_ino)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _describe_os_error(exc: OSError, directory: Path) -> OSError:
    """The error with a message naming the spool and the cause (ENOSPC, EACCES, ...)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return OSError(exc.errno, f"cannot write to spool {directory}: {reason}")
