"""The supervisor of ``taskmeter run``, in this process, in both of its ways of taking signals.

``sigtimedwait`` is what Linux uses; the handler queue is what platforms
without it (macOS) use, and runs here too when asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskmeter.cli import _supervise
from taskmeter.cli._supervise import Outcome, Supervisor

from .runner import clean_environment, program

MODES = [
    pytest.param(
        True,
        id="sigtimedwait",
        marks=pytest.mark.skipif(not hasattr(signal, "sigtimedwait"), reason="no sigtimedwait"),
    ),
    pytest.param(False, id="handlers"),
]


@pytest.fixture(autouse=True)
def another_thread() -> Iterator[None]:
    """A second thread that blocks no signal, as a test process (or a library) may have."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def supervise(
    argv: list[str],
    use_sigtimedwait: bool,
    on_tick: Callable[[], None] = lambda: None,
    timeout_s: float = 30,
) -> tuple[Supervisor, Outcome]:
    """Run ``argv`` under a supervisor, calling ``on_tick`` every 10 ms meanwhile."""
    supervisor = Supervisor(argv, clean_environment(), use_sigtimedwait=use_sigtimedwait)
    supervisor.start()
    deadline = time.monotonic() + timeout_s

    def tick() -> float:
        if time.monotonic() > deadline:
            os.kill(supervisor.pid, signal.SIGKILL)
        on_tick()
        return 0.01

    try:
        outcome = supervisor.wait(tick, 0.01)
    finally:
        supervisor.close()
    return supervisor, outcome


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """Whatever a test changes in this process's signal handling is put back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGCHLD, signal.SIGTERM)}
    try:
        yield
    finally:
        for signo, handler in saved.items():
            signal.signal(signo, handler)  # type: ignore[arg-type]


def send_once_ready(ready: Path, sig: signal.Signals) -> Callable[[], None]:
    sent = []

    def on_tick() -> None:
        if not sent and ready.exists() and ready.read_text():
            sent.append(sig)
            # To taskmeter's one thread.  (A kill() to this process could land
            # in another thread of the test process, one that does not block it.)
            signal.pthread_kill(threading.main_thread().ident or 0, sig)

    return on_tick


@pytest.mark.parametrize("use_sigtimedwait", MODES)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_to_the_supervisor_reaches_the_command(
    tmp_path: Path, use_sigtimedwait: bool, sig: signal.Signals, restored_signals: None
) -> None:
    ready, out = tmp_path / "ready", tmp_path / "received"
    supervisor, outcome = supervise(
        program("signals.py", ready, out), use_sigtimedwait, send_once_ready(ready, sig)
    )
    assert supervisor.forwarded == [sig]
    assert out.read_text().split() == [str(int(sig))]
    assert outcome.exit_code == 0
    assert outcome.signal is None


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_sigint_stops_the_command_which_dies_of_it(
    tmp_path: Path,
    use_sigtimedwait: bool,
    restored_signals: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kill -INT (not the terminal's): forwarded, even without knowing the sender."""
    monkeypatch.setattr(_supervise, "_our_group_has_terminal", lambda: False)
    ready, out = tmp_path / "ready", tmp_path / "received"
    supervisor, outcome = supervise(
        program("signals.py", ready, out), use_sigtimedwait, send_once_ready(ready, signal.SIGINT)
    )
    assert supervisor.forwarded == [signal.SIGINT]
    assert out.read_text().split() == [str(int(signal.SIGINT))]
    assert outcome.signal == signal.SIGINT
    assert outcome.status_code == 130


