"""``taskmeter report``: a self-contained HTML report of a task file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._common import EXIT_BAD_FILE, EXIT_OK, EXIT_OUTPUT_FAILED, error, say
from ._select import load_or_explain

DESCRIPTION = """\
Write FILE's task tree as one HTML page: a timeline of the tasks and bars of
their CPU time, peak memory, GPU memory and energy.  Hover over a task to see
its figures, click to keep them.  The page has everything inline (no network
needed), and stays fast with thousands of tasks.
"""

EPILOG = """\
examples:
  taskmeter report runs/train.json                 # writes runs/train.html
  taskmeter report runs/train.json -o report.html --title "nightly training"

exit status:
  0  report written
  2  wrong options
  3  FILE is missing, unreadable or not a task file
  4  the report could not be written
"""


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
        type=Path,
        help="where to write the report (default: FILE with the suffix .html)",
    )
    parser.add_argument("--title", help="the page title (default: the root task's label)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report; returns the exit status (see the epilog)."""
    output: Path | None = args.output
    if output is None:
        if args.file == "-":
            error("reading standard input: give the report's path with -o")
            return EXIT_OUTPUT_FAILED
        output = Path(args.file).with_suffix(".html")
    root = load_or_explain(args.file)
    if root is None:
        return EXIT_BAD_FILE
    from ..report import render_html
    from ..taskfile import write_atomic

    began = time.perf_counter()
    page = render_html(root, title=args.title, source=None if args.file == "-" else args.file)
    try:
        write_atomic(output, page, durable=False)
    except OSError as exc:
        error(f"cannot write the report {output}: {exc}")
        return EXIT_OUTPUT_FAILED
    count = sum(1 for _ in root.walk())
    say(
        f"taskmeter: wrote {output} ({count} task{'s' if count != 1 else ''}, "
        f"{len(page.encode()) / 1024:.0f} KiB, {time.perf_counter() - began:.2f} s)"
    )
    return EXIT_OK
