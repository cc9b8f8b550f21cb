"""Top-level worker inboxes whose process ended without exit hooks: found and removed.

A process that is killed (``SIGTERM`` with the default handler, ``SIGKILL``,
the OOM killer) or leaves by ``os._exit`` never removes its inbox.  So that
such directories do not pile up in the temporary directory, each top-level
inbox is named after its owner::

    taskmeter-workers-<pid>-<start>-<scope>-<random>

``start`` is the process's start time in clock ticks since boot (field 22 of
``/proc/<pid>/stat``) and ``scope`` a short digest of the kernel's boot id and
the process's PID and time namespaces (start times read in another time
namespace are shifted).  A process whose ``/proc`` is not of its own PID
namespace names its inbox the old way, which no sweep removes.

When a process makes its top-level inbox, it first removes (once, at most
:data:`MAX_REMOVED` of them) the inboxes that are this user's, of the same
scope, and whose owner is gone: no process has that pid, or the one that has
it started at another time (the pid was reused). Everything else is left:
another boot or PID namespace (a container sharing the directory, whose pids
mean nothing here), a process that cannot be inspected, a name of another form
(an earlier version's).

A stale inbox is first renamed to a name of the sweeping process's own, so
that of two processes sweeping at once one removes it, and one that dies
while removing it leaves a directory the next sweep removes.  The records in
it are not reported: they are tasks of workers whose parent process was
killed before it could collect them, the process that finds them is not the
one they belong to (perhaps another program), and the owner's own tasks were
lost with it anyway.  Their number is logged at debug level.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._files import absolute
from ._log import logger, swallowed

PREFIX = "taskmeter-workers-"
"""How every top-level inbox's name begins."""

MAX_REMOVED = 32
"""The most stale inboxes one process removes (the next process removes more)."""

PROC = Path("/proc")

_SCOPE_DIGITS = 12


@dataclass(frozen=True)
class Owner:
    """The process an inbox belongs to, as its name records it."""

    pid: int
    start: int
    """Start time, in clock ticks since boot."""
    scope: str
    """Digest of the boot id and the PID namespace: where ``pid`` and ``start`` mean this."""

    def prefix(self) -> str:
        """The beginning of the name of an inbox of this owner (``mkdtemp`` adds the rest)."""
        return f"{PREFIX}{self.pid}-{self.start}-{self.scope}-"

    @classmethod
    def parse(cls, name: str) -> Owner | None:
        """The owner a top-level inbox name records; ``None`` for a name of another form."""
        if not name.startswith(PREFIX):
            return None
        parts = name[len(PREFIX) :].split("-")
        if len(parts) != 4:
            return None
        pid, start, scope, _ = parts
        if not (pid.isdigit() and start.isdigit() and _is_scope(scope)):
            return None
        return cls(int(pid), int(start), scope)


def _is_scope(text: str) -> bool:
    return len(text) == _SCOPE_DIGITS and all(c in "0123456789abcdef" for c in text)


def _start_ticks(pid: int | str, proc: Path = PROC) -> tuple[str, int]:
    """A process's state letter and start time in ticks since boot (raises ``OSError``,
    ``ValueError`` when it cannot be read)."""
    with open(proc / str(pid) / "stat", "rb") as stat:
        text = stat.read().decode("ascii", "replace")
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def own_owner(proc: Path = PROC) -> Owner | None:
    """This process as an inbox owner; ``None`` where that cannot be told (no ``/proc``)."""
    try:
        if os.readlink(proc / "self") != str(os.getpid()):
            # A /proc of another PID namespace (``unshare -p`` without its own
            # /proc): its entries are not those of this namespace's pids.
            return None
        _, start = _start_ticks("self", proc)
        boot_id = (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        namespace = os.readlink(proc / "self" / "ns" / "pid")
        # Start times in /proc are shifted by the reader's time namespace: two
        # processes read the same ones only in the same one (absent before Linux 5.6,
        # which has none).
        time_namespace = _link_or_empty(proc / "self" / "ns" / "time")
    except (OSError, ValueError, IndexError):
        return None
    digest = hashlib.sha256(f"{boot_id}\0{namespace}\0{time_namespace}".encode()).hexdigest()
    return Owner(os.getpid(), start, digest[:_SCOPE_DIGITS])


def _link_or_empty(path: Path) -> str:
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return ""


def owner_gone(owner: Owner, proc: Path = PROC) -> bool:
    """Whether ``owner`` (of this boot and PID namespace) has certainly ended: no process
    has its pid, the one that has it started at another time, or it is a zombie."""
    try:
        state, start = _start_ticks(owner.pid, proc)
    except (FileNotFoundError, ProcessLookupError):
        return True
    except (OSError, ValueError, IndexError):
        return False  # cannot tell: left
    return start != owner.start or state in ("Z", "X")


def make_inbox_directory() -> Path:
    """A new top-level inbox in the temporary directory, named after this process (see
    the module's docstring), after removing stale ones (once per process)."""
    me = own_owner()
    if me is None:
        return _absolute(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    remove_stale(me)
    return _absolute(tempfile.mkdtemp(prefix=me.prefix()))


def _absolute(path: str) -> Path:
    """``path`` made absolute: Python before 3.12 gives a relative one for ``TMPDIR=.``,
    which names another directory once this process, or a worker, changes its own."""
    return Path(absolute(path))


_swept_by: int | None = None


def remove_stale(me: Owner, directory: str | None = None) -> int:
    """Remove the stale inboxes in ``directory`` (the temporary directory), once per
    process; returns how many.  Never raises: errors are counted (``workers.stale``)."""
    global _swept_by
    if _swept_by == os.getpid():
        return 0
    _swept_by = os.getpid()
    removed = 0
    try:
        parent = directory if directory is not None else tempfile.gettempdir()
        for path in _stale_in(parent, me):
            if removed >= MAX_REMOVED:
                break
            removed += _remove(path, me)
    except Exception as exc:
        swallowed("workers.stale", exc)
    return removed


def _stale_in(parent: str, me: Owner) -> list[str]:
    """The inboxes in ``parent`` that this user owns, of ``me``'s scope, whose owner is gone."""
    uid = os.getuid()
    stale = []
    with os.scandir(parent) as entries:
        for entry in entries:
            owner = Owner.parse(entry.name)
            if owner is None or owner.scope != me.scope or owner == me:
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
            except FileNotFoundError:
                continue  # removed meanwhile
            if owner_gone(owner):
                stale.append(entry.path)
    return stale


def _remove(path: str, me: Owner) -> int:
    """Claim ``path`` (rename it to a name of this process's), then remove it; 1 if this
    process removed it, 0 if another claimed it first or it could not be removed."""
    claimed = os.path.join(os.path.dirname(path), f"{me.prefix()}stale{os.urandom(4).hex()}")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return 0  # another process claimed it
    except OSError as exc:
        swallowed("workers.stale", exc)
        return 0
    records = _count_records(claimed)
    try:
        shutil.rmtree(claimed)
    except OSError as exc:
        swallowed("workers.stale", exc)
        return 0
    logger.debug(
        "removed %s, the worker inbox of a process that ended without exit hooks "
        "(%d undelivered worker record(s))",
        path,
        records,
    )
    return 1


def _count_records(path: str) -> int:
    try:
        return sum(1 for name in os.listdir(path) if name.endswith(".json"))
    except OSError:
        return 0
