"""Start a command, forward signals to it, and account for every process it started.

CPU time and peak RSS come from ``wait4``: the figures of a reaped process
include those of the descendants *it* waited for.  A descendant whose parent
exits without waiting for it is re-parented; taskmeter makes itself the
*child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``, Linux), so such orphans
become its children and are reaped, and counted, here.  Descendants still
running when the command exits are waited for briefly
(:meth:`Supervisor.wait_for_stragglers`: helpers that end as soon as the
command's exit closes their pipe), and for as long as they run with ``wait_all``.

Signals sent to taskmeter (``SIGINT``, ``SIGTERM``, ``SIGHUP``, ...) are
forwarded to the command, but for those ignored when taskmeter started (a
background job's ``SIGINT``, ``nohup``'s ``SIGHUP``): they stay ignored, by
taskmeter and the command alike, as a shell leaves them.  Those the terminal
sends to the whole foreground process group (Ctrl-C, Ctrl-\\, a resize, a
hang-up) already reached the command, which shares taskmeter's group, and are
not sent twice.

Where ``sigtimedwait`` exists (Linux) the signals are blocked and taken one
by one, with the sender's ``si_code`` telling the terminal's from a
``kill``.  Elsewhere (macOS) Python handlers queue them and wake a
``select`` through ``signal.set_wakeup_fd``; without ``si_code``, a terminal
signal is taken for the terminal's while taskmeter's group is in the
terminal's foreground.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType

from ._runfigures import CANCELLING_SIGNALS

SI_KERNEL = 0x80
"""``si_code`` of a signal the kernel sent (the terminal's, for instance)."""

FORWARDED_SIGNALS = tuple(
    sig
    for sig in (
        getattr(signal, name, None)
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
    )
    if sig is not None
)
"""Signals passed on to the command."""

_TERMINAL_SIGNALS = frozenset(
    s
    for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGQUIT", "SIGHUP", "SIGWINCH"))
    if s is not None
)

_PR_SET_CHILD_SUBREAPER = 36

_STRAGGLER_POLL_S = 0.01
"""How often :meth:`Supervisor.wait_for_stragglers` looks for ended processes."""

_SHELL = "/bin/sh"
"""What runs an executable text file that has no ``#!`` line, as ``execvp`` runs it."""


class SpawnError(Exception):
    """The command could not be started; ``exit_code`` is what a shell would return."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Outcome:
    """How the command ended and what its reaped processes consumed."""

    __slots__ = (
        "end_ns",
        "exit_code",
        "last_reaped_s",
        "left_running",
        "left_stop_signal",
        "max_rss_bytes",
        "reaped",
        "signal",
        "stop_from_terminal",
        "stop_signal",
        "system_s",
        "user_s",
    )

    def __init__(self) -> None:
        self.exit_code: int | None = None
        """The command's exit status, when it exited normally."""
        self.signal: int | None = None
        """The signal that killed the command, if one did."""
        self.stop_signal: int | None = None
        """The first SIGINT, SIGTERM or SIGHUP taskmeter got while the command ran and
        passed on to it, or got before it collected the command's end (the command
        ended of its own copy, sent to the whole group): a request to stop it."""
        self.stop_from_terminal: int | None = None
        """The first such signal the terminal sent to the command and to taskmeter
        (Ctrl-C, a hang-up), which taskmeter did not pass on."""
        self.left_stop_signal: int | None = None
        """With ``wait_all``: the first SIGINT, SIGTERM or SIGHUP taskmeter got once the
        command had ended, while it waited for the processes the command left, and passed
        on to them (the terminal's reached them already): a request to stop them."""
        self.last_reaped_s = 0.0
        """When the last process counted was reaped (``time.perf_counter()``): the end of
        the time its CPU time was counted over."""
        self.user_s = 0.0
        self.system_s = 0.0
        self.max_rss_bytes: int | None = None
        """The largest ``ru_maxrss`` of the reaped processes, in bytes."""
        self.reaped = 0
        self.end_ns = 0
        self.left_running: list[int] = []

    @property
    def status_code(self) -> int:
        """The exit status a shell reports: the command's, or 128 + the signal number."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 0


def spawn_error(argv0: str, error: OSError) -> SpawnError:
    """The message and shell-style exit code for a command that could not start."""
    if isinstance(error, FileNotFoundError):
        if not argv0:
            return SpawnError("cannot run '': command not found (the command name is empty)", 127)
        found = _script_path(argv0)
        if found is not None and os.path.isfile(found):
            return _starter_missing(found)
        if os.sep in argv0:
            return SpawnError(f"cannot run {argv0!r}: no such file", 127)
        return SpawnError(f"cannot run {argv0!r}: command not found (searched PATH)", 127)
    if isinstance(error, PermissionError):
        if os.path.isdir(argv0):
            return SpawnError(f"cannot run {argv0!r}: it is a directory", 126)
        if os.sep not in argv0:
            # execvp reports EACCES when any PATH directory could not be searched,
            # whatever it met after: a missing command, or a script whose
            # interpreter is missing.  Say what a shell would.
            found = _script_path(argv0)  # an executable file: what failed is its starter
            if found is not None and os.path.isfile(found):
                return _starter_missing(found)
            candidates, unsearchable = _on_path(argv0)
            if not candidates:
                where = f"; could not search {', '.join(unsearchable)}" if unsearchable else ""
                return SpawnError(
                    f"cannot run {argv0!r}: command not found (searched PATH{where})", 127
                )
            return SpawnError(
                f"cannot run {argv0!r}: permission denied ({candidates[0]} is not executable)",
                126,
            )
        return SpawnError(f"cannot run {argv0!r}: permission denied (not executable?)", 126)
    return SpawnError(f"cannot run {argv0!r}: {error.strerror or error}", 126)


def _starter_missing(found: str) -> SpawnError:
    # The file is there: what is missing is the program that runs it.
    interpreter = _interpreter(found)
    needs = (
        f"its interpreter {interpreter!r} was not found (the #! line)"
        if interpreter
        else "a program or library it needs to start was not found"
    )
    return SpawnError(f"cannot run {found!r}: {needs}", 127)


class Supervisor:
    """Runs one command and waits for it; see the module docstring."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        wait_all: bool = False,
        on_resize: Callable[[], None] | None = None,
        use_sigtimedwait: bool | None = None,
    ) -> None:
        """``use_sigtimedwait``: ``None`` uses it where the platform has it;
        ``False`` takes signals through handlers (what macOS gets)."""
        if not argv:
            raise ValueError("no command to run")
        if use_sigtimedwait is None:
            use_sigtimedwait = hasattr(signal, "sigtimedwait")
        elif use_sigtimedwait and not hasattr(signal, "sigtimedwait"):
            raise ValueError(f"sigtimedwait is not available on {sys.platform}")
        self.argv = list(argv)
        self.env = env
        self.wait_all = wait_all
        self.on_resize = on_resize
        self.pid = 0
        self.forwarded: list[int] = []
        """The signals forwarded to the command, in order."""
        self.outcome = Outcome()
        self._child_done = False
        self._old_mask: set[int] | None = None
        self._subreaper = False
        self._waited = set(FORWARDED_SIGNALS) | {signal.SIGCHLD}
        if hasattr(signal, "SIGWINCH"):
            self._waited.add(signal.SIGWINCH)
        self._queue: _SignalQueue | None = None if use_sigtimedwait else _SignalQueue()
        self._sigchld_was_ignored = False
        self._children_before: set[int] = set()
        """This process's children before the command started (not the command's)."""

    # ---------------------------------------------------------------- start

    def start(self) -> int:
        """Start the command and return its pid; raises :class:`SpawnError`."""
        self._children_before = _children() or set()
        self._subreaper = _set_child_subreaper(True)
        if signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN:
            # Ignored, the kernel would reap the command itself, and take its
            # status and figures with it.
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._sigchld_was_ignored = True
        reset = [signal.SIGPIPE]  # Python ignores it; the command must not inherit that
        if hasattr(signal, "SIGXFSZ"):
            reset.append(signal.SIGXFSZ)
        options: dict[str, object] = {"setsigdef": reset}
        if self._queue is None:
            # Signals ignored when taskmeter started stay ignored, for the
            # command too, as a shell leaves them (a background job's SIGINT,
            # nohup's SIGHUP): blocked, Linux would queue them for sigtimedwait.
            self._waited -= {
                signo for signo in FORWARDED_SIGNALS if signal.getsignal(signo) is signal.SIG_IGN
            }
            # Block the signals before the child exists, so none is lost between
            # the spawn and the first wait; the child gets the original mask.
            old_mask: set[int] = set(signal.pthread_sigmask(signal.SIG_BLOCK, self._waited))
            self._old_mask = old_mask
            options["setsigmask"] = old_mask
        else:
            # Handlers before the child exists, for the same reason; exec
            # restores the default action of each caught signal in the child.
            self._queue.install(self._waited)
        try:
            self.pid = self._spawn(options)
        except OSError as exc:
            self.close()
            raise spawn_error(self.argv[0], exc) from None
        except ValueError as exc:
            # What posix_spawnp refuses before trying: a NUL byte in an argument.
            self.close()
            raise SpawnError(f"cannot run {self.argv[0]!r}: {exc}", 126) from None
        except BaseException:
            self.close()  # the signal mask and handlers, whatever went wrong
            raise
        return self.pid

    def _spawn(self, options: dict[str, object]) -> int:
        if not self.argv[0]:
            # posix_spawnp raises ValueError; execvp, and a shell, say "not found".
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "")
        try:
            return os.posix_spawnp(self.argv[0], self.argv, self.env, **options)  # type: ignore[arg-type]
        except OSError as exc:
            script = _script_path(self.argv[0]) if exc.errno == errno.ENOEXEC else None
            if script is None:
                raise
            # An executable file that is no binary and has no "#!" line:
            # a shell script, which execvp (so env, nohup, timeout, xargs)
            # and shells run with /bin/sh.
            argv = [_SHELL, script, *self.argv[1:]]
            return os.posix_spawn(_SHELL, argv, self.env, **options)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- wait

    def wait(self, tick: Callable[[], float], first_delay_s: float) -> Outcome:
        """Wait for the command, calling ``tick`` (which returns the next delay) meanwhile."""
        due = time.monotonic() + first_delay_s
        while not self._finished():
            signo, code = self._next_signal(max(due - time.monotonic(), 0.0))
            if signo is None:
                # Reaped on every tick too: a SIGCHLD can be lost (taken by
                # another thread of the process that does not block it).
                self._reap()
                if self._finished():
                    break
                due = time.monotonic() + max(tick(), 0.001)
            elif signo == signal.SIGCHLD:
                self._reap()
            else:
                self._on_signal(signo, code)
        return self.outcome

    def wait_for_stragglers(self, grace_s: float) -> None:
        """Once the command has ended, wait up to ``grace_s`` seconds for the processes
        it left to end, reaping (and counting) those that do; returns as soon as none
        is left.

        Helpers that end on their own right after the command, once its exit closed
        the pipe they read (Python's multiprocessing resource tracker and forkserver),
        are counted, not reported as left running.  A daemon the command leaves costs
        the run no more than ``grace_s``; a stop signal (SIGINT, SIGTERM, SIGHUP)
        ends the wait at once.  With ``wait_all`` there is nothing to do: ``wait``
        waited for them all.
        """
        if not self._child_done or self.wait_all:
            return
        deadline = time.monotonic() + grace_s
        self._reap()
        while not self._no_children_left and self._stragglers_left():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Polled as well: a SIGCHLD can be lost (see ``wait``).
            signo, code = self._next_signal(min(remaining, _STRAGGLER_POLL_S))
            if signo in CANCELLING_SIGNALS:
                return
            if signo is not None and signo != signal.SIGCHLD:
                self._on_signal(signo, code)
            self._reap()

    def _stragglers_left(self) -> bool:
        """Whether a child of this process other than those it had before the command
        (a program's own helpers, when taskmeter runs inside one) is still there, the
        command's orphans among them; ``True`` where that cannot be told."""
        children = _children()
        return children is None or not children <= self._children_before

    def _next_signal(self, timeout: float) -> tuple[int | None, int | None]:
        """The next signal taken, waiting up to ``timeout`` seconds, and its sender's
        ``si_code`` where known; ``(None, None)`` if none came."""
        if self._queue is not None:
            return self._queue.next(timeout), None
        info = signal.sigtimedwait(self._waited, timeout)
        return (None, None) if info is None else (info.si_signo, info.si_code)

    def _finished(self) -> bool:
        if not self._child_done:
            return False
        if not self.wait_all:
            self._reap()  # orphans that already ended are ours to count
            return True
        return self._no_children_left

    _no_children_left = False

    def _reap(self) -> None:
        outcome = self.outcome
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                self._no_children_left = True
                return
            if pid == 0:
                return
            outcome.reaped += 1
            outcome.last_reaped_s = time.perf_counter()
            outcome.user_s += usage.ru_utime
            outcome.system_s += usage.ru_stime
            rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            if outcome.max_rss_bytes is None or rss > outcome.max_rss_bytes:
                outcome.max_rss_bytes = rss
            if pid == self.pid:
                outcome.end_ns = time.time_ns()
                if os.WIFSIGNALED(status):
                    outcome.signal = os.WTERMSIG(status)
                else:
                    outcome.exit_code = os.waitstatus_to_exitcode(status)
                self._child_done = True
                for signo in self._pending_stop_signals():
                    self._note_stop(signo, None)

    def _on_signal(self, signo: int, code: int | None) -> None:
        """``code``: the sender's ``si_code``, or ``None`` where it is unknown."""
        if signo == getattr(signal, "SIGWINCH", None) and self.on_resize is not None:
            self.on_resize()
        if self._child_done:
            if self.wait_all:
                self._stop_orphans(signo, code)
            return
        stopping = signo in CANCELLING_SIGNALS
        if stopping:
            self._reap()
            if self._child_done:
                # It ended before this signal was taken, yet after it was sent,
                # as far as taskmeter can tell: most often of its own copy of a
                # signal sent to the whole group (timeout, kill -INT -PGID).
                self._note_stop(signo, code)
                if self.wait_all:
                    self._stop_orphans(signo, code)
                return
        if self._from_terminal(signo, code):
            if stopping:
                self._note_stop(signo, code)
            return  # sent to the whole group: the command has it already
        if signo == getattr(signal, "SIGWINCH", None):
            return
        try:
            os.kill(self.pid, signo)
        except ProcessLookupError:
            return
        self.forwarded.append(signo)
        if stopping:
            self._note_stop(signo, code)

    def _from_terminal(self, signo: int, code: int | None) -> bool:
        """Whether the terminal sent ``signo`` to the whole foreground group, the command
        included (``code``: the sender's ``si_code``, or ``None`` where it is unknown)."""
        if signo not in _TERMINAL_SIGNALS or not self._shares_our_group():
            return False
        return code == SI_KERNEL if code is not None else _our_group_has_terminal()

    def _note_stop(self, signo: int, code: int | None) -> None:
        """Record ``signo``, taken while the command ran or had just ended unseen, as the
        request to stop it: the terminal's, or one taskmeter got (and passed on)."""
        outcome = self.outcome
        if self._from_terminal(signo, code):
            if outcome.stop_from_terminal is None:
                outcome.stop_from_terminal = signo
        elif outcome.stop_signal is None:
            outcome.stop_signal = signo

    def _pending_stop_signals(self) -> list[int]:
        """The stop signals that reached taskmeter and wait to be taken, in number order.

        As the command's end is collected: they came before taskmeter saw it end,
        as one taken first would have (they stay pending, for ``wait_all``)."""
        if self._queue is not None:
            return self._queue.pending(CANCELLING_SIGNALS)
        if self._old_mask is None:
            return []
        return sorted(signal.sigpending() & CANCELLING_SIGNALS & self._waited)

    def _stop_orphans(self, signo: int, code: int | None) -> None:
        """With ``wait_all``, once the command ended: pass ``signo`` on to the processes it
        left, and record the first stop signal among those as the request to stop them."""
        self._pass_on_to_orphans(signo, code)
        if signo in CANCELLING_SIGNALS and self.outcome.left_stop_signal is None:
            self.outcome.left_stop_signal = signo

    def _pass_on_to_orphans(self, signo: int, code: int | None) -> None:
        """With ``wait_all``, once the command ended: pass ``signo`` on to the processes
        still waited for (its orphans, now taskmeter's children), so that a ``kill`` of
        taskmeter, or ``timeout``'s, ends them and the wait, as it ends a command."""
        if signo == getattr(signal, "SIGWINCH", None):
            return
        from ._proctree import ProcessTreeSampler

        terminal = signo in _TERMINAL_SIGNALS and (
            code == SI_KERNEL if code is not None else _our_group_has_terminal()
        )
        ours = os.getpgrp()
        for pid in ProcessTreeSampler(os.getpid()).child_pids():
            try:
                if terminal and os.getpgid(pid) == ours:
                    continue  # the terminal sent it to the whole group: it has it already
                os.kill(pid, signo)
            except ProcessLookupError:
                continue
            self.forwarded.append(signo)

    def _shares_our_group(self) -> bool:
        try:
            return os.getpgid(self.pid) == os.getpgrp()
        except ProcessLookupError:
            return True

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """Restore the signal mask (or handlers) and the subreaper flag."""
        if self._queue is not None:
            self._queue.close()
        if self._old_mask is not None:
            # Discard signals that arrived after the command ended: they were
            # meant for it, and would otherwise act on taskmeter once unblocked.
            pending = signal.sigpending() & set(FORWARDED_SIGNALS)
            while pending:
                signal.sigtimedwait(pending, 0)
                pending = signal.sigpending() & set(FORWARDED_SIGNALS)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            self._old_mask = None
        if self._sigchld_was_ignored:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
            self._sigchld_was_ignored = False
        if self._subreaper:
            _set_child_subreaper(False)
            self._subreaper = False


