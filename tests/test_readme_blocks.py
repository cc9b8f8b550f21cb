"""Every code block of the README does what it says, run as a new user runs it.

* each ```python block runs as a script in a directory of its own (a block defining
  ``test_*`` functions runs under pytest), all at once, each with a time limit, with
  no network but 127.0.0.1 (``tests/readme_sandbox``) and no collector, and prints
  what it says it prints; a block marked ``<!-- fragment -->`` is only compiled;
* each ```toml block loads with the code that reads such a file;
* each ```sh block's taskmeter command lines parse, its example and benchmark paths
  exist and its ``taskmeter[extra]`` extras are defined; those of the shell section,
  the LSST section and the flush session are run, and the output blocks shown after a
  command match what it prints now (labels, headers, units; not the numbers);
* every option of every verb is named in the README, and every option it names exists;
* the contents list links to every section, and every ``#anchor`` link finds its heading.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskmeter.cli import build_parser
from tests.collector import CollectorUnderTest, OtlpSink, attributes_of, wait_until
from tests.conftest import require_executable

from . import readme
from .cli.test_flush import spool_spans

ROOT = readme.ROOT
SANDBOX = Path(__file__).resolve().parent / "readme_sandbox"
BLOCKS = readme.blocks()
README = readme.readme_text()
BLOCK_TIMEOUT_S = 60

# --------------------------------------------------------------------------- python


@dataclass
class Ran:
    """A python block's run: exit status, output, and the directory it ran in."""

    returncode: int
    stdout: str
    stderr: str
    directory: Path
    network: list[str]
    seconds: float


