"""The ``taskmeter`` command line.

Each verb lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (a
function taking the parsed arguments and returning an exit status).  The
entry point imports only the verb that runs, so ``taskmeter run`` does not
pay for what ``taskmeter report`` needs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

VERBS: dict[str, str] = {
    "run": "run a command as a task and report what it cost",
    "show": "show a task file as a table (or JSON)",
    "report": "write a self-contained HTML report of a task file",
    "measure": "derive lsst.verify-style Measurements from task metadata",
    "flush": "deliver the OTLP batches waiting in an export spool",
}
"""Verb name -> one-line help; the module ``taskmeter.cli.<verb>`` implements it."""

EXIT_USAGE = 2

ERROR_PREFIX = "taskmeter: error: "
"""How every error line of every verb begins (options included)."""


def _print_and_exit(parser: argparse.ArgumentParser, text: str) -> NoReturn:
    """Write ``text`` (a help or the version) on standard output and exit.

    Status 0 once written, or once its reader went away (``taskmeter --help | head``);
    status 4 after saying why it could not be written (a full disk, a closed
    descriptor), as for every other output of taskmeter.
    """
    from ._common import EXIT_OK, EXIT_OUTPUT_FAILED, write_stdout

    parser.exit(EXIT_OK if write_stdout(text) else EXIT_OUTPUT_FAILED)


class _HelpAction(argparse.Action):
    """``-h``/``--help``: the parser's help on standard output, through :func:`_print_and_exit`."""

    def __init__(self, option_strings: Sequence[str], **kwargs: Any) -> None:
        kwargs.update(nargs=0, dest=argparse.SUPPRESS, default=argparse.SUPPRESS)
        super().__init__(option_strings, **kwargs)

    def text(self, parser: argparse.ArgumentParser) -> str:
        """What the option writes."""
        return parser.format_help()

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        _print_and_exit(parser, self.text(parser))


class _VersionAction(_HelpAction):
    """``--version``: ``version`` on standard output, through :func:`_print_and_exit`."""

    def __init__(self, option_strings: Sequence[str], version: str, **kwargs: Any) -> None:
        super().__init__(option_strings, **kwargs)
        self.version = version

    def text(self, parser: argparse.ArgumentParser) -> str:
        return f"{self.version}\n"


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors written as the verbs write theirs
    (``taskmeter: error: ...``, after the usage), its verbs' parsers too; its help
    and version written as every other output (status 4 when they cannot be)."""

    verb_parsers: Mapping[str, argparse.ArgumentParser]
    """The parser of each verb (set by :func:`build_parser` on the top-level parser)."""

    def __init__(self, **kwargs: Any) -> None:
        # -h/--help is added here, once this parser's own actions are registered.
        add_help = bool(kwargs.pop("add_help", True))
        super().__init__(add_help=False, **kwargs)
        self.register("action", "help", _HelpAction)
        self.register("action", "version", _VersionAction)
        self.add_help = add_help
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help message and exit")

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``taskmeter: error: message``; exit with status 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{ERROR_PREFIX}{message}\n")


def build_parser(only: str | None = None) -> Parser:
    """The parser with every available verb (or only ``only``, for speed)."""
    parser = Parser(
        prog="taskmeter",
        description="Measure what coarse units of work cost, and publish it through OpenTelemetry.",
    )
    from ..__about__ import __version__

    parser.add_argument(
        "--version",
        action="version",
        version=f"taskmeter {__version__}",
        help="show program's version number and exit",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    parser.verb_parsers = subparsers.choices
    for verb, summary in VERBS.items():
        if only is not None and verb != only:
            subparsers.add_parser(verb, help=summary)
            continue
        try:
            module = importlib.import_module(f"{__name__}.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{verb}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Interrupted (Ctrl-C, ``SIGINT``) before a verb has finished, taskmeter ends
    quietly by ``SIGINT`` itself, as ``taskmeter run`` does when its command dies
    of it: its shell reports status 130, and bash stops a loop or script there.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _end_interrupted()


def _end_interrupted() -> int:
    """End this process by ``SIGINT`` (see :func:`main`); returns 130 where that fails.

    A second Ctrl-C while it ends is ignored, so that it ends without a traceback.
    """
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ._supervise import end_by_signal

    return end_by_signal(signal.SIGINT)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(only=verb if verb in VERBS else None)
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        # An option the verb does not know: said with the verb's usage, not the
        # top level's (argparse lets the verb's parser pass them up unread).
        # ``run``'s command and its arguments never get here: they are its own.
        chosen: str | None = getattr(args, "verb", None)
        owner: argparse.ArgumentParser = parser
        if chosen is not None and chosen in args_list:
            before_verb = args_list[: args_list.index(chosen)]
            if not any(option in before_verb for option in unknown):
                owner = parser.verb_parsers[chosen]
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with _log_lines_prefixed():
        return int(handler(args))


@contextlib.contextmanager
def _log_lines_prefixed() -> Iterator[None]:
    """Print the warnings of the ``taskmeter`` logger as ``taskmeter: ...`` lines on
    standard error while a verb runs, as the verb's own lines are, where logging is not
    configured (they would come out bare, through Python's last-resort handler)."""
    logger = logging.getLogger("taskmeter")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("taskmeter: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
