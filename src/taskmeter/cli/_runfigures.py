"""What a run measured, kept free of pydantic so a plain run need not import it."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..figures import Figures

CANCELLING_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
"""A command killed by one of these, or that ended after taskmeter got one, was stopped
on request: its task is ``cancelled``."""


class RunFigures:
    """What a run measured, before it becomes a task record."""

    __slots__ = (
        "argv",
        "cpu_span_s",
        "cpu_system_s",
        "cpu_user_s",
        "duration_s",
        "exit_code",
        "finish_time",
        "left_running",
        "left_stop_signal",
        "peak_process_rss_bound_bytes",
        "peak_process_rss_bytes",
        "peak_tree_rss_bytes",
        "pid",
        "probe_figures",
        "signal",
        "start_time",
        "stop_from_terminal",
        "stop_signal",
    )

    def __init__(self, argv: Sequence[str], pid: int) -> None:
        self.argv = list(argv)
        self.pid = pid
        self.start_time = 0.0
        self.finish_time = 0.0
        self.duration_s = 0.0
        self.cpu_user_s = 0.0
        self.cpu_system_s = 0.0
        self.cpu_span_s = 0.0
        """The seconds the CPU time was counted over: from the start until the last process
        counted ended; longer than :attr:`duration_s` (the command's) where processes the
        command left ended after it, within the grace taskmeter gives them."""
        self.peak_process_rss_bytes: int | None = None
        self.peak_process_rss_bound_bytes: int | None = None
        """When the peak is below what can be resolved: an upper bound of it."""
        self.peak_tree_rss_bytes: int | None = None
        self.exit_code = 0
        """The shell-style status: the command's own, or 128 + the signal number."""
        self.signal: int | None = None
        self.stop_signal: int | None = None
        """A SIGINT, SIGTERM or SIGHUP that taskmeter passed on to the command (or got
        as the command ended of its own copy, sent to the whole group), if any."""
        self.stop_from_terminal: int | None = None
        """One that the terminal sent to the command itself (Ctrl-C), if any."""
        self.left_stop_signal: int | None = None
        """With ``--wait-all``: a SIGINT, SIGTERM or SIGHUP that came once the command had
        exited and went to the processes it left (passed on, or from the terminal)."""
        self.left_running: list[int] = []
        self.probe_figures: Figures | None = None
        """Figures of the other probes (GPU memory, energy), once read."""

    @property
    def status(self) -> str:
        """``finished``, ``cancelled`` or ``failed``.

        ``cancelled``: the command was killed by SIGINT, SIGTERM or SIGHUP; or it
        ended, with whatever status, after taskmeter passed one of them on (it was
        asked to stop, and a program that catches the signal to clean up still
        stopped on request); or it ended with a non-zero status after the terminal
        sent it one (Ctrl-C); or, with ``--wait-all``, one of them went to the
        processes it left, once it had exited.  An interactive program that takes
        Ctrl-C in its stride (an editor, a shell) and exits 0 later is ``finished``.
        """
        if self.stop_requested is not None or self.left_stop_signal is not None:
            return "cancelled"
        if self.signal is not None:
            return "cancelled" if self.signal in CANCELLING_SIGNALS else "failed"
        return "finished" if self.exit_code == 0 else "failed"

    @property
    def signal_name(self) -> str | None:
        """``"SIGINT"`` and the like, or ``None``."""
        return None if self.signal is None else _signal_name(self.signal)

    def describe_end(self) -> str:
        """``"exited with status 3"``, ``"was killed by SIGKILL (exit status 137)"``;
        ``" after SIGTERM"`` follows when the command was asked to stop, and
        ``"; the processes it left running were sent SIGTERM"`` when, with
        ``--wait-all``, they were."""
        if self.signal is not None:
            text = f"was killed by {self.signal_name} (exit status {self.exit_code})"
        else:
            text = f"exited with status {self.exit_code}"
        stop = self.stop_requested
        if stop is not None and stop != self.signal:
            text += f" after {_signal_name(stop)}"
        left = self.left_stop_signal
        if left is not None and left != stop:
            text += f"; the processes it left running were sent {_signal_name(left)}"
        return text

    @property
    def stop_requested(self) -> int | None:
        """The signal that asked the command to stop, when it counts (see :attr:`status`)."""
        if self.stop_signal is not None:
            return self.stop_signal
        if self.stop_from_terminal is not None and self.exit_code != 0:
            return self.stop_from_terminal
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