def sandbox_environment(directory: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A new user's environment: no OpenTelemetry or taskmeter settings, no pytest
    options, the network guard loaded, and this interpreter's scripts first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "TASKMETER_", "PYTEST_", "HYPOTHESIS_"))
        and key not in ("TRACEPARENT", "TRACESTATE", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(SANDBOX)
    env["README_NETWORK_LOG"] = str(directory / ".network")
    env["PATH"] = f"{directory / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def prepare(directory: Path) -> None:
    """``python`` and ``taskmeter`` on PATH are this interpreter's; ``examples`` and
    ``bench`` are the checkout's, as in the directory a user runs the README from."""
    bin_dir = directory / ".bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("python", ""), ("taskmeter", " -m taskmeter")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{command} "$@"\n')
        script.chmod(0o755)
    for name in ("examples", "bench"):
        (directory / name).symlink_to(ROOT / name)


def is_pytest_file(block: readme.Block) -> bool:
    return re.search(r"^def test_\w+\(", block.body, re.M) is not None


def start(
    block: readme.Block, directory: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    prepare(directory)
    if is_pytest_file(block):
        (directory / "test_snippet.py").write_text(block.body)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"]
    else:
        (directory / "snippet.py").write_text(block.body)
        argv = [sys.executable, "snippet.py"]
    return subprocess.Popen(
        argv,
        cwd=directory,
        env=sandbox_environment(directory, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


PYTHON_BLOCKS = [block for block in BLOCKS if block.lang == "python"]
RUNNABLE = [block for block in PYTHON_BLOCKS if not block.fragment]

WITH_COLLECTOR = "EnrichingSpanProcessor("
"""The block that exports to a collector: run by its own test, with one started for it."""


@pytest.fixture(scope="module")
def python_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Ran]:
    """Every runnable python block, run at once (each in its own process and directory)."""
    started = {}
    for block in RUNNABLE:
        if WITH_COLLECTOR in block.body:
            continue
        directory = tmp_path_factory.mktemp(f"block{block.line}")
        started[block.line] = (start(block, directory), directory, time.monotonic())
    runs: dict[int, Ran] = {}
    deadline = time.monotonic() + BLOCK_TIMEOUT_S
    for line, (process, directory, began) in started.items():
        try:
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            stderr += f"\n(killed after {BLOCK_TIMEOUT_S} s)"
        log = directory / ".network"
        network = log.read_text().split() if log.exists() else []
        runs[line] = Ran(
            process.returncode,
            stdout,
            stderr,
            directory,
            network,
            time.monotonic() - began,
        )
    return runs


def check_using_it(ran: Ran) -> None:
    """Three figures printed (s, s, bytes), runs/train.json written."""
    duration, cpu_time, peak = ran.stdout.split()
    assert float(duration) > 0 and float(cpu_time) >= 0 and int(peak) > 1024 * 1024
    assert (ran.directory / "runs" / "train.json").stat().st_size > 0


def check_testing(ran: Ran) -> None:
    """The example test passes under pytest."""
    assert "1 passed" in ran.stdout, ran.stdout


def check_isr(ran: Ran) -> None:
    """A CPU-time Measurement in seconds."""
    assert ran.stdout.startswith("Measurement(metric='ip_isr.IsrCpuTime', value=")
    assert "unit='s'" in ran.stdout


def check_prints(expected: str) -> Callable[[Ran], None]:
    def check(ran: Ran) -> None:
        assert ran.stdout == expected, ran.stdout

    check.__doc__ = f"prints {expected!r}"
    return check


def check_worker_processes(ran: Ran) -> None:
    """The stage's own CPU, then the total with its workers' (larger)."""
    cpu_time, total_cpu = (float(word) for word in ran.stdout.split())
    assert total_cpu >= cpu_time > 0


def check_nothing_printed(ran: Ran) -> None:
    """Set-up code: it runs and prints nothing."""
    assert ran.stdout == ""


EXPECTED_EXIT: dict[str, tuple[int, ...]] = {
    # Stops with the reason where RAPL or NVML is missing, as it says.
    'default_probes("auto,rapl,nvml")': (0, 1),
}


def check_choosing_sources(ran: Ran) -> None:
    """Either installs the probes, or exits 1 with 'cannot measure energy here: <why>'."""
    if ran.returncode == 1:
        assert ran.stderr.startswith("cannot measure energy here: energy source"), ran.stderr


CHECKS: dict[str, Callable[[Ran], None]] = {
    'Task("train model", file="runs/train.json")': check_using_it,
    "def test_training_is_measured": check_testing,
    "getFullName(self):          # LSST": check_isr,
    "class CalibrateTask": check_prints("1 True\n"),
    "class SumTask": check_prints("True True\n"),
    "resets the kernel's mark: ru_maxrss falls": check_prints("True True True\n"),
    "memory.lsst_unit": check_prints("By byte byte\n"),
    'default_probes("auto,rapl,nvml")': check_choosing_sources,
    "init_worker, worker_context": check_worker_processes,
    "parallel_config(": check_prints("4 True\n"),
    'load_task("odd.json", mistyped=print)': check_prints(
        "-5.0\n"
        "odd.json: task 'train' (no id): duration is Infinity, not a finite number >= 0: "
        "shown as absent (and 1 more value out of range)\n"
        "None None 1024\n"
    ),
    WITH_COLLECTOR: check_nothing_printed,
    "DurableSpanProcessor(exporter)": check_nothing_printed,
}
"""A distinctive text of each runnable python block -> what its output must be."""


def markers_of(block: readme.Block, table: dict[str, object]) -> list[str]:
    return [marker for marker in table if marker in block.body]


def test_each_runnable_python_block_has_one_output_check() -> None:
    """A new example says what it shows: it gets a check here (or is marked a fragment),
    and each check still finds its block."""
    for block in RUNNABLE:
        assert len(markers_of(block, CHECKS)) == 1, f"{block.name}: no (or several) CHECKS"
    for marker in CHECKS:
        matching = [block.name for block in RUNNABLE if marker in block.body]
        assert len(matching) == 1, f"CHECKS[{marker!r}] matches {matching}"


def assert_ran_as_it_says(block: readme.Block, ran: Ran) -> None:
    (marker,) = markers_of(block, CHECKS)
    allowed = EXPECTED_EXIT.get(marker, (0,))
    assert ran.returncode in allowed, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert "Traceback" not in ran.stderr, ran.stderr[-3000:]
    assert not ran.network, f"tried to reach {ran.network}"
    CHECKS[marker](ran)


@pytest.mark.parametrize(
    "block",
    [block for block in RUNNABLE if WITH_COLLECTOR not in block.body],
    ids=lambda block: block.name,
)
def test_python_block_runs_and_prints_what_it_says(
    block: readme.Block, python_runs: dict[int, Ran]
) -> None:
    """The block, saved as a file and run, exits as expected within the time limit,
    reaches no host but this one, and prints what its comments say."""
    assert_ran_as_it_says(block, python_runs[block.line])


def test_enriching_block_exports_its_span_with_the_figures(
    rotel_collector: CollectorUnderTest, tmp_path: Path
) -> None:
    """The "Enriching spans you start yourself" block, its OTLP exporter pointed at a
    collector started here, exports "train model" with taskmeter.cpu.time and the rest."""
    (block,) = [block for block in RUNNABLE if WITH_COLLECTOR in block.body]
    endpoint = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rotel_collector.grpc_endpoint}
    began = time.monotonic()
    process = start(block, tmp_path, endpoint)
    stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_S)
    log = tmp_path / ".network"
    network = log.read_text().split() if log.exists() else []
    ran = Ran(process.returncode, stdout, stderr, tmp_path, network, time.monotonic() - began)
    assert_ran_as_it_says(block, ran)
    sink = rotel_collector.sink
    assert wait_until(lambda: bool(sink.spans("train model")), timeout=10)
    (span,) = sink.spans("train model")
    attributes = attributes_of(span.attributes)
    assert attributes["taskmeter.cpu.time"] >= 0 and attributes["taskmeter.duration"] > 0
    assert attributes["taskmeter.memory.peak"] > 1024 * 1024


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.name)
def test_python_block_compiles(block: readme.Block) -> None:
    """Every python block is valid Python, fragments (which are not run) included."""
    compile(block.body, block.name, "exec")


def test_fragment_marks_sit_above_code_blocks() -> None:
    """Each fragment mark is seen by the tests: it is the line above a code block."""
    marked = [block for block in BLOCKS if block.fragment]
    marks = [line for line in README.splitlines() if line.strip() == readme.FRAGMENT_MARK]
    assert len(marks) == len(marked)


# --------------------------------------------------------------------------- toml


def load_metric_specs(path: Path) -> None:
    from taskmeter.measure import load_specs

    assert load_specs(path), "no spec in the file"


def load_energy(path: Path) -> None:
    from taskmeter.probes.energy_config import load_energy_config

    assert load_energy_config(path, machine=None).queries, "no query for the machine"


TOML_READERS: dict[str, Callable[[Path], None]] = {
    "[[metrics]]": load_metric_specs,  # TASKMETER_METRIC_SPECS
    "[prometheus]": load_energy,  # TASKMETER_ENERGY_CONFIG
}


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang == "toml"], ids=lambda block: block.name
)
def test_toml_block_loads_with_the_code_that_reads_it(block: readme.Block, tmp_path: Path) -> None:
    """Each TOML block is valid TOML and a valid file of the setting it documents."""
    tomllib.loads(block.body)
    (marker,) = [m for m in TOML_READERS if m in block.body] or [None]
    assert marker is not None, f"{block.name}: no reader in TOML_READERS for this block"
    path = tmp_path / "config.toml"
    path.write_text(block.body)
    TOML_READERS[marker](path)


