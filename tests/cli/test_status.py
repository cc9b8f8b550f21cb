"""The live status line: the bottom row is reserved, drawn and given back."""

from __future__ import annotations

import io

from taskmeter.cli._status import StatusLine, status_text


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_text_names_elapsed_cpu_memory_and_processes() -> None:
    """The text shows m:ss, CPU seconds, memory and the process count."""
    text = status_text(75.2, 12.34, 512 * 1024 * 1024, 3)
    assert text == "taskmeter  1:15  cpu 12.3s  mem 512.0 MiB  3 processes"
    assert status_text(3700, None, None, 1) == "taskmeter  1:01:40  1 process"


class Terminal24x80(StatusLine):
    """A status line on a 24 x 80 terminal, taskmeter in its foreground unless told."""

    foreground = True

    def _measure(self) -> bool:
        self._rows, self._cols = 24, 80
        return True

    def _in_foreground(self) -> bool:
        return self.foreground


def test_line_reserves_draws_and_restores_the_bottom_row() -> None:
    """Scrolling region set to rows 1..N-1, text on row N, region reset on close."""
    terminal = FakeTerminal()
    line = Terminal24x80(terminal)
    line.update("taskmeter  0:01")
    written = terminal.getvalue()
    assert written.startswith("\033D\033M")  # room made without moving the cursor's column
    assert "\033[1;23r" in written  # the region excludes the last row
    assert "\033[24;1H" in written and "taskmeter  0:01" in written
    line.close()
    assert terminal.getvalue().endswith("\033[24;1H\033[K\033[r\0338")
    assert not line.shown


def test_not_a_terminal_means_no_line() -> None:
    """A pipe or file gets no status line."""
    assert not StatusLine.wanted(io.StringIO())


def test_no_line_from_the_background_and_the_row_given_back_there() -> None:
    """In the background (a ``&`` job, or ``bg``) nothing is drawn; a row reserved in the
    foreground is given back once taskmeter finds itself in the background, and taken
    again back in the foreground."""
    terminal = FakeTerminal()
    line = Terminal24x80(terminal)
    line.foreground = False
    line.update("taskmeter  0:01")
    assert terminal.getvalue() == "" and not line.shown
    line.foreground = True
    line.update("taskmeter  0:02")
    assert line.shown and "\033[1;23r" in terminal.getvalue()
    line.foreground = False
    line.update("taskmeter  0:03")
    assert not line.shown
    assert terminal.getvalue().endswith("\033[24;1H\033[K\033[r\0338")
    assert "0:03" not in terminal.getvalue()
    line.foreground = True
    line.update("taskmeter  0:04")
    assert line.shown and terminal.getvalue().count("\033[1;23r") == 2
