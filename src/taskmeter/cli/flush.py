"""``taskmeter flush``: deliver what waits in an export spool, or list it."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._common import (
    EXIT_BAD_FILE,
    EXIT_NO_MATCH,
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    EXIT_USAGE,
    endpoint_problem,
    error,
    say,
    write_stdout,
)

if TYPE_CHECKING:
    from ..export import Spool
    from ..export.senders import Sender

DESCRIPTION = """\
Deliver the OTLP batches waiting in an export spool (TASKMETER_SPOOL_DIR, or
DIR) to the collector the standard OTEL_EXPORTER_OTLP_* variables name (or
--otlp-endpoint), oldest first, and remove each one the collector takes.
Batches a process is delivering at the same moment are left to it.
"""

EPILOG = """\
examples:
  taskmeter flush                                   # the spool TASKMETER_SPOOL_DIR names
  taskmeter flush /var/spool/taskmeter --otlp-endpoint http://collector:4318
  taskmeter flush --list

exit status:
  0  nothing is left in the spool (--list: the spool is empty)
  1  batches are left (the endpoint did not answer, or --timeout passed;
     --list: batches wait)
  2  wrong options (a malformed --otlp-endpoint, or OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT),
     or no spool named
  3  the spool directory does not exist or cannot be read
  4  a line could not be written on standard output (a full disk, say)
  Ctrl-C: taskmeter ends quietly, by SIGINT (its shell reports 130)
