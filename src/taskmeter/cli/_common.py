"""Exit statuses and messages shared by the verbs."""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import sys
from typing import TextIO

from .._text import valid_text

EXIT_OK = 0
EXIT_NO_MATCH = 1
"""``show``: no task matched the filters (like ``grep``)."""
EXIT_USAGE = 2
"""The options were wrong (argparse's status)."""
EXIT_BAD_FILE = 3
"""``show``/``report``: the task file is missing, unreadable or not a task file."""
EXIT_OUTPUT_FAILED = 4
"""``show``/``report``/``flush``: the output could not be written."""
EXIT_TASKMETER_FAILED = 125
"""``run``: taskmeter itself failed before starting the command (as ``env`` and ``timeout``)."""
EXIT_NOT_EXECUTABLE = 126
"""``run``: the command exists but could not be executed (as shells)."""
EXIT_NOT_FOUND = 127
"""``run``: the command was not found (as shells)."""


def error(message: str) -> None:
    """Print ``taskmeter: error: message`` on standard error."""
    say(f"taskmeter: error: {message}")


def say(message: str) -> None:
    """Print a line (or lines) on standard error, ignoring a closed stream.

    Control and format characters inside each line are shown escaped, as labels are
    (:func:`taskmeter.render.terminal_text`): a message may name a file, and a file's
    name, like a label, can hold an escape sequence.  The bytes of a name that are
    not UTF-8 are shown as ``\\xNN`` (:func:`valid_text`).  Standard error closed when
    Python started (``2>&-``) leaves ``sys.stderr`` ``None``: nothing is printed
    then (``print`` would write to standard output, into the command's output).
    """
    if sys.stderr is None:
        return
    from ..render import terminal_text

    text = "\n".join(terminal_text(line) for line in valid_text(message).split("\n"))
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def write_problem(exc: OSError) -> str:
    """Why an output file could not be written, for a message: the system's reason,
    and for ``ENXIO`` (a FIFO opened without waiting) what that means here."""
    if exc.errno == errno.ENXIO:  # "No such device or address", of a FIFO
        return "it is a FIFO that no process reads"
    return exc.strerror or str(exc)


class Output(enum.Enum):
    """What became of text written on standard output (see :func:`put_stdout`)."""

    WRITTEN = "written"
    READER_GONE = "reader gone"
    """The reader went away (``taskmeter show ... | head``): it had what it wanted."""
    FAILED = "failed"
    """The text could not be written (a full disk, a closed descriptor); said on
    standard error."""


def write_stdout(text: str) -> bool:
    """Write ``text`` on standard output; ``False`` after saying why it could not be written.

    A reader that went away (``taskmeter show ... | head``) had what it
    wanted: the rest is dropped quietly (``True``).  See :func:`put_stdout`.
    """
    return put_stdout(text) is not Output.FAILED


def put_stdout(text: str) -> Output:
    """Write ``text`` on standard output; say on standard error why, when it could not be.

    A reader that went away is :attr:`Output.READER_GONE`, said nothing of;
    standard output then points at the null device.  Characters the output's
    encoding lacks are written escaped (``\\u6f22``).
    """
    stream = sys.stdout
    if stream is None:
        error("cannot write to standard output: it is closed")
        return Output.FAILED
    try:
        _write_all(stream, text)
    except BrokenPipeError:
        _drop_stdout()
        return Output.READER_GONE
    except (OSError, ValueError) as exc:
        _drop_stdout()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        error(f"cannot write to standard output: {reason}")
        return Output.FAILED
    return Output.WRITTEN


def _write_all(stream: TextIO, text: str) -> None:
    """Write and flush ``text`` on ``stream`` to its last byte, or raise.

    The bytes go through the stream's binary buffer, whose count is checked:
    a write the reader's going away cut short returns what it wrote, and
    ``TextIOWrapper.write`` reports all of it written (the rest was lost
    without an error).
    """
    binary = getattr(stream, "buffer", None)
    if binary is None:  # a text-only stream (a test's StringIO)
        stream.write(text)
        stream.flush()
        return
    encoding = stream.encoding or "utf-8"
    try:
        data = text.encode(encoding, stream.errors or "strict")
    except UnicodeEncodeError:
        data = text.encode(encoding, "backslashreplace")
    stream.flush()  # what was written through the text layer goes first
    view = memoryview(data)
    while view:
        count = binary.write(view)
        if not count:  # pragma: no cover - a blocking stream writes something or raises
            raise OSError(errno.EIO, "nothing could be written")
        view = view[count:]
    binary.flush()


def _drop_stdout() -> None:
    """Point standard output at the null device, so the flush at exit fails no more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


EMPTY_PROBE_BYTES = 4096
"""The most bytes :func:`is_empty` reads to see that a file holds only white space."""


def is_empty(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file holding nothing, or nothing but white space.

    Asked once a file failed to parse, to say "empty" rather than quote the
    parser's "EOF while parsing a value".
    """
    try:
        with open(path, "rb") as handle:
            if not os.path.isfile(path):
                return False
            data = handle.read(EMPTY_PROBE_BYTES + 1)
    except (OSError, ValueError):
        return False
    return len(data) <= EMPTY_PROBE_BYTES and not data.strip()


def same_file(a: str | os.PathLike[str] | int, b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one existing file (through symbolic and hard links too).

    ``a`` may be an open file descriptor (standard input's ``0``).  Asked before
    writing an output over what may be the command's own input.
    """
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except (OSError, ValueError):
        return False


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` (``--otlp-endpoint``) cannot be an OTLP endpoint, or ``None``.

    The exporters take an http(s) URL, or ``host:port`` (read as
    ``http://host:port``); the port, when given, must be 1 to 65535.
    """
    from ..export.senders import url_problem

    return url_problem(endpoint if "://" in endpoint else f"http://{endpoint}")
