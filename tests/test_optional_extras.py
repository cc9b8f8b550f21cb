"""The base install (``pip install taskmeter``, no extras): nothing imports an optional
dependency at import time, and each feature that needs one names the extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter.cli import main
from taskmeter.instrumentation import sdk
from taskmeter.measure import MetadataError, SpecError, load_metadata, load_specs

BLOCK_OPTIONAL = """
import importlib.abc
import sys

OPTIONAL = ("yaml", "pynvml", "torch", "opentelemetry.instrumentation",
            "opentelemetry.exporter.prometheus", "prometheus_client")


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in OPTIONAL):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Missing())
"""

IMPORT_EVERYTHING = """
import pkgutil
import importlib
import taskmeter
from taskmeter import Task

failed = []
for info in pkgutil.walk_packages(taskmeter.__path__, "taskmeter."):
    if info.name.startswith("taskmeter.instrumentation") or info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {exc!r}")
with Task("work") as task:
    pass
assert task.duration is not None
print("\\n".join(failed) or "ok")
"""


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_OPTIONAL + code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_base_module_imports_and_a_task_runs_without_the_extras() -> None:
    """No module outside ``taskmeter.instrumentation`` imports an optional dependency
    when it is imported, and a task with the default probes runs without them."""
    result = run_without_extras(IMPORT_EVERYTHING)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_instrumentation_without_its_extra_names_the_extra() -> None:
    """Importing the instrumentor without opentelemetry-instrumentation says what to install
    (not just the missing module's name)."""
    code = (
        "try:\n"
        "    import taskmeter.instrumentation\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    result = run_without_extras(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'taskmeter[instrument]'" in result.stdout


def test_prometheus_exporter_not_installed_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_METRICS_EXPORTER=prometheus without its exporter: the error says which extra
    brings it; other unknown names get no hint."""
    monkeypatch.setattr(sdk, "entry_points", lambda **_: ())
    with pytest.raises(LookupError, match=r"pip install 'taskmeter\[prometheus\]'"):
        sdk._load("metrics", "prometheus")
    with pytest.raises(LookupError) as unknown:
        sdk._load("traces", "jaegr")
    assert "pip install" not in str(unknown.value)


@pytest.fixture
def no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)


def test_yaml_files_without_pyyaml_name_the_extra(no_yaml: None, tmp_path: Path) -> None:
    """A YAML metadata or spec file without PyYAML: the API's errors name the file and
    the extra."""
    metadata = tmp_path / "md.yaml"
    metadata.write_text("isr:\n  runStartUtc: ['2020-01-01T00:00:00+00:00']\n")
    specs = tmp_path / "specs.yml"
    specs.write_text("metrics: []\n")
    with pytest.raises(MetadataError, match=r"md\.yaml: .*pip install 'taskmeter\[yaml\]'"):
        load_metadata(metadata)
    with pytest.raises(SpecError, match=r"specs\.yml: .*pip install 'taskmeter\[yaml\]'"):
        load_specs(specs)


def test_measure_cli_without_pyyaml_is_an_error_line_not_a_traceback(
    no_yaml: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``taskmeter measure md.yaml``: exit status 3 and one line naming the extra."""
    metadata = tmp_path / "md.yaml"
    metadata.write_text("isr: {}\n")
    status = main(["measure", str(metadata), "--timing", "isr.run", "p.T"])
    err = capsys.readouterr().err
    assert status == 3
    assert "pip install 'taskmeter[yaml]'" in err
    assert "Traceback" not in err