# --------------------------------------------------------------------------- sh


SH_BLOCKS = [block for block in BLOCKS if block.lang == "sh"]


def parse_error(argv: list[str]) -> str | None:
    """What ``taskmeter`` says of these arguments if its parser refuses them."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return stderr.getvalue() or f"exit {exc.code}"
    return None


def extras_defined() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


@pytest.mark.parametrize("block", SH_BLOCKS, ids=lambda block: block.name)
def test_sh_block_commands_exist(block: readme.Block) -> None:
    """Each taskmeter command of the block parses (its verb and options exist and take
    the values given); each script of this repository it runs exists; each
    ``taskmeter[extra]`` it installs is defined."""
    for argv in readme.taskmeter_argvs(block.body):
        assert parse_error(argv) is None, f"taskmeter {shlex.join(argv)}: {parse_error(argv)}"
    for command in readme.shell_commands(block.body):
        for argv in readme.invocations(command):
            for word in argv:
                if re.fullmatch(r"(examples|bench)/\S+\.py", word):
                    assert (ROOT / word).is_file(), f"{block.name}: {word} does not exist"
    for extra in re.findall(r"taskmeter\[([\w,-]+)\]", block.body):
        assert set(extra.split(",")) <= extras_defined(), f"{block.name}: [{extra}]"


def inline_taskmeter_commands() -> list[str]:
    """Inline code spans of the README's prose that are taskmeter command lines."""
    prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", README, flags=re.S | re.M)
    return [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("taskmeter ")]


def test_inline_taskmeter_commands_parse() -> None:
    """A command line quoted in the prose (`taskmeter show --status interrupted`) uses a
    verb and options that exist."""
    from taskmeter.cli import VERBS

    commands = inline_taskmeter_commands()
    assert len(commands) >= 5
    for command in commands:
        argv = shlex.split(command.replace("[DIR]", "DIR").replace("...", "true"))[1:]
        if argv[0] == "VERB":  # `taskmeter VERB -h`: any verb
            argv[0] = "show"
        if len(argv) == 1 and not argv[0].startswith("-"):
            assert argv[0] in VERBS, f"{command}: no such verb"
            continue
        error = parse_error(argv)  # a quoted option may leave out the FILE it applies to
        assert error is None or "arguments are required" in error, f"{command}: {error}"