"""

_ITEM_NAMES = {"traces": "span(s)", "metrics": "metric point(s)", "logs": "log record(s)"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``flush`` verb."""
    parser = subparsers.add_parser(
        "flush",
        help="deliver the OTLP batches waiting in an export spool",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spool", nargs="?", metavar="DIR", help="the spool directory (default: TASKMETER_SPOOL_DIR)"
    )
    parser.add_argument("--otlp-endpoint", metavar="URL", help="e.g. http://127.0.0.1:4318")
    parser.add_argument(
        "--otlp-protocol",
        choices=("http/protobuf", "grpc"),
        help="default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="stop after this long (default 60)",
    )
    parser.add_argument(
        "--list", action="store_true", help="only list what waits (nothing is sent)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Deliver (or list) the spool; returns the exit status (see the epilog)."""
    from .. import settings
    from ..export import Spool

    directory = args.spool or settings.spool_dir()
    if not directory:
        error("no spool: give DIR or set TASKMETER_SPOOL_DIR")
        return EXIT_USAGE
    if not args.timeout > 0:
        error(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
        return EXIT_USAGE
    if args.otlp_endpoint is not None:
        problem = endpoint_problem(args.otlp_endpoint)
        if problem is not None:
            error(f"--otlp-endpoint: {problem}")
            return EXIT_USAGE
    if not os.path.exists(directory):
        # A typing mistake in DIR or TASKMETER_SPOOL_DIR must not read as "nothing left".
        error(
            f"no spool at {directory}: the directory does not exist "
            "(a spool is made when a batch is first kept in it)"
        )
        return EXIT_BAD_FILE
    if not os.path.isdir(directory):
        error(f"{directory} is not a directory")
        return EXIT_BAD_FILE
    if not os.access(directory, os.R_OK | os.X_OK):
        error(f"cannot read the spool {directory}: permission denied")
        return EXIT_BAD_FILE
    spool = Spool(directory)
    if args.list:
        return _list(spool)
    return _flush(spool, args)


def _list(spool: Spool) -> int:
    from ..export.spool import SpoolCorruptError, decode_batch
    from ..formats import friendly_bytes

    entries = spool.entries()
    if not entries:
        return EXIT_OK if _print(f"{spool.directory}: empty") else EXIT_OUTPUT_FAILED
    printed = True
    for signal in ("traces", "metrics", "logs"):
        mine = [e for e in entries if e.signal == signal]
        if not mine:
            continue
        items = 0
        damaged = 0
        for entry in mine:
            try:
                with open(entry.path, "rb") as handle:
                    items += decode_batch(handle.read()).items
            except (OSError, SpoolCorruptError):
                damaged += 1
        size = sum(e.size for e in mine)
        line = f"{signal}: {len(mine)} batch(es), {items} {_ITEM_NAMES[signal]}"
        line += f", {friendly_bytes(size)}"
        try:
            age_s = time.time() - int(mine[0].path.name.split("-", 1)[0]) / 1e9
            line += f", oldest {_age(age_s)} old"
        except ValueError:
            pass
        if damaged:
            line += f", {damaged} damaged"
        printed = _print(line) and printed
    return EXIT_NO_MATCH if printed else EXIT_OUTPUT_FAILED


def _flush(spool: Spool, args: argparse.Namespace) -> int:
    from ..export import Delivery, sender_for
    from ..export.config import endpoint_variable_problem

    deadline = time.monotonic() + args.timeout
    printed = True
    left = 0
    hint: str | None = None
    for signal in ("traces", "metrics", "logs"):
        if not spool.entries(signal):
            continue
        if args.otlp_endpoint is None and (
            problem := endpoint_variable_problem(signal, protocol=args.otlp_protocol)
        ):
            # As for a malformed --otlp-endpoint: not a delivery to localhost instead.
            error(problem)
            return EXIT_USAGE
        try:
            sender = sender_for(signal, endpoint=args.otlp_endpoint, protocol=args.otlp_protocol)
        except ValueError as exc:
            error(str(exc))
            return EXIT_USAGE
        delivery = Delivery(signal, sender, spool, replay=False)
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            delivery.flush(remaining)
        finally:
            sender.close()
        stats = delivery.stats
        waiting = spool.pending(signal)
        left += waiting
        line = (
            f"{signal}: delivered {stats.replayed_batches} batch(es) "
            f"({stats.replayed_items} {_ITEM_NAMES[signal]}) to {sender.where}"
        )
        if stats.rejected_items:
            line += f"; {stats.rejected_items} refused by the endpoint (dropped)"
        line += f"; {waiting} batch(es) left"
        printed = _print(line) and printed
        if waiting and not stats.replayed_batches and hint is None:
            hint = protocol_hint(sender)
    if hint is not None:
        say(hint)
    if spool.stats.corrupt_files:
        say(f"taskmeter: removed {spool.stats.corrupt_files} damaged spool file(s)")
    if left == 0 and not any(spool.entries(s) for s in ("traces", "metrics", "logs")):
        if spool.stats.batches_removed == 0 and spool.stats.corrupt_files == 0:
            printed = _print(f"{spool.directory}: empty") and printed
        return EXIT_OK if printed else EXIT_OUTPUT_FAILED
    return EXIT_NO_MATCH if printed else EXIT_OUTPUT_FAILED


def protocol_hint(sender: Sender) -> str | None:
    """A hint for a sender that speaks one protocol to the other's well-known port.

    Applications under ``opentelemetry-instrument`` speak gRPC unless told
    otherwise, while ``flush`` (like the OTLP specification) defaults to
    http/protobuf: the same ``OTEL_EXPORTER_OTLP_ENDPOINT`` then names a port
    that ``flush`` cannot talk to.
    """
    from ..export.config import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT
    from ..export.senders import GrpcSender

    well_known_ports = {
        "grpc": urlsplit(DEFAULT_GRPC_ENDPOINT).port,
        "http/protobuf": urlsplit(DEFAULT_HTTP_ENDPOINT).port,
    }
    protocol = "grpc" if isinstance(sender, GrpcSender) else "http/protobuf"
    try:
        port = urlsplit(sender.where).port
    except ValueError:
        return None
    for other, other_port in well_known_ports.items():
        if other != protocol and port == other_port:
            return (
                f"taskmeter: port {port} is OTLP's {other} port, and this flush spoke "
                f"{protocol}: if the collector speaks {other} there, pass --otlp-protocol "
                f"{other} (or set OTEL_EXPORTER_OTLP_PROTOCOL={other}; applications under "
                "opentelemetry-instrument speak grpc unless it says otherwise)"
            )
    return None


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _print(text: str) -> bool:
    """Print a line on standard output; ``False`` after saying why it could not be.

    A line that could not be written makes the exit status 4: what the spool
    holds must not read as success (0) when nobody could read it.
    """
    return write_stdout(text + "\n")