def test_terminal_signal_is_not_sent_twice_without_sigtimedwait(
    tmp_path: Path, restored_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the sender's code, a SIGINT while our group holds the terminal is Ctrl-C's:
    the terminal sent it to the command too, so it is not forwarded (SIGTERM still is)."""
    monkeypatch.setattr(_supervise, "_our_group_has_terminal", lambda: True)
    ready, out = tmp_path / "ready", tmp_path / "received"
    interrupt = send_once_ready(ready, signal.SIGINT)
    terminate = send_once_ready(ready, signal.SIGTERM)
    ticks = [0]

    def on_tick() -> None:
        ticks[0] += 1
        interrupt()
        if ticks[0] > 20:  # 0.2 s later
            terminate()

    supervisor, outcome = supervise(program("signals.py", ready, out), False, on_tick)
    assert supervisor.forwarded == [signal.SIGTERM]
    assert out.read_text().split() == [str(int(signal.SIGTERM))]
    assert outcome.exit_code == 0
    # Ctrl-C, which the terminal delivered, is told apart from the SIGTERM passed on.
    assert outcome.stop_from_terminal == signal.SIGINT
    assert outcome.stop_signal == signal.SIGTERM


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_status_and_cpu_of_the_command(tmp_path: Path, use_sigtimedwait: bool) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    _, outcome = supervise([sys.executable, "-c", burn + "raise SystemExit(3)"], use_sigtimedwait)
    assert outcome.exit_code == 3
    assert outcome.status_code == 3
    assert outcome.stop_signal is None  # nothing asked it to stop
    assert outcome.stop_from_terminal is None
    assert 0.3 <= outcome.user_s + outcome.system_s < 1.5
    assert outcome.max_rss_bytes is not None and outcome.max_rss_bytes > 1024 * 1024


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_signal_handling_is_restored_afterwards(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    supervise([sys.executable, "-c", "pass"], use_sigtimedwait)
    assert {s: signal.getsignal(s) for s in before} == before
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask_before
    previous = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(previous)
    assert previous == -1


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_command_ends_normally_when_sigchld_was_ignored(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    """With SIGCHLD ignored the kernel would reap the command itself, status and figures."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _, outcome = supervise([sys.executable, "-c", "raise SystemExit(7)"], use_sigtimedwait)
    assert outcome.exit_code == 7
    assert outcome.reaped >= 1
    assert signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_ignored_sigint_stays_ignored_for_the_command(
    tmp_path: Path, use_sigtimedwait: bool, restored_signals: None
) -> None:
    """As from a shell: a background job's ignored SIGINT is the command's too."""
    out = tmp_path / "disposition"
    script = (
        "import signal, sys\n"
        "ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "open(sys.argv[1], 'w').write(str(ignored))\n"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, outcome = supervise([sys.executable, "-c", script, str(out)], use_sigtimedwait)
    assert outcome.exit_code == 0
    assert out.read_text() == "True"


@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_signal_ignored_at_start_sent_to_the_supervisor_is_ignored(
    tmp_path: Path, use_sigtimedwait: bool, restored_signals: None
) -> None:
    """A background job ignores SIGINT: a ``kill -INT`` of it neither reaches the
    command (which runs to its end) nor counts as a stop request (no cancel)."""
    ready = tmp_path / "ready"
    script = (
        "import pathlib, sys, time\n"
        "pathlib.Path(sys.argv[1]).write_text('ready')\n"
        "time.sleep(0.5)\n"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor, outcome = supervise(
        [sys.executable, "-c", script, str(ready)],
        use_sigtimedwait,
        send_once_ready(ready, signal.SIGINT),
    )
    assert supervisor.forwarded == []
    assert outcome.exit_code == 0
    assert outcome.signal is None
    assert outcome.stop_signal is None
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_sigtimedwait_cannot_be_forced_where_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(signal, "sigtimedwait", raising=False)
    with pytest.raises(ValueError, match="sigtimedwait is not available"):
        Supervisor(["true"], {}, use_sigtimedwait=True)
    assert Supervisor(["true"], {})._queue is not None  # the handlers, then


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and waits to be reaped (Linux ``/proc``)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_command_end_is_noticed_when_its_sigchld_is_lost(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    """Another thread that does not block SIGCHLD may take it: the next tick reaps anyway."""
    supervisor = Supervisor(
        [sys.executable, "-c", "raise SystemExit(4)"],
        clean_environment(),
        use_sigtimedwait=use_sigtimedwait,
    )
    pid = supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while not _is_zombie(pid):
            assert time.monotonic() < deadline, "the command did not end"
            time.sleep(0.01)
        if use_sigtimedwait:
            # Taken here, unless the other thread (another_thread) took it already.
            signal.sigtimedwait({signal.SIGCHLD}, 0.2)
        else:
            assert supervisor._queue is not None
            assert supervisor._queue.next(1) == signal.SIGCHLD  # taken here
        deadline = time.monotonic() + 10

        def tick() -> float:
            assert time.monotonic() < deadline, "the end of the command went unnoticed"
            return 0.01

        outcome = supervisor.wait(tick, 0.01)
    finally:
        supervisor.close()
    assert outcome.exit_code == 4


@pytest.mark.parametrize("sigtimedwait", MODES)
def test_a_name_posix_spawnp_refuses_is_a_spawn_error_and_restores_the_signals(
    sigtimedwait: bool,
) -> None:
    """A command name ``posix_spawnp`` rejects with ``ValueError`` (a NUL byte in it, a
    "null character" in Python 3.13's words): a ``SpawnError`` saying so, with the
    signal mask and handlers as they were before."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = signal.getsignal(signal.SIGTERM)
    supervisor = Supervisor(["bad\0name"], clean_environment(), use_sigtimedwait=sigtimedwait)
    with pytest.raises(_supervise.SpawnError, match=r"null (byte|character)") as raised:
        supervisor.start()
    assert raised.value.exit_code == 126
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert signal.getsignal(signal.SIGTERM) == handler


def _wait_until_zombie(pid: int) -> None:
    deadline = time.monotonic() + 30
    while not _is_zombie(pid):
        assert time.monotonic() < deadline, "the command did not end"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_stop_signal_taken_after_the_command_ended_from_its_own_copy_counts(
    use_sigtimedwait: bool, restored_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal sent to the whole group (``timeout``, ``kill -INT -PGID``) reaches the
    command too, which may end of its copy before taskmeter takes its own: the command
    ended, not yet reaped, when the stop request came, and it still counts."""
    monkeypatch.setattr(_supervise, "_our_group_has_terminal", lambda: False)
    supervisor = Supervisor(
        [sys.executable, "-c", "raise SystemExit(1)"],
        clean_environment(),
        use_sigtimedwait=use_sigtimedwait,
    )
    pid = supervisor.start()
    try:
        _wait_until_zombie(pid)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        outcome = supervisor.wait(lambda: 0.01, 0.01)
    finally:
        supervisor.close()
    assert outcome.exit_code == 1
    assert outcome.stop_signal == signal.SIGINT
    assert outcome.stop_from_terminal is None
    assert supervisor.forwarded == []  # nothing left to pass it on to


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_stop_signal_pending_as_the_command_is_reaped_counts(
    use_sigtimedwait: bool, restored_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race, the other way round: the command's end is collected first (a
    tick's reap) while taskmeter's copy of the signal waits to be taken."""
    monkeypatch.setattr(_supervise, "_our_group_has_terminal", lambda: False)
    supervisor = Supervisor(
        [sys.executable, "-c", "raise SystemExit(1)"],
        clean_environment(),
        use_sigtimedwait=use_sigtimedwait,
    )
    pid = supervisor.start()
    try:
        _wait_until_zombie(pid)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        supervisor._reap()
    finally:
        supervisor.close()
    assert supervisor.outcome.exit_code == 1
    assert supervisor.outcome.stop_signal == signal.SIGTERM


def test_command_that_ended_before_a_tick_reaped_it_is_not_stopped_later(
    restored_signals: None,
) -> None:
    """A stop signal that comes once the command's end was collected does not count."""
    supervisor, outcome = supervise([sys.executable, "-c", "raise SystemExit(1)"], True)
    supervisor._on_signal(signal.SIGTERM, None)
    assert outcome.stop_signal is None


def _supervise_then_wait_for_stragglers(
    script: str,
    use_sigtimedwait: bool,
    grace_s: float,
    during_grace: Callable[[], None] = lambda: None,
) -> tuple[Outcome, float]:
    """Run ``sh -c SCRIPT``, then give what it leaves ``grace_s`` seconds to end (calling
    ``during_grace`` as that begins); returns the outcome and the seconds it took."""
    supervisor = Supervisor(
        ["sh", "-c", script], clean_environment(), use_sigtimedwait=use_sigtimedwait
    )
    supervisor.start()
    try:
        outcome = supervisor.wait(lambda: 0.01, 0.01)
        began = time.monotonic()
        during_grace()
        supervisor.wait_for_stragglers(grace_s)
        took = time.monotonic() - began
    finally:
        supervisor.close()
    return outcome, took


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_a_process_that_ends_within_the_grace_is_reaped_and_counted(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    """An orphan that ends 0.1 s after the command is reaped (counted) without waiting
    out a long grace."""
    outcome, took = _supervise_then_wait_for_stragglers("sleep 0.1 & exit 0", use_sigtimedwait, 10)
    assert outcome.reaped == 2  # the shell and its sleep
    assert took < 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_children_from_before_the_command_are_not_waited_for(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    """A child this process had before the command (a program's own helper, such as
    multiprocessing's resource tracker, when taskmeter runs inside it) is not one the
    command left: the grace ends once the command's are gone."""
    helper = subprocess.Popen(["sleep", "30"])
    try:
        outcome, took = _supervise_then_wait_for_stragglers(
            "sleep 0.1 & exit 0", use_sigtimedwait, 10
        )
        assert outcome.reaped == 2  # the shell and its sleep, not the helper
        assert took < 5
        assert helper.poll() is None
    finally:
        helper.kill()
        helper.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_a_process_left_running_costs_the_grace_and_no_more(
    tmp_path: Path, use_sigtimedwait: bool, restored_signals: None
) -> None:
    """A 30 s sleeper the command leaves is waited for ``grace_s`` seconds, then left."""
    pid_file = tmp_path / "sleeper"
    outcome, took = _supervise_then_wait_for_stragglers(
        f"sleep 30 & echo $! > {pid_file}", use_sigtimedwait, 0.2
    )
    sleeper = int(pid_file.read_text())
    try:
        assert outcome.reaped == 1  # the shell alone
        assert 0.19 <= took < 5  # the grace, far from the sleeper's 30 s
    finally:
        os.kill(sleeper, signal.SIGKILL)
        os.waitpid(sleeper, 0)  # re-parented to this process (then the subreaper)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_a_stop_signal_ends_the_grace_at_once(
    tmp_path: Path, use_sigtimedwait: bool, restored_signals: None
) -> None:
    """A SIGTERM to taskmeter while it gives a left process its grace ends the wait."""
    pid_file = tmp_path / "sleeper"
    main = threading.main_thread().ident or 0
    timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGTERM))
    outcome, took = _supervise_then_wait_for_stragglers(
        f"sleep 30 & echo $! > {pid_file}", use_sigtimedwait, 20, timer.start
    )
    timer.join()
    sleeper = int(pid_file.read_text())
    try:
        assert outcome.exit_code == 0
        assert took < 10
    finally:
        os.kill(sleeper, signal.SIGKILL)
        os.waitpid(sleeper, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"]
)
def test_stop_signal_while_waiting_for_what_the_command_left_is_a_stop_request(
    tmp_path: Path,
    use_sigtimedwait: bool,
    sig: signal.Signals,
    restored_signals: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``wait_all``, a stop signal that comes once the command has exited goes to the
    daemon it left and is recorded as the request to stop it."""
    monkeypatch.setattr(_supervise, "_our_group_has_terminal", lambda: False)
    ready = tmp_path / "ready"
    supervisor = Supervisor(
        program("daemonize.py", ready),
        clean_environment(),
        wait_all=True,
        use_sigtimedwait=use_sigtimedwait,
    )
    supervisor.start()
    main = threading.main_thread().ident or 0
    sent: list[int] = []
    deadline = time.monotonic() + 20

    def tick() -> float:
        if time.monotonic() > deadline:
            _kill_daemon(ready)  # and fail below, rather than wait out its 20 s
        elif not sent and supervisor._child_done and ready.exists():
            sent.append(sig)
            signal.pthread_kill(main, sig)
        return 0.01

    try:
        outcome = supervisor.wait(tick, 0.01)
    finally:
        supervisor.close()
        _kill_daemon(ready)
    assert sent == [sig], "the daemon did not start"
    assert outcome.exit_code == 0
    assert outcome.stop_signal is None  # the command itself was not asked to stop
    assert outcome.left_stop_signal == sig
    assert supervisor.forwarded == [sig]


def _kill_daemon(ready: Path) -> None:
    """SIGKILL the daemon ``daemonize.py`` named in ``ready``, if it is still there."""
    if ready.exists():
        daemon = ready.read_text().split()[1]
        if os.path.exists(f"/proc/{daemon}"):
            os.kill(int(daemon), signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the child subreaper")
@pytest.mark.parametrize("use_sigtimedwait", MODES)
def test_the_last_reaping_ends_the_time_cpu_was_counted_over(
    use_sigtimedwait: bool, restored_signals: None
) -> None:
    """A process reaped in the grace after the command ended is counted, and its reaping
    is when the counted time ends, past the command's end."""
    supervisor = Supervisor(
        ["sh", "-c", "sleep 0.15 & exit 0"], clean_environment(), use_sigtimedwait=use_sigtimedwait
    )
    supervisor.start()
    try:
        outcome = supervisor.wait(lambda: 0.01, 0.01)
        command_reaped = outcome.last_reaped_s
        supervisor.wait_for_stragglers(10)
    finally:
        supervisor.close()
    assert outcome.reaped == 2
    assert command_reaped > 0
    assert outcome.last_reaped_s - command_reaped >= 0.1
