"""How a run's figures name its end: finished, failed or cancelled."""

from __future__ import annotations

import signal

import pytest

from taskmeter.cli._runfigures import RunFigures

INT, TERM, KILL = signal.SIGINT, signal.SIGTERM, signal.SIGKILL


@pytest.mark.parametrize(
    ("exit_code", "killed_by", "passed_on", "from_terminal", "status", "end"),
    [
        (0, None, None, None, "finished", "exited with status 0"),
        (3, None, None, None, "failed", "exited with status 3"),
        (137, KILL, None, None, "failed", "was killed by SIGKILL (exit status 137)"),
        (143, TERM, TERM, None, "cancelled", "was killed by SIGTERM (exit status 143)"),
        # Caught the signal taskmeter passed on, and exited: stopped on request.
        (3, None, TERM, None, "cancelled", "exited with status 3 after SIGTERM"),
        (0, None, TERM, None, "cancelled", "exited with status 0 after SIGTERM"),
        (
            137,
            KILL,
            TERM,
            None,
            "cancelled",
            "was killed by SIGKILL (exit status 137) after SIGTERM",
        ),
        # Ctrl-C from the terminal: counts when the command then fails ...
        (1, None, None, INT, "cancelled", "exited with status 1 after SIGINT"),
        (130, INT, None, INT, "cancelled", "was killed by SIGINT (exit status 130)"),
        # ... not for an interactive program that took it and exited 0 later.
        (0, None, None, INT, "finished", "exited with status 0"),
    ],
)
def test_status_and_end(
    exit_code: int,
    killed_by: int | None,
    passed_on: int | None,
    from_terminal: int | None,
    status: str,
    end: str,
) -> None:
    figures = RunFigures(["cmd"], 1)
    figures.exit_code = exit_code
    figures.signal = killed_by
    figures.stop_signal = passed_on
    figures.stop_from_terminal = from_terminal
    assert figures.status == status
    assert figures.describe_end() == end


@pytest.mark.parametrize("sig", [INT, TERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"])
def test_stop_of_what_the_command_left_cancels_the_run(sig: int) -> None:
    """With --wait-all, a stop signal that went to the processes the command left, once
    it had exited 0, cancels the run, and the end says so."""
    figures = RunFigures(["cmd"], 1)
    figures.left_stop_signal = sig
    assert figures.status == "cancelled"
    name = signal.Signals(sig).name
    assert figures.describe_end() == (
        f"exited with status 0; the processes it left running were sent {name}"
    )


def test_stop_passed_on_to_the_command_and_what_it_left_is_named_once() -> None:
    figures = RunFigures(["cmd"], 1)
    figures.stop_signal = figures.left_stop_signal = TERM
    assert figures.status == "cancelled"
    assert figures.describe_end() == "exited with status 0 after SIGTERM"
