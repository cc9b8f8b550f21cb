"""What is imported when: reading a task file does not load what running tasks needs,
and what a running task loads late is loaded before any task is measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taskmeter import Task

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