# --------------------------------------------------------------- commands, run


def shape(text: str) -> list[str]:
    """The parts of command output that do not vary from run to run: each line with
    trace ids, URLs, sizes, durations and other numbers replaced by their kind."""
    lines = []
    for line in text.strip("\n").splitlines():
        line = re.sub(r"\b[0-9a-f]{32}\b", "<id>", line)
        line = re.sub(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", "<uuid>", line)
        line = re.sub(r"https?://[^\s;]+", "<url>", line)
        line = re.sub(r"\d+(?:\.\d+)? ?(?:B|KiB|MiB|GiB)\b", "<size>", line)
        line = re.sub(r"\d+(?:\.\d+)? ?(?:ns|µs|ms|s|min|h)\b", "<time>", line)
        line = re.sub(r"\d+(?:\.\d+)?", "<n>", line)
        lines.append(" ".join(line.split()))
    return lines


def shape_difference(shown: str, printed: str) -> str:
    import difflib

    return "\n".join(
        difflib.unified_diff(shape(shown), shape(printed), "README", "now", lineterm="")
    )


OUTPUT_BLOCKS = [block for block in BLOCKS if block.lang == ""]


def output_block(starting: str) -> str:
    (body,) = [block.body for block in OUTPUT_BLOCKS if block.body.startswith(starting)]
    return body


def sh_block(containing: str) -> readme.Block:
    (block,) = [block for block in SH_BLOCKS if containing in block.body]
    return block


class Shell:
    """Runs README command lines with bash in one directory, as a user at a terminal."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        prepare(directory)

    def __call__(
        self, command: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.directory,
            env=sandbox_environment(self.directory, extra),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        log = self.directory / ".network"
        assert not log.exists(), f"{command}: tried to reach {log.read_text().split()}"
        return result


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    yield Shell(tmp_path)


OUTPUT_CHECKS = {
    "taskmeter: python examples/train.py": "test_shell_section_commands_print_what_it_shows",
    "task                   status": "test_shell_section_commands_print_what_it_shows",
    "taskmeter: warning: runs/edited.json": "test_show_warns_of_a_mistyped_value_as_shown",
    "task    status": "test_partial_energy_table_is_what_show_prints",
}
"""How each output block of the README begins -> the test that compares it."""


def test_every_output_block_is_compared_with_its_command() -> None:
    """An output block added to the README gets a comparison (OUTPUT_CHECKS)."""
    for block in OUTPUT_BLOCKS:
        starts = [start for start in OUTPUT_CHECKS if block.body.startswith(start)]
        assert len(starts) == 1, f"{block.name}: output block not compared with its command"


def test_partial_energy_table_is_what_show_prints(tmp_path: Path) -> None:
    """The README's table of a task whose GPU could not be read is `taskmeter show`'s."""
    from tests.cli.runner import taskmeter
    from tests.cli.trees import GPU_LOST_IN_B

    path = tmp_path / "t.json"
    path.write_text(GPU_LOST_IN_B.model_dump_json())
    shown = taskmeter("show", str(path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip("\n") == output_block("task    status").rstrip("\n")


def table_rows(table: str) -> list[str]:
    """The labels of a `taskmeter show` table, parents shown for a filter marked `·`."""
    rows = []
    for line in table.splitlines()[1:]:
        match = re.match(r"\s*(· )?(.+?)\s+(finished|failed|running|cancelled)\s", line)
        assert match, line
        rows.append(("· " if match.group(1) else "") + match.group(2))
    return rows


SHOW_ROWS: list[Callable[[list[str]], list[str]]] = [
    lambda tasks: tasks,  # every task
    lambda tasks: tasks[:2],  # the root and its children
    lambda tasks: [f"· {label}" for label in tasks[:2]] + tasks[2:],  # 'epoch*', parents marked
    lambda tasks: [],  # no failed task: jq prints nothing
]
"""What each `taskmeter show` line of the README lists, given the run's labels."""


REPORT_PAGES = ["runs/train.html", "report.html", "report.html"]
"""The page each `taskmeter report` line of the README writes."""


def test_shell_section_commands_print_what_it_shows(shell: Shell) -> None:
    """`taskmeter run` of examples/train.py prints the summary and tree the README shows;
    the show and report commands run on its task file as they say; the quickstart's
    `taskmeter show` table has the README's columns and rows."""
    require_executable("jq", "jq")
    (run_command,) = readme.shell_commands(sh_block("taskmeter run -o").body)
    ran = shell(run_command)
    assert ran.returncode == 0, ran.stderr
    summary = output_block("taskmeter: python examples/train.py")
    assert shape(ran.stderr) == shape(summary), shape_difference(summary, ran.stderr)

    epochs = ["epoch 0", "epoch 1", "epoch 2"]
    show_commands = readme.shell_commands(sh_block("taskmeter show runs/train.json").body)
    for command, rows in zip(show_commands, SHOW_ROWS, strict=True):
        shown = shell(command)
        assert shown.returncode == 0, f"{command}: {shown.stderr}"
        assert table_rows(shown.stdout) == rows(["python", "train", *epochs]), shown.stdout

    report_commands = readme.shell_commands(sh_block("taskmeter report runs/train.json").body)
    for command, page in zip(report_commands, REPORT_PAGES, strict=True):
        reported = shell(command)
        assert reported.returncode == 0, f"{command}: {reported.stderr}"
        html = (shell.directory / page).read_text()
        assert "epoch 2" in html, f"{command}: {page}"
        title = "nightly training" if "--title" in command else "python"
        assert f"<title>{title} · taskmeter report</title>" in html, f"{command}: {page}"

    assert "`taskmeter show runs/quickstart.json`, after `python examples/quickstart.py`" in README
    made = shell("python examples/quickstart.py")
    assert made.returncode == 0, made.stderr
    table = shell("taskmeter show runs/quickstart.json")
    shown_table = output_block("task                   status")
    assert table.returncode == 0, table.stderr
    assert shape(table.stdout) == shape(shown_table), shape_difference(shown_table, table.stdout)


def test_show_warns_of_a_mistyped_value_as_shown(shell: Shell) -> None:
    """A hand-edited task file (its root 'train') with three values of the wrong JSON
    type (`true` for a figure, `"12"` for a figure, `"yes"` for `subprocess`):
    `taskmeter show` prints the one warning the README shows, naming the first, and shows
    the figure as absent."""
    import json

    ran = shell("taskmeter run -q -o runs/train.json -- python examples/train.py --epochs 2")
    assert ran.returncode == 0, ran.stderr
    document = json.loads((shell.directory / "runs" / "train.json").read_text())
    (train,) = document["subtasks"]  # the file of a program that saved its task "train"
    train["peak_memory"] = True
    train["subtasks"][0]["cpu_time"] = "12"
    train["subtasks"][1]["subprocess"] = "yes"
    (shell.directory / "runs" / "edited.json").write_text(json.dumps(train))
    shown = shell("taskmeter show runs/edited.json")
    assert shown.returncode == 0, shown.stderr
    warning = output_block("taskmeter: warning: runs/edited.json")
    assert shape(shown.stderr) == shape(warning), shape_difference(warning, shown.stderr)
    (train_row,) = [line for line in shown.stdout.splitlines() if line.startswith("train ")]
    assert train_row.split()[4:6] == ["-", "-"], train_row  # peak mem absent, no GPU


def test_lsst_section_commands_measure_the_example_metadata(shell: Shell) -> None:
    """The example pipeline writes its metadata; `taskmeter measure` with the README's
    specs writes one Measurement per spec, in the README's units."""
    import json

    commands = readme.shell_commands(sh_block("taskmeter measure").body)
    assert len(commands) == 2
    made = shell(commands[0])
    assert made.returncode == 0, made.stderr
    measured = shell(commands[1])
    assert measured.returncode == 0, measured.stderr
    measurements = json.loads(measured.stdout)
    assert [(m["metric"], m["unit"]) for m in measurements] == [
        ("pipe_tasks.ProcessCcdTime", "s"),
        ("ip_isr.IsrCpuTime", "s"),
        ("ip_isr.IsrMemory", "By"),
    ]


def test_flush_session_prints_what_it_shows(shell: Shell, otlp_sink: OtlpSink) -> None:
    """`taskmeter flush --list` and `taskmeter flush --otlp-endpoint URL` print the lines
    the README's session shows, for a spool with spans in it (the endpoint is a local
    OTLP receiver in place of the README's collector host)."""
    block = sh_block("taskmeter flush --list")
    lines = block.body.splitlines()
    spool = shell.directory / "spool"
    spool_spans(spool, 30)
    env = {"TASKMETER_SPOOL_DIR": str(spool)}
    for index, line in enumerate(lines):
        if not line.startswith("$ "):
            continue
        command = line[2:].replace("http://collector:4318", otlp_sink.endpoint)
        expected = lines[index + 1]
        printed = shell(command, env)
        assert printed.returncode in (0, 1), f"{command}: {printed.stderr}"
        assert shape(printed.stdout) == shape(expected), shape_difference(expected, printed.stdout)
    assert len(otlp_sink.spans()) == 30


# --------------------------------------------------------------------------- options


def cli_options() -> dict[str, list[str]]:
    """Option strings of ``taskmeter`` (key ``""``) and of each verb."""
    parser = build_parser()
    options: dict[str, list[str]] = {"": []}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, subparser in action.choices.items():
                options[verb] = [o for sub in subparser._actions for o in sub.option_strings]
        else:
            options[""].extend(action.option_strings)
    return options


def mentioned(option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README) is not None


def test_every_option_of_every_verb_is_in_the_readme() -> None:
    """`taskmeter --help` and each verb's --help: each option, short and long, is named."""
    options = cli_options()
    assert {"run", "show", "report", "measure", "flush"} <= set(options)
    missing = [f"{verb or 'taskmeter'} {o}" for verb, opts in options.items() for o in opts]
    missing = [entry for entry in missing if not mentioned(entry.split()[-1])]
    assert not missing, missing


OTHER_PROGRAMS: dict[str, str | None] = {
    "--epochs": "examples/train.py",
    "--verbose": "examples/energy.py",
    "--work-us": "bench/bench_export.py",
    "--cache": "bench/bench_task_instructions.py",
    "--quick": "bench/bench_task.py",
    "--create": None,  # systemd-tmpfiles
    "--no-deps": None,  # pip wheel
    "--sdist": None,  # python -m build
    "--password": None,  # an example of a secret on a command line
    "-L": None,  # nvidia-smi -L
    "-c": None,  # python -c
    "-m": None,  # python -m
    "-e": None,  # pip install -e
    "-w": None,  # pip wheel -w
    "-f": None,  # docker compose -f
}
"""Options the README names that belong to another program -> its file here."""


def test_every_option_the_readme_names_exists() -> None:
    """A `--option` or `-x` in the README is taskmeter's, or that of the program named in
    OTHER_PROGRAMS (whose source defines it)."""
    known = {option for options in cli_options().values() for option in options}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", README))
    named |= set(re.findall(r"(?<![\w/.-])(-[a-zA-Z])(?![\w-])", README))
    unknown = sorted(named - known - set(OTHER_PROGRAMS))
    assert not unknown, f"options named in the README that no verb has: {unknown}"
    for option, path in OTHER_PROGRAMS.items():
        assert option in named, f"{option} is no longer in the README: drop it here"
        if path is not None:
            assert f'"{option}"' in (ROOT / path).read_text(), f"{path} has no {option}"


# --------------------------------------------------------------------------- contents


def contents_links() -> list[str]:
    start = README.index("\nContents\n")
    end = README.index("\n## ", start)
    return re.findall(r"\]\(#([^)]+)\)", README[start:end])


def heading_anchors() -> list[tuple[int, str]]:
    """``(level, anchor)`` per heading; a repeated anchor gets GitHub's ``-1``, ``-2``."""
    seen: dict[str, int] = {}
    anchors = []
    for level, title in readme.headings():
        base = readme.anchor(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.append((level, base if count == 0 else f"{base}-{count}"))
    return anchors


def test_contents_lists_every_section_in_order_with_working_links() -> None:
    """Each link of the contents list finds a heading, each section (##) is listed,
    in the README's order, and each subsection link sits under its section's entry."""
    anchors = heading_anchors()
    links = contents_links()
    known = {anchor for _, anchor in anchors}
    assert set(links) <= known, sorted(set(links) - known)
    sections = [anchor for level, anchor in anchors if level == 2]
    assert [link for link in links if link in sections] == sections
    section = ""
    section_of: dict[str, str] = {}
    for level, anchor in anchors:
        if level == 2:
            section = anchor
        section_of[anchor] = section
    current = ""
    for link in links:
        current = link if link in sections else current
        assert section_of[link] == current, f"#{link} is listed under #{current}"
    assert README.index("\nContents\n") < README.index("\n## "), "contents before section 1"


def test_every_anchor_link_finds_its_heading() -> None:
    """Every `](#anchor)` link of the README points at a heading."""
    known = {anchor for _, anchor in heading_anchors()}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links and links <= known, sorted(links - known)
