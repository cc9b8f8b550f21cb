"""A live status line at the bottom of the terminal while a command runs.

The command writes to the same terminal, so the line must not mix with its
output: taskmeter reserves the bottom row by setting the terminal's scrolling
region to the rows above it (as apt does), draws the status there, and gives
the row back when the command ends.  The command's output scrolls above it
untouched.  Full-screen programs (editors, ``top``) manage the screen
themselves: run them with ``--no-status``.
"""

from __future__ import annotations

import os
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
    def wanted(stream: TextIO) -> bool:
        """Whether ``stream`` is a terminal that can show the line."""
        try:
            if not stream.isatty():
                return False
        except (ValueError, OSError):
            return False
        return os.environ.get("TERM", "") not in ("", "dumb")

    def update(self, text: str) -> None:
        """Show ``text`` (setting up the reserved row on first use)."""
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
        self._write(f"{_SAVE}\033[{self._rows};1H\033[K\033[r{_RESTORE}")

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
