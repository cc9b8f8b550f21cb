"""``taskmeter run``: run a command as a task and report what it cost.

The command is started first and everything else (the task model, the
probes, the OpenTelemetry SDK when exporting) is imported while it runs, so a
short command pays little for being measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import propagation
from .._files import (
    descriptor_link,
    directory_ending,
    link_target,
    names_a_directory,
    not_a_regular_file,
)
from .._text import valid_text
from ._common import (
    EXIT_TASKMETER_FAILED,
    EXIT_USAGE,
    endpoint_problem,
    error,
    say,
)
from ._proctree import ProcessTreeSampler, TreeSample
from ._runfigures import RunFigures
from ._status import StatusLine, status_text
from ._summary import command_text, program_name, summary_lines
from ._supervise import SpawnError, Supervisor, end_by_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..probes.base import ProbeStates
    from ..task import Task
    from ._export import ExportConfig
    from ._treegpu import TreeGpuMemory

DESCRIPTION = """\
Run COMMAND as a task: measure its wall time, the CPU time (user and system)
of the command and of every process it starts, their peak memory, and their
peak GPU memory and the energy where this machine can measure them.  A live
status line shows on the terminal while it runs, and a summary when it ends.

Programs that use taskmeter themselves (Task) report their tasks as subtasks
of the run: taskmeter passes its task to them in the environment.
"""

EPILOG = """\
examples:
  taskmeter run -- python train.py --epochs 3
  taskmeter run -o runs/train.json -- make -j4
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 taskmeter run -- ./pipeline.sh

exit status:
  the command's own status; if a signal N killed the command, taskmeter ends
  by the same signal (so its shell reports 128+N, and stops a loop at Ctrl-C)
  125  taskmeter failed before starting the command (a task file it cannot write,
       or a path that is not a regular file: a directory, FIFO, device, socket)
  126  the command was found but could not be executed
  127  the command was not found
  2    taskmeter's options, or the OTEL_EXPORTER_OTLP_* variables it reads to
       export the run, were wrong (nothing was run)
  Ctrl-C before the command starts ends taskmeter quietly, by SIGINT (nothing is run)