class _SignalQueue:
    """Signals caught by Python handlers, waited for with ``select`` (no ``sigtimedwait``).

    The handlers only queue the signal number; ``signal.set_wakeup_fd`` writes
    a byte to a pipe for each signal, so a ``select`` on it wakes at once.
    Signals ignored when taskmeter started stay ignored (for the command too,
    as a shell leaves them); SIGCHLD is always caught.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._previous: dict[int, object] = {}
        self._read_fd = self._write_fd = -1
        self._previous_wakeup_fd: int | None = None

    def install(self, signals: set[int]) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signo in sorted(signals):
            previous = signal.getsignal(signo)
            if previous is signal.SIG_IGN and signo != signal.SIGCHLD:
                continue
            self._previous[signo] = previous
            signal.signal(signo, self._caught)

    def _caught(self, signo: int, frame: FrameType | None) -> None:
        self._pending.append(signo)

    def pending(self, wanted: frozenset[int]) -> list[int]:
        """The signals of ``wanted`` caught and not yet taken, in number order."""
        return sorted(set(self._pending) & wanted)

    def next(self, timeout: float) -> int | None:
        """The next signal caught, waiting up to ``timeout`` seconds; ``None`` if none came."""
        if not self._pending:
            with contextlib.suppress(InterruptedError):
                select.select([self._read_fd], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 512):
                    pass
        return self._pending.popleft() if self._pending else None

    def close(self) -> None:
        """Restore the previous handlers and wakeup descriptor; drop what is queued."""
        for signo, previous in self._previous.items():
            signal.signal(signo, previous)  # type: ignore[arg-type]
        self._previous.clear()
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1
        self._pending.clear()


def _our_group_has_terminal() -> bool:
    """Whether taskmeter's process group is the foreground group of its terminal."""
    for stream in (sys.stdin, sys.stderr, sys.stdout):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except (AttributeError, OSError, ValueError):
            continue
    return False


