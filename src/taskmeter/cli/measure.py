"""``taskmeter measure``: lsst.verify-style Measurements from a task metadata file.

::

    taskmeter measure ccdProcessor_metadata.json \\
        --timing apPipe:ccdProcessor.runDataRef pipe_tasks.ProcessCcdTime \\
        --memory isr.run ip_isr.IsrMemory --specs metrics.toml

writes a JSON array of Measurements.  A metric whose target did not run is
reported on standard error and skipped (not an error).  ``-`` reads the metadata
from standard input: JSON, or YAML when it is not JSON (as a file without a
``.json`` or ``.yaml`` suffix is read).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..measure import Metadata

EXIT_OK = 0
EXIT_USAGE = 2
"""Bad command line (no metric specs, unknown options)."""
EXIT_BAD_METADATA = 3
"""The metadata file cannot be read as task metadata."""
EXIT_BAD_SPECS = 4
"""A metric spec (option or spec file) is malformed."""
EXIT_NOT_COMPUTED = 5
"""At least one metric could not be computed from the keys found (the others are written)."""

STDIN = "-"
"""The metadata argument that reads standard input (``./-`` names a file called ``-``)."""

STDOUT = "-"
"""The ``-o`` argument that writes to standard output, as without ``-o`` (``./-`` names a
file called ``-``)."""

_KIND_OPTIONS = (("timing", "timing"), ("cpu-timing", "cpu_timing"), ("memory", "memory"))


def register(subparsers: Any) -> None:
    """Add the ``measure`` verb."""
    parser = subparsers.add_parser(
        "measure",
        help="derive lsst.verify-style Measurements from task metadata",
        description=(
            "Measure timeMethod keys in a task metadata file (JSON or YAML: an LSST "
            "TaskMetadata, or a flat or nested mapping) the way lsst.verify's Timing-, "
            "CpuTiming- and MemoryMetricTask do, and write the Measurements as JSON. "
            f"'{STDIN}' reads the metadata from standard input: JSON, or YAML when it is "
            "not JSON. "
            f"Exit status: {EXIT_OK} measured (metrics with no work found are skipped), "
            f"{EXIT_USAGE} usage (or the output could not be written, or is the metadata "
            "file itself), "
            f"{EXIT_BAD_METADATA} unreadable metadata, "
            f"{EXIT_BAD_SPECS} bad metric spec, {EXIT_NOT_COMPUTED} a metric could not be "
            "computed. Ctrl-C: taskmeter ends quietly, by SIGINT (its shell reports 130)."
        ),
    )
    parser.add_argument(
        "metadata",
        help=f"task metadata file (.json, .yaml), or '{STDIN}' for standard input",
    )
    for option, kind in _KIND_OPTIONS:
        parser.add_argument(
            f"--{option}",
            nargs=2,
            action="append",
            default=[],
            dest=kind,
            metavar=("TARGET", "PACKAGE.METRIC"),
            help=f"a {kind.replace('_', ' ')} metric of the method TARGET (e.g. isr.run)",
        )
    parser.add_argument(
        "--specs",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="metric spec file (.toml, .yaml, .json); may be repeated",
    )
    parser.add_argument(
        "--legacy-maxrss-unit",
        type=int,
        default=None,
        metavar="BYTES",
        help="bytes per ru_maxrss unit for metadata without __version__, for every memory "
        "metric, --specs files' included (default: this platform's)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help=(
            f"write the JSON here, replacing the file atomically ('{STDOUT}' or by default: "
            "stdout; never the metadata file itself)"
        ),
    )
    parser.set_defaults(handler=run)


def _option_specs(args: argparse.Namespace) -> list[Any]:
    from ..measure import SpecError, spec_from_dict

    specs = []
    for _, kind in _KIND_OPTIONS:
        for target, name in getattr(args, kind):
            package, dot, metric = name.partition(".")
            if not dot:
                raise SpecError(f"metric {name!r} must be PACKAGE.METRIC (e.g. ip_isr.IsrTime)")
            entry: dict[str, Any] = {
                "kind": kind,
                "target": target,
                "package": package,
                "metric": metric,
            }
            if kind == "memory" and args.legacy_maxrss_unit is not None:
                entry["legacy_maxrss_unit"] = args.legacy_maxrss_unit
            try:
                specs.append(spec_from_dict(entry))
            except SpecError as exc:
                raise SpecError(f"--{kind.replace('_', '-')} {target} {name}: {exc}") from exc
    return specs


def _with_legacy_unit(spec: Any, unit: int | None) -> Any:
    """``spec``, or for a memory spec with ``unit`` given, the same spec with that
    ``ru_maxrss`` unit: the option describes the metadata, whichever file the spec is from."""
    from ..measure import MemoryMetric

    if unit is None or not isinstance(spec, MemoryMetric):
        return spec
    return MemoryMetric(
        target=spec.target, package=spec.package, metric=spec.metric, legacy_maxrss_unit=unit
    )


def _file_problem(exc: Exception, kind: str, path: Path) -> str:
    """The message of a metadata or spec file error: a missing file said plainly."""
    from ._common import is_empty

    cause = exc.__cause__
    if isinstance(cause, FileNotFoundError):
        return f"no such {kind} file: {path}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot read the {kind} file {path}: {cause.strerror}"
    if not isinstance(cause, OSError) and is_empty(path):
        return f"the {kind} file {path} is empty"
    return str(exc)


def run(args: argparse.Namespace) -> int:
    """Measure the file; returns the exit status."""
    from ..measure import SpecError, load_specs, measure_metadata
    from ._common import error, say, write_stdout

    unit = args.legacy_maxrss_unit
    if unit is not None and unit <= 0:
        error(f"--legacy-maxrss-unit must be a positive number of bytes, not {unit}")
        return EXIT_USAGE
    # As written: Path("out/") would drop the separator that makes it a directory.
    output = None if args.output in (None, STDOUT) else str(args.output)
    if output is not None and _is_the_metadata_file(Path(output), args.metadata):
        itself = "itself (standard input)" if args.metadata == STDIN else "itself"
        error(
            f"-o {args.output} is the metadata file {itself}: the measurements would "
            "replace it; give another path"
        )
        return EXIT_USAGE
    try:
        specs = _option_specs(args)
        for path in args.specs:
            try:
                specs.extend(_with_legacy_unit(spec, unit) for spec in load_specs(path))
            except SpecError as exc:
                raise SpecError(_file_problem(exc, "spec", path)) from exc
    except SpecError as exc:
        error(f"bad metric spec: {exc}")
        return EXIT_BAD_SPECS
    if not specs:
        error("no metric specs; give --timing, --cpu-timing, --memory or --specs")
        return EXIT_USAGE
    metadata = _read_metadata(args.metadata)
    if metadata is None:
        return EXIT_BAD_METADATA

    report = measure_metadata(metadata, specs)
    for spec, reason in report.no_work:
        say(f"taskmeter: no work found for {spec.metric_name}: {reason}")
    for spec, reason in report.errors:
        error(f"cannot compute {spec.metric_name}: {reason}")
    text = json.dumps([m.to_dict() for m in report.measurements], indent=2) + "\n"
    if output is None:
        if not write_stdout(text):
            return EXIT_USAGE  # as when -o cannot be written
    elif not _write_output(output, text):
        return EXIT_USAGE
    return EXIT_NOT_COMPUTED if report.errors else EXIT_OK


def _is_the_metadata_file(output: Path, metadata: str) -> bool:
    """Whether ``output`` is the metadata's file: the one named, or for ``-`` the
    file standard input is redirected from.  Only a regular file would be replaced:
    a terminal, a pipe or a socket (``-o /dev/stdout`` on the terminal standard input
    reads) is written through."""
    from ._common import same_file

    try:
        if not stat.S_ISREG(os.stat(output).st_mode):
            return False
    except (OSError, ValueError):  # missing: not the metadata's
        return False
    if metadata != STDIN:
        return same_file(metadata, output)
    try:
        descriptor = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or not a file (in tests)
        return False
    return same_file(descriptor, output)


def _read_metadata(source: str) -> Metadata | None:
    """The metadata of the file ``source`` (``-``: standard input), or ``None`` after
    saying why it cannot be read."""
    from ..measure import MetadataError, load_metadata
    from ._common import error

    if source == STDIN:
        return _read_stdin_metadata()
    path = Path(source)
    try:
        return load_metadata(path)
    except MetadataError as exc:
        problem = _file_problem(exc, "metadata", path)
        error(problem if problem != str(exc) else f"bad metadata: {exc}")
        return None


def _read_stdin_metadata() -> Metadata | None:
    """The metadata on standard input (JSON, else YAML), or ``None`` after saying why not."""
    from ..measure import MetadataError
    from ..measure.metadata import MAX_METADATA_FILE_BYTES, parse_metadata
    from ._common import error

    if sys.stdin is None:
        error("cannot read the metadata: standard input is closed")
        return None
    try:
        data = sys.stdin.buffer.read(MAX_METADATA_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        error(f"cannot read the metadata from standard input: {reason}")
        return None
    if not data.strip():
        error("standard input is empty: no task metadata")
        return None
    try:
        return parse_metadata(data, "standard input")
    except MetadataError as exc:
        error(f"bad metadata: {exc}")
        return None


def _write_output(path: str, text: str) -> bool:
    """Write ``text`` to the ``-o`` path, replacing a file atomically (an interrupt or a
    full disk leaves the old file, or none); ``False`` after saying why it could not be.

    A file descriptor's path (``/dev/stdout``, ``/dev/fd/N``) is written through the
    descriptor, after what it already holds, and a FIFO is written through: see
    :func:`taskmeter.taskfile.write_atomic`.
    """
    from ..taskfile import write_atomic
    from ._common import error, write_problem

    try:
        write_atomic(path, text, durable=False)
    except OSError as exc:
        error(f"cannot write {path}: {write_problem(exc)}")
        return False
    return True