Signals sent to taskmeter (SIGINT, SIGTERM, SIGHUP, ...) are passed on to the
command, except those ignored when taskmeter started (a background job's
SIGINT), which stay ignored.  One sent to the whole process group (kill -TERM
-PGID, systemd's KillMode=control-group) reaches the command twice, from the
sender and from taskmeter: send it to taskmeter's pid alone (KillMode=mixed).
Use --no-status for full-screen programs (editors, top).
"""

DEFAULT_INTERVAL_S = 0.1
MAX_INTERVAL_S = 3600.0
"""The longest --interval accepted (longer, or infinite, would sample the start alone)."""
FIRST_SAMPLE_S = 0.01
STATUS_AFTER_S = 1.0
STATUS_EVERY_S = 0.5
SAMPLING_SHARE = 0.05
"""Sampling may use at most this share of one CPU: slow ``/proc`` scans are spaced out."""
STRAGGLER_GRACE_S = 0.25
"""How long processes the command leaves get to end on their own before they are
reported as left running (a multiprocessing resource tracker or forkserver ends
within milliseconds, when the command's exit closes its pipe)."""
SUMMARY_TREE_ROWS = 20
"""The most tasks of the tree the summary shows (two levels below the root)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` verb."""
    parser = subparsers.add_parser(
        "run",
        help="run a command as a task and report what it cost",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="taskmeter run [options] -- COMMAND [ARG ...]",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the task file (JSON) here")
    parser.add_argument(
        "-l",
        "--label",
        help="the task's label, not empty (default: the program's name; with --record-command, "
        "the command line, shortened)",
    )
    parser.add_argument(
        "--record-command",
        action="store_true",
        help="record the command's arguments in the task file and the span (default: only "
        "the program's name, since arguments may hold secrets; also TASKMETER_RECORD_COMMAND=1)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing (no status line, no summary)"
    )
    parser.add_argument("--no-status", action="store_true", help="no live status line")
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"how often to sample the processes' memory (default {DEFAULT_INTERVAL_S:g}, "
        f"at most {MAX_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--wait-all",
        action="store_true",
        help="also wait for processes the command leaves running in the background, and count "
        "them (once the command has exited, the signals passed on go to them; a SIGINT, "
        "SIGTERM or SIGHUP then cancels the run)",
    )
    export = parser.add_argument_group(
        "OpenTelemetry export",
        "The run's task is sent as a span when an endpoint is given here or in "
        "OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the other "
        "OTEL_EXPORTER_OTLP_* variables apply too).",
    )
    export.add_argument("--otlp-endpoint", metavar="URL", help="e.g. http://127.0.0.1:4318")
    export.add_argument(
        "--otlp-protocol",
        choices=("http/protobuf", "grpc"),
        help="default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf",
    )
    export.add_argument("--no-export", action="store_true", help="do not export, whatever is set")
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle, parser=parser)


def handle(args: argparse.Namespace) -> int:
    """Run the command; returns its exit status (see the epilog).

    A command killed by a signal ends this process by the same signal, once
    the run is recorded: see :func:`end_by_signal`.
    """
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    parser: argparse.ArgumentParser = args.parser
    if not argv:
        parser.print_usage(sys.stderr)
        error("no command given: put it after --, as in: taskmeter run -- python train.py")
        return EXIT_USAGE
    if not 0 < args.interval <= MAX_INTERVAL_S:  # NaN fails both
        error(
            f"--interval must be a positive number of seconds, at most {MAX_INTERVAL_S:g}, "
            f"not {args.interval:g}"
        )
        return EXIT_USAGE
    if args.label is not None and not args.label.strip():
        error(
            f"-l/--label {args.label!r}: a label must not be empty or only white space "
            "(leave the option out for the default label)"
        )
        return EXIT_USAGE
    if args.otlp_endpoint is not None and (problem := endpoint_problem(args.otlp_endpoint)):
        error(f"--otlp-endpoint: {problem}")
        return EXIT_USAGE
    run = _Run(args, argv)
    try:
        status = run.execute()
    except KeyboardInterrupt:
        if run.supervisor is None or not run.supervisor.pid:
            run._remove_subtask_dir()  # Ctrl-C before the command started: nothing in it
        return end_by_signal(signal.SIGINT)
    if run.figures.signal is not None:
        return end_by_signal(run.figures.signal)
    return status


class _Run:
    """One run of a command, from spawn to summary."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.record_command = bool(args.record_command) or _record_command_setting()
        # The command runs with its arguments as given; records and messages
        # get them as valid text.
        shown = [valid_text(arg) for arg in argv]
        self.label: str = (
            valid_text(args.label)
            if args.label
            else (command_text(shown, 120) if self.record_command else program_name(shown))
        )
        # As written: Path("out/") would drop the separator that makes it a directory.
        self.output_text: str | None = args.output
        self.output: Path | None = None if args.output is None else Path(args.output)
        self.quiet: bool = args.quiet
        self.interval_s: float = args.interval
        self.task_id = _new_task_id()
        self.inherited = propagation.inherited
        self.subtask_dir: str | None = None
        self.status: StatusLine | None = None
        self.sampler = ProcessTreeSampler(os.getpid())
        self.probes: ProbeStates = ()
        self.gpu_memory: TreeGpuMemory | None = None
        self.figures = RunFigures(shown, 0)
        self.perf_start = 0.0
        self.next_status = 0.0
        self.next_save = float("inf")
        self.save_every_s = 10.0
        self.preload: threading.Thread | None = None
        self.sample_delay = FIRST_SAMPLE_S
        self.supervisor: Supervisor | None = None
        self.save_failed = False

    # ---------------------------------------------------------------- phases

    def execute(self) -> int:
        export = self._export_config()
        if isinstance(export, int):
            return export
        if self.output_text is not None and (problem := _unwritable(self.output_text)):
            error(f"cannot write the task file {self.output_text}: {problem}")
            return EXIT_TASKMETER_FAILED
        parent = self._trace_parent()
        trace_id = parent.trace_id if parent else _random_id(128)
        span_id = _random_id(64)
        flags = parent.flags if parent else 1
        ids = propagation.TraceParent(trace_id, span_id, flags)
        try:
            self.subtask_dir = _make_private_dir()
        except OSError as exc:
            # Only the subtasks need it: the command runs, and is measured, without.
            say(f"taskmeter: the command's subtasks are not collected: {exc}")
        try:
            supervisor = self._start_command(ids)
        except SpawnError as exc:
            self._remove_subtask_dir()
            error(str(exc))
            return exc.exit_code
        except BaseException:
            self._remove_subtask_dir()  # no command started: nothing can be in it
            raise
        try:
            floor = _own_high_water()
            self._begin_probes()
            self.next_status = self.perf_start + STATUS_AFTER_S
            if self.output is not None:
                self.save_every_s = _save_interval()
                self.next_save = time.perf_counter()
                # The first save needs the task model: it loads beside the
                # sampling, which goes on meanwhile (a slow import on a busy
                # machine held it up for a second and more, missing peaks).
                self.preload = threading.Thread(
                    target=_load_record_modules, name="taskmeter-preload", daemon=True
                )
                self.preload.start()
            outcome = supervisor.wait(self._tick, FIRST_SAMPLE_S)
            self.figures.duration_s = time.perf_counter() - self.perf_start
            # Counted in CPU time, not in the duration (the command's wall time): the
            # span the CPU time is averaged over ends with the last process reaped.
            supervisor.wait_for_stragglers(STRAGGLER_GRACE_S)
        finally:
            supervisor.close()
            if self.status is not None:
                self.status.close()
        figures = self.figures
        figures.finish_time = outcome.end_ns / 1e9
        figures.cpu_user_s = outcome.user_s
        figures.cpu_system_s = outcome.system_s
        figures.exit_code = outcome.status_code
        figures.signal = outcome.signal
        figures.stop_signal = outcome.stop_signal
        figures.stop_from_terminal = outcome.stop_from_terminal
        figures.left_stop_signal = outcome.left_stop_signal
        figures.cpu_span_s = max(figures.duration_s, outcome.last_reaped_s - self.perf_start)
        if not self.args.wait_all:
            figures.left_running = self.sampler.descendant_pids()
        published = (
            propagation.published_process_peak(self.subtask_dir) if self.subtask_dir else None
        )
        subtasks = self._collect_subtasks()
        read = (self.sampler.peak_process_rss_bytes, _tasks_peak(subtasks), published)
        read_by_processes = max((peak for peak in read if peak is not None), default=None)
        figures.peak_process_rss_bytes, figures.peak_process_rss_bound_bytes = _process_peak(
            outcome.max_rss_bytes, floor, read_by_processes
        )
        figures.peak_tree_rss_bytes = self.sampler.peak_tree_rss_bytes
        self._end_probes()
        root = self._finish_record(export, ids, parent, subtasks)
        if not self.quiet:
            self._print_summary(root)
        return figures.exit_code

    def _start_command(self, ids: propagation.TraceParent) -> Supervisor:
        """Spawn the command, which learns its parent task from its environment."""
        env = propagation.child_environment(
            os.environ,
            parent_id=self.task_id,
            traceparent=ids,
            tracestate=self.inherited.tracestate if self.inherited else None,
            subtask_dir=self.subtask_dir,
        )
        if not (self.quiet or self.args.no_status) and StatusLine.wanted(sys.stderr):
            self.status = StatusLine(sys.stderr)
        supervisor = Supervisor(
            self.argv,
            env,
            wait_all=self.args.wait_all,
            on_resize=self.status.resize if self.status else None,
        )
        self.supervisor = supervisor
        self.figures.start_time = time.time()
        self.perf_start = time.perf_counter()
        self.figures.pid = supervisor.start()
        return supervisor

    def _export_config(self) -> ExportConfig | int | None:
        args = self.args
        wanted = args.otlp_endpoint is not None or any(
            os.environ.get(name, "").strip()
            for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        if not wanted or args.no_export:
            return None
        from ._export import export_config

        try:
            return export_config(
                os.environ, endpoint=args.otlp_endpoint, protocol=args.otlp_protocol
            )
        except ValueError as exc:
            # The same status as a malformed option: the variables are the
            # user's configuration of this run, and nothing was run.
            error(str(exc))
            return EXIT_USAGE

    def _trace_parent(self) -> propagation.TraceParent | None:
        # A nested run continues its parent's trace; a top-level one continues
        # a trace its own environment names (a CI system's, say).
        if self.inherited is not None:
            return self.inherited.traceparent
        text = os.environ.get(propagation.ENV_TRACEPARENT, "")
        return propagation.parse_traceparent(text) if text else None

    # ---------------------------------------------------------------- while it runs

    def _tick(self) -> float:
        now = time.perf_counter()
        sample = self.sampler.sample()
        cost_s = self.sampler.last_cost_s
        if self.gpu_memory is not None:
            self.gpu_memory.sample(self._tree_pids(sample))
            cost_s += self.gpu_memory.last_cost_s
        if self.status is not None and now >= self.next_status and self.supervisor is not None:
            self.next_status = now + STATUS_EVERY_S
            outcome = self.supervisor.outcome
            cpu = None if sample is None else sample.cpu_s + outcome.user_s + outcome.system_s
            self.status.update(
                status_text(
                    now - self.perf_start,
                    cpu,
                    None if sample is None else sample.rss_bytes,
                    0 if sample is None else len(sample.pids),
                )
            )
        if now >= self.next_save and not (self.preload is not None and self.preload.is_alive()):
            self.next_save = now + self.save_every_s
            self._save_running(sample)
        self.sample_delay = min(self.sample_delay * 2, self.interval_s)
        return max(self.sample_delay, cost_s / SAMPLING_SHARE)

    def _tree_pids(self, sample: TreeSample | None) -> set[int]:
        """The command's pid and those of the live processes of its tree."""
        pids = set(sample.pids) if sample is not None else set()
        if self.figures.pid:
            pids.add(self.figures.pid)
        return pids

    def _save_running(self, sample: TreeSample | None) -> None:
        # A snapshot for readers of the file while the command runs.
        from uuid import UUID

        from ._record import build_root

        figures = self.figures
        outcome = self.supervisor.outcome if self.supervisor else None
        figures.duration_s = time.perf_counter() - self.perf_start
        if outcome is not None:
            figures.cpu_user_s = outcome.user_s + (sample.user_s if sample else 0.0)
            figures.cpu_system_s = outcome.system_s + (sample.system_s if sample else 0.0)
        figures.peak_process_rss_bytes = self.sampler.peak_process_rss_bytes
        figures.peak_tree_rss_bytes = self.sampler.peak_tree_rss_bytes
        self._note_gpu_memory()
        root = build_root(
            figures,
            label=self.label,
            task_id=UUID(self.task_id),
            trace_id=None,
            span_id=None,
            parent_id=self.inherited.parent_id if self.inherited else None,
            subtasks=[],
            finished=False,
            record_command=self.record_command,
        )
        self._write_task_file(root)

    def _begin_probes(self) -> None:
        # The CPU and memory probes measure this process; the command's
        # figures come from the kernel instead.  The GPU memory probe measures
        # this process too: the command's processes are sampled through its
        # NVML instead (see _treegpu).  The others (energy) measure devices,
        # and apply to the command as they are.
        from ..figures import Figures
        from ..probes import active_probes
        from ..probes.base import begin_probes
        from ..probes.gpu_memory import GpuMemoryProbe
        from ._treegpu import tree_gpu_memory

        self.figures.probe_figures = Figures()
        probes = active_probes()
        self.gpu_memory = tree_gpu_memory(probes)
        devices = [
            p
            for p in probes
            if p.name not in ("cpu", "memory", "process") and not isinstance(p, GpuMemoryProbe)
        ]
        self.probes = begin_probes(devices, reset_peak=True)

    def _end_probes(self) -> None:
        from ..probes.base import end_probes, read_probes

        figures = self.figures.probe_figures
        if figures is None:
            return
        read_probes(self.probes, figures)
        end_probes(self.probes)
        self._note_gpu_memory()

    def _note_gpu_memory(self) -> None:
        """Put the command's peak GPU memory so far among the figures."""
        figures = self.figures.probe_figures
        if figures is not None and self.gpu_memory is not None:
            figures.peak_gpu_memory_bytes = self.gpu_memory.peak_bytes

    # ---------------------------------------------------------------- after it ends

    def _finish_record(
        self,
        export: ExportConfig | None,
        ids: propagation.TraceParent,
        parent: propagation.TraceParent | None,
        subtasks: list[Task],
    ) -> Task | None:
        if not (subtasks or self.output or export or self.inherited):
            return None  # nothing needs the record: skip importing the task model
        from uuid import UUID

        from ._record import build_root, span_attributes

        root = build_root(
            self.figures,
            label=self.label,
            task_id=UUID(self.task_id),
            trace_id=ids.trace_id,
            span_id=ids.span_id,
            parent_id=self.inherited.parent_id if self.inherited else None,
            subtasks=subtasks,
            record_command=self.record_command,
        )
        if self.output is not None:
            self._write_task_file(root, final=True)
        if export is not None:
            from ._export import export_root_span

            failed = (
                None
                if self.figures.status == "finished"
                else f"command {self.figures.describe_end()}"
            )
            problem = export_root_span(
                export,
                root,
                ids=ids,
                parent=parent,
                attributes=span_attributes(root),
                error=failed,
            )
            if problem:
                error(problem)
        if self.inherited is not None:
            propagation.deliver(root)
        return root

    def _collect_subtasks(self) -> list[Task]:
        """The tasks the command's processes delivered; the directory is removed."""
        subtasks = propagation.collect(self.subtask_dir) if self.subtask_dir else []
        self._remove_subtask_dir()
        return subtasks

    def _write_task_file(self, root: Task, *, final: bool = False) -> None:
        from ..taskfile import TaskFileError, save_task

        assert self.output is not None
        try:
            save_task(root, self.output)
        except (OSError, TaskFileError) as exc:
            # Said once while the command runs (the next saves may work: a
            # disk that was full), and again if the last save fails.
            if final or not self.save_failed:
                self.save_failed = True
                error(f"cannot write the task file {self.output}: {exc}")

    def _print_summary(self, root: Task | None) -> None:
        lines = summary_lines(
            self.figures,
            sample_interval_s=self.interval_s,
            subtasks=len(root.subtasks) if root is not None else 0,
            task_file=str(self.output) if self.output else None,
            trace_id=root.trace_id if root is not None else None,
        )
        if root is not None and root.subtasks:
            from ..render import format_tree

            lines.append("")
            lines.extend(format_tree(root, max_depth=2, max_rows=SUMMARY_TREE_ROWS).splitlines())
            shown = sum(1 for depth, _ in root.walk() if depth <= 2)
            if shown > SUMMARY_TREE_ROWS:
                where = (
                    f"taskmeter show {shlex.quote(str(self.output))}"
                    if self.output is not None
                    else "-o FILE keeps them"
                )
                lines.append(f"  ... and {shown - SUMMARY_TREE_ROWS} more ({where})")
        say("\n".join(lines))

    def _remove_subtask_dir(self) -> None:
        if self.subtask_dir is not None:
            try:
                os.rmdir(self.subtask_dir)  # empty, unless peaks were published or a
                # record could not be read
            except OSError:
                import shutil

                shutil.rmtree(self.subtask_dir, ignore_errors=True)
            self.subtask_dir = None


def _process_peak(
    kernel_bytes: int | None, floor_bytes: int | None, read_by_processes: int | None
) -> tuple[int | None, int | None]:
    """The largest single-process peak RSS, or ``None`` and an upper bound.

    The kernel's figure (``ru_maxrss`` of the reaped processes) is exact
    unless it is no more than the floor it inherits: at ``exec`` the command
    is charged the high-water mark of the image it replaced, which is
    taskmeter's own.  Then the true peak is only known to be at most that.
    ``read_by_processes`` counts too: the ``VmHWM`` of each process sampled
    while it ran (processes still running were not reaped), and the peaks
    the command's own tasks read before resetting the mark.
    """
    if kernel_bytes is not None and (floor_bytes is None or kernel_bytes > floor_bytes):
        return max(kernel_bytes, read_by_processes or 0), None
    if (
        read_by_processes is not None
        and floor_bytes is not None
        and read_by_processes > floor_bytes
    ):
        return read_by_processes, None
    return None, floor_bytes if kernel_bytes is not None else None


def _tasks_peak(subtasks: Sequence[Task]) -> int | None:
    """The largest ``peak_memory`` of the delivered tasks and of their subtasks.

    Each is the kernel's high-water mark of one process of the command, read
    by that process before its next task reset the mark.  A reset lowers the
    ``ru_maxrss`` that ``wait4`` later gives for the process too, so without
    these the peak of a task that ended before another began would be lost.
    """
    peaks = (task.peak_memory for subtask in subtasks for _, task in subtask.walk())
    return max((peak for peak in peaks if peak is not None), default=None)


def _own_high_water() -> int | None:
    """This process's RSS high-water mark (the floor a spawned command inherits)."""
    from ..probes.memory import parse_vm_hwm

    try:
        with open("/proc/self/status", "rb") as handle:
            return parse_vm_hwm(handle.read())
    except OSError:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def _unwritable(written: str) -> str | None:
    """Why the task file cannot be written at ``written`` (the path as given), or
    ``None`` if it seems it can.

    An existing path must be a regular file (or a link to one): the task file
    is replaced by a new file renamed over it, again and again while the
    command runs, which makes no sense for a directory, a FIFO, a device or a
    socket; nor for a path written as a directory (``out/``), which would
    otherwise become a file named ``out``.
    """
    path = Path(written)
    if descriptor_link(path) is not None:
        return "it names a file descriptor (as /dev/stdout does), not a regular file"
    kind = not_a_regular_file(path)
    if kind is not None:
        return f"it is {kind}, not a regular file"
    if path.is_symlink():
        try:
            link_target(path)
        except OSError as exc:  # a loop of links, say: it would be no file to write
            return exc.strerror or str(exc)
    if names_a_directory(written):
        ending = directory_ending(written)
        return f"it names a directory (it ends with {ending!r}); name a file in it"
    directory = path.parent
    while not directory.exists():
        if directory == directory.parent:
            break
        directory = directory.parent
    if not directory.is_dir():
        return f"{directory} is not a directory"
    # The file is written as a temporary file renamed into place: try making
    # one (permissions alone miss a root user, a read-only mount, /sys, /proc).
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".taskmeter-check-"):
            pass
    except OSError as exc:
        return f"cannot create a file in {directory} ({exc.strerror or exc})"
    return None


