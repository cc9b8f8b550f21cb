"""``taskmeter report``: a self-contained HTML report of a task file."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .._files import directory_ending, names_a_directory
from .._text import valid_text
from ._common import (
    EXIT_BAD_FILE,
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    EXIT_USAGE,
    Output,
    error,
    put_stdout,
    same_file,
    say,
    write_problem,
)
from ._select import (
    Interruptions,
    add_stale_after,
    liveness_of,
    load_or_explain,
    stale_after_problem,
)

DESCRIPTION = """\
Write FILE's task tree as one HTML page: a timeline of the tasks and bars of
their CPU time, peak memory, GPU memory and energy.  Hover over a task to see
its figures, click to keep them.  The page has everything inline (no network
needed), and stays fast with thousands of tasks.

Statuses are those of 'taskmeter show': a task whose status is 'running' but
whose process is gone is marked 'interrupted', one whose process is stopped
'stopped' (see 'taskmeter show --help').
Siblings are in its order too: by start time.
"""

EPILOG = """\
examples:
  taskmeter report runs/train.json                 # writes runs/train.html
  taskmeter report runs/train.json -o report.html --title "nightly training"
  taskmeter report - -o - < runs/train.json > report.html

exit status:
  0  report written (with -o -, also when its reader stops early, as 'head' does)
  2  wrong options: FILE '-' without -o, or a report path that is FILE itself
  3  FILE is missing, empty, unreadable or not a task file
  4  the report could not be written
  Ctrl-C: taskmeter ends quietly, by SIGINT (its shell reports 130)
"""


STDOUT = "-"
"""``-o -``: the report goes to standard output."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` verb."""
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a task file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="a task file ('-' reads standard input)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="HTML",
        help="where to write the report, '-' for standard output (default: FILE with the "
        "suffix .html; never FILE itself)",
    )
    parser.add_argument("--title", help="the page title (default: the root task's label)")
    add_stale_after(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report; returns the exit status (see the epilog)."""
    problem = stale_after_problem(args.stale_after)
    if problem:
        error(problem)
        return EXIT_USAGE
    output = _output_path(args.file, args.output)
    if output is None:
        return EXIT_USAGE
    if output != STDOUT and os.path.isdir(output):
        error(f"cannot write the report {output}: it is a directory")
        return EXIT_OUTPUT_FAILED
    if args.output not in (None, STDOUT) and names_a_directory(args.output):
        # Path("out/") is out: the report would become a file named out.
        error(
            f"cannot write the report {args.output}: it names a directory "
            f"(it ends with {directory_ending(args.output)!r}); name a file in it"
        )
        return EXIT_OUTPUT_FAILED
    root = load_or_explain(args.file)
    if root is None:
        return EXIT_BAD_FILE
    from ..report import render_html
    from ..taskfile import write_atomic

    began = time.perf_counter()
    interrupted = Interruptions(liveness_of(args.file, args.stale_after))
    # Names and a title given as bytes that are not UTF-8 are shown as \xNN, as in messages.
    source = None if args.file == "-" else valid_text(args.file)
    title = None if args.title is None else valid_text(args.title)
    page = render_html(
        root, title=title, source=source, interrupted=interrupted, stopped=interrupted.stopped
    )
    if output == STDOUT:
        written = put_stdout(page)
        if written is Output.FAILED:
            return EXIT_OUTPUT_FAILED
        if written is Output.READER_GONE:  # `| head`: it had what it wanted, as for `show`
            return EXIT_OK
        where = "the report to standard output"
    else:
        try:
            write_atomic(output, page, durable=False)
        except OSError as exc:
            error(f"cannot write the report {output}: {write_problem(exc)}")
            return EXIT_OUTPUT_FAILED
        where = str(output)
    interrupted.report(task for _, task in root.walk())
    count = sum(1 for _ in root.walk())
    say(
        f"taskmeter: wrote {where} ({count} task{'s' if count != 1 else ''}, "
        f"{len(page.encode()) / 1024:.0f} KiB, {time.perf_counter() - began:.2f} s)"
    )
    return EXIT_OK


def _output_path(source: str, output: str | None) -> Path | str | None:
    """Where the report of ``source`` goes (a path or :data:`STDOUT`), or ``None`` after
    printing why it cannot go anywhere: it would replace ``source`` itself."""
    if output == STDOUT:
        return STDOUT
    if output is not None:
        if source != "-" and same_file(source, output):
            error(
                f"-o {output} is the task file itself: the report would replace it; "
                "give another path"
            )
            return None
        return Path(output)
    if source == "-":
        error(
            "reading standard input: give the report's path with -o "
            "(-o - writes it to standard output)"
        )
        return None
    default = Path(source).with_suffix(".html")
    if same_file(source, default):
        error(
            f"the report's default path {default} is the task file itself; "
            "give another path with -o"
        )
        return None
    return default