def _children() -> set[int] | None:
    """The pids of this process's children (Linux's ``/proc/self/task/*/children``, a
    file per thread); ``None`` where the kernel does not list them."""
    pids: set[int] = set()
    try:
        for thread in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{thread}/children", "rb") as listing:
                pids.update(int(pid) for pid in listing.read().split())
    except (OSError, ValueError):
        return None
    return pids


def _set_child_subreaper(enable: bool) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); True if it worked."""
    problem = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) == 0:
                return True
            problem = os.strerror(ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            problem = str(exc)
    else:
        problem = f"not available on {sys.platform}"
    from .._log import debug_once

    debug_once(
        "run.subreaper", "cannot become child subreaper (%s): orphans are not counted", problem
    )
    return False


def end_by_signal(signo: int) -> int:
    """End this process by signal ``signo``, as the command ended; returns ``128 + signo``
    only where the signal does not end it.

    An exit status of 128+N reads the same in ``$?``, but not to a parent that
    tells a death by signal from an exit: bash, interrupted by Ctrl-C while it
    waits, stops a loop or a script only if the program it waited for died of
    ``SIGINT`` (one that exits, even with 130, handled the Ctrl-C itself), and
    Python's ``subprocess`` gives ``-N``.  As ``timeout`` does, no core file
    is written for taskmeter itself (the command wrote its own, if any).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set: it needs not
        signal.signal(signo, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signo})
        signal.raise_signal(signo)
    return 128 + signo


def _script_path(argv0: str) -> str | None:
    """The file ``posix_spawnp`` found for ``argv0`` (which it could not execute), or ``None``.

    Found as ``execvp`` finds it: ``argv0`` itself when it names a path, else
    the first executable file of that name on ``PATH``.
    """
    if os.sep in argv0:
        return argv0
    import shutil

    return shutil.which(argv0, path=os.environ.get("PATH", os.defpath))


def _on_path(name: str) -> tuple[list[str], list[str]]:
    """The files named ``name`` in the ``PATH`` directories, and the directories that
    could not be searched (no permission)."""
    found: list[str] = []
    unsearchable: list[str] = []
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        try:
            os.stat(candidate)
        except PermissionError:
            unsearchable.append(directory or ".")
        except OSError:
            continue
        else:
            found.append(candidate)
    return found, unsearchable


def _interpreter(path: str) -> str | None:
    """The program named by the ``#!`` line of the file at ``path``, if it has one."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split()
    return os.fsdecode(words[0]) if words else None
