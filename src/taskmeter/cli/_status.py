"""A live status line at the bottom of the terminal while a command runs.

The command writes to the same terminal, so the line must not mix with its
output: taskmeter reserves the bottom row by setting the terminal's scrolling
region to the rows above it (as apt does), draws the status there, and gives
the row back when the command ends.  The command's output scrolls above it
untouched.  Full-screen programs (editors, ``top``) manage the screen
themselves: run them with ``--no-status``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import TextIO

from ..formats import friendly_bytes

_SAVE = "\0337"
_RESTORE = "\0338"


def status_text(
    elapsed_s: float, cpu_s: float | None, rss_bytes: int | None, processes: int
) -> str:
    """The status line's text (without terminal controls)."""
    parts = [f"taskmeter  {_clock(elapsed_s)}"]
    if cpu_s is not None:
        parts.append(f"cpu {cpu_s:.1f}s")
    if rss_bytes is not None:
        parts.append(f"mem {friendly_bytes(rss_bytes)}")
    parts.append(f"{processes} process{'es' if processes != 1 else ''}")
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


class StatusLine:
    """Draws the status on the bottom row of a terminal; a no-op when not shown."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False
        self._rows = 0
        self._cols = 0

    @staticmethod
    def wanted(stream: TextIO | None) -> bool:
        """Whether ``stream`` is a terminal that can show the line (``None``: a closed one)."""
        if stream is None:
            return False
        try:
            if not stream.isatty():
                return False
        except (ValueError, OSError):
            return False
        return os.environ.get("TERM", "") not in ("", "dumb")

    def update(self, text: str) -> None:
        """Show ``text`` (setting up the reserved row on first use).

        Only while taskmeter is in the terminal's foreground: a background job
        (``taskmeter run ... &``, or after Ctrl-Z and ``bg``) must not take a
        row of the screen the foreground program uses, nor be stopped for
        writing to it (``stty tostop``).  The row is given back when taskmeter
        finds itself in the background, and taken again back in the foreground.
        """
        if not self._in_foreground():
            self.close()
            return
        if not self.shown:
            if not self._measure():
                return
            # IND then RI: scroll up one line if the cursor is on the last
            # row, keeping its column, so the reserved row covers no output.
            self._write(f"\033D\033M{_SAVE}\033[1;{self._rows - 1}r{_RESTORE}")
            self.shown = True
        self._draw(text)

    def resize(self) -> None:
        """Re-reserve the bottom row after the terminal changed size."""
        if not self.shown:
            return
        if not self._in_foreground():
            self.close()
            return
        self._write(f"{_SAVE}\033[{self._rows};1H\033[K{_RESTORE}")
        if not self._measure():
            self.close()
            return
        self._write(f"{_SAVE}\033[1;{self._rows - 1}r{_RESTORE}")

    def close(self) -> None:
        """Clear the status row and give it back to the terminal."""
        if not self.shown:
            return
        self.shown = False
        # From the background too (SIGTTOU ignored, so "stty tostop" does not
        # stop taskmeter for it): a reserved row left behind would stay.
        with _tostop_ignored():
            self._write(f"{_SAVE}\033[{self._rows};1H\033[K\033[r{_RESTORE}")

    def _in_foreground(self) -> bool:
        """Whether taskmeter's process group is the terminal's foreground group."""
        try:
            return os.tcgetpgrp(self.stream.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            return False

    def _draw(self, text: str) -> None:
        self._write(
            f"{_SAVE}\033[{self._rows};1H\033[7m {text[: self._cols - 2]} \033[0m\033[K{_RESTORE}"
        )

    def _measure(self) -> bool:
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError):
            return False
        self._rows, self._cols = size.lines, size.columns
        return self._rows >= 3 and self._cols >= 20

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            self.shown = False


@contextlib.contextmanager
def _tostop_ignored() -> Iterator[None]:
    """``SIGTTOU`` ignored meanwhile (in the main thread, where handlers can be set):
    a background process that ignores it may write to its terminal whatever ``stty``
    says."""
    ttou = getattr(signal, "SIGTTOU", None)
    if ttou is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(ttou, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(ttou, previous)