def _load_record_modules() -> None:
    """Import what saving the task file needs (in a thread of its own, see ``execute``)."""
    with contextlib.suppress(Exception):  # an import that fails fails again where needed
        # The statements the save runs (so what they load is what gets loaded).
        from uuid import UUID  # noqa: F401

        from ..taskfile import TaskFileError, save_task  # noqa: F401
        from ._record import build_root  # noqa: F401


def _record_command_setting() -> bool:
    from ..settings import record_command

    return record_command()


def _save_interval() -> float:
    from ..settings import monitor_interval

    return monitor_interval()


def _random_id(bits: int) -> int:
    """A random non-zero id of ``bits`` bits (trace and span ids)."""
    value = 0
    while value == 0:
        value = int.from_bytes(os.urandom(bits // 8), "big")
    return value


def _new_task_id() -> str:
    """A random (version 4) UUID, as text (the ``uuid`` module is not needed before the spawn)."""
    value = (_random_id(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _make_private_dir() -> str:
    """A new directory only this user can enter, under ``TMPDIR`` (or ``/tmp``).

    Where that cannot be made (a ``TMPDIR`` that does not exist, or is read
    only), in the first directory of ``tempfile``'s list that takes one;
    raises ``OSError`` where none does.
    """
    base = os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, f"taskmeter-subtasks-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        except OSError:
            import tempfile

            return tempfile.mkdtemp(prefix="taskmeter-subtasks-")
        return path
