"""What is imported when: reading a task file does not load what running tasks needs,
what a running task loads late is loaded before any task is measured, and ``taskmeter
run``/``flush`` load the OpenTelemetry SDK only to export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from taskmeter import Task
from tests.cli.runner import clean_environment
from tests.cli.test_flush import spool_spans
from tests.collector import OtlpSink

SPANS_LOADED_AT_START = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from taskmeter import Task, use_tracer_provider

use_tracer_provider(TracerProvider())
assert "taskmeter._spans" not in sys.modules
root = Task("root")
root.start()
loaded = "taskmeter._spans" in sys.modules
with Task("child"):
    pass
root.finish()
print(loaded)
"""


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_show_imports_no_sdk_no_asyncio(tmp_path: Path) -> None:
    """Reading a task file needs the Task model, not what ending a task's span needs:
    ``show`` imports neither the OpenTelemetry SDK, nor asyncio, nor the HTML report
    (start-up time, bench/bench_cli.py)."""
    with Task("pipeline") as root, Task("step"):
        pass
    path = tmp_path / "tree.json"
    path.write_text(root.model_dump_json())
    code = (
        "import sys\n"
        "from taskmeter.cli import main\n"
        f"status = main(['show', {str(path)!r}])\n"
        "sys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
        "raise SystemExit(status)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert "pipeline" in result.stdout
    modules = set(result.stderr.splitlines())
    assert "taskmeter.task" in modules  # the check sees what show imported
    unwanted = {
        "asyncio",
        "opentelemetry.sdk",
        "opentelemetry.sdk.trace",
        "taskmeter._spans",
        "taskmeter.report",
    }
    assert not unwanted & modules


def test_the_attribute_store_is_loaded_before_the_first_task_is_measured() -> None:
    """With the SDK imported, the first task to start loads the one-step attribute store
    before its readings: the root open when its first child ends is not charged for it."""
    result = python(SPANS_LOADED_AT_START)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


SDK_AFTER_THE_FIRST_TASK = """
import sys
from taskmeter import Task

with Task("before the SDK"):
    pass
assert "opentelemetry.sdk.trace" not in sys.modules
assert "taskmeter._spans" not in sys.modules
from taskmeter.testing import capture_spans

with capture_spans() as spans:
    with Task("after"):
        pass
span = spans.one("after")
print(span.attributes["taskmeter.task.status"], "taskmeter._spans" in sys.modules)
"""


def test_an_sdk_imported_after_the_first_task_still_gets_the_attributes() -> None:
    """A program that imports the SDK only after its first task: the next task loads the
    store, and its span has the task's attributes."""
    result = python(SDK_AFTER_THE_FIRST_TASK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "finished True"


# What a run or a flush has imported when the command starts (os.posix_spawnp, which the
# supervisor starts it with, is wrapped to look) and when it ends, written as JSON.
CLI_IMPORTS = """
import json
import os
import sys

from taskmeter.cli import main

at_spawn = []
spawn = os.posix_spawnp


def recording_spawn(*args, **kwargs):
    at_spawn.append(sorted(sys.modules))
    return spawn(*args, **kwargs)


os.posix_spawnp = recording_spawn
status = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"at_spawn": at_spawn, "at_exit": sorted(sys.modules)}, out)
raise SystemExit(status)
"""

SDK_AND_EXPORTERS = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.proto",
    "google.protobuf",
    "grpc",
    "taskmeter.export.exporters",
    "taskmeter.export.processor",
)


def cli_imports(
    tmp_path: Path, *args: str, env: dict[str, str]
) -> tuple[int, list[list[str]], list[str]]:
    """Exit status of ``taskmeter ARGS``, the modules loaded when each command started, and
    those loaded at the end."""
    record = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", CLI_IMPORTS, str(record), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert record.exists(), result.stderr
    loaded = json.loads(record.read_text())
    return result.returncode, loaded["at_spawn"], loaded["at_exit"]


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(SDK_AND_EXPORTERS)]


def test_run_without_export_imports_no_sdk_and_no_export_package(tmp_path: Path) -> None:
    """``taskmeter run -- cmd`` with no OTLP variable set never imports the OpenTelemetry SDK,
    an exporter or taskmeter.export, before or after the command (start-up time,
    bench/bench_cli.py)."""
    status, at_spawn, at_exit = cli_imports(
        tmp_path, "run", "-q", "--", sys.executable, "-c", "pass", env=clean_environment()
    )
    assert status == 0
    assert len(at_spawn) == 1
    assert "taskmeter.cli.run" in at_spawn[0]  # the record is of the run
    for modules in (at_spawn[0], at_exit):
        assert heavy(modules) == []
        assert not [m for m in modules if m.startswith("taskmeter.export")]


def test_run_with_export_reads_its_configuration_without_the_sdk(
    tmp_path: Path, otlp_sink: OtlpSink
) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, the check before the command reads the variables
    (taskmeter.export.config) without the SDK or the exporters: they are imported after the
    command, and the run's span still reaches the endpoint."""
    env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.endpoint})
    status, at_spawn, at_exit = cli_imports(
        tmp_path, "run", "-q", "--", sys.executable, "-c", "pass", env=env
    )
    assert status == 0
    assert "taskmeter.export.config" in at_spawn[0]  # the variables were checked first
    assert heavy(at_spawn[0]) == []
    assert "opentelemetry.sdk.trace" in at_exit
    assert len(otlp_sink.spans()) == 1


def test_malformed_variable_is_reported_without_the_sdk(tmp_path: Path) -> None:
    """A malformed OTLP endpoint variable is still exit 2 naming it, nothing run, and the SDK
    not imported to find out."""
    env = clean_environment({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:99999"})
    record = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", CLI_IMPORTS, str(record), "run", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in result.stderr
    loaded = json.loads(record.read_text())
    assert loaded["at_spawn"] == []
    assert heavy(loaded["at_exit"]) == []


def test_flush_delivers_a_spool_without_the_sdk(tmp_path: Path, otlp_sink: OtlpSink) -> None:
    """``taskmeter flush`` replays spooled batches (already encoded) to the endpoint without
    importing the SDK or the exporters."""
    spool_spans(tmp_path / "spool", 5)
    env = clean_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.endpoint})
    status, _, at_exit = cli_imports(tmp_path, "flush", str(tmp_path / "spool"), env=env)
    assert status == 0
    assert len(otlp_sink.spans()) == 5
    assert "taskmeter.export.delivery" in at_exit
    assert heavy(at_exit) == []


def test_export_names_are_imported_on_first_use() -> None:
    """``taskmeter.export`` imports its exporters when one is first asked for: every public
    name still resolves, and an unknown one is an AttributeError."""
    code = (
        "import sys\n"
        "import taskmeter.export as export\n"
        "before = 'opentelemetry.sdk' in sys.modules\n"
        "names = [getattr(export, name) for name in export.__all__]\n"
        "from taskmeter.export import DurableSpanExporter\n"
        "after = 'opentelemetry.sdk' in sys.modules\n"
        "try:\n"
        "    export.NoSuchName\n"
        "except AttributeError as exc:\n"
        "    missing = str(exc)\n"
        "print(before, after, len(names) == len(export.__all__), missing)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "False True True module 'taskmeter.export' has no attribute 'NoSuchName'"
    )
