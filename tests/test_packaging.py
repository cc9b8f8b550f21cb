"""taskmeter as users get it: the sdist, the wheel built from that sdist, and the wheel installed
(not editable) in a fresh environment, used from a directory outside the checkout.

The wheel is built once per run, offline (``--no-build-isolation --no-index``: setuptools comes
from the test environment). The fresh environment is a ``venv --without-pip`` with only the wheel
installed in it; a ``.pth`` file lends it the test environment's installed dependencies (read
after its own site-packages, so ``taskmeter`` is the wheel's, never the checkout's).
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import taskmeter
from tests.collector import OtlpSink
from tests.export.servers import closed_port

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ASSETS = ("format.js", "report.css", "report.js", "template.html")

# What the sdist carries besides the package: enough to rebuild the wheel and run the tests.
SDIST_FILES = ("README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in")
SDIST_DIRS = ("src", "tests", "examples", "bench", "collector-config", "docs", ".ci")
# Local state that must never ship.
LOCAL_STATE = frozenset(
    {
        ".venv",
        ".venv-distro",
        ".git",
        "runs",
        "build",
        "dist",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
    }
)

ENTRY_POINTS = {
    "console_scripts": "taskmeter.cli:main",
    "opentelemetry_instrumentor": "taskmeter.instrumentation:TaskmeterInstrumentor",
    "opentelemetry_traces_exporter": "taskmeter.export:DurableSpanExporter",
    "opentelemetry_metrics_exporter": "taskmeter.export:DurableMetricExporter",
}

LOAD_ENTRY_POINTS = """
import importlib.metadata, json, sys
found = {}
for group in sys.argv[1:]:
    for point in importlib.metadata.entry_points(group=group, name="taskmeter"):
        loaded = point.load()
        found[group] = [point.value, sys.modules[loaded.__module__].__file__]
print(json.dumps(found))
"""

INSTRUMENTED_APP = """
import taskmeter
from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("request"):
    sum(i * i for i in range(200_000))
print("taskmeter from", taskmeter.__file__)
"""


def _build(args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=180, env=_build_environment()
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"


def _build_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _not_copied(directory: str, names: list[str]) -> set[str]:
    """Left out of the copy the sdist is built from: VCS data, venvs and build outputs."""
    skipped = {".git", ".venv", ".venv-distro", "build", "dist"}
    return {name for name in names if name in skipped or name.endswith(".egg-info")}


def _local_files(root: Path) -> set[str]:
    """The files of the checkout that the sdist must carry (local state left out)."""
    names = {name for name in SDIST_FILES if (root / name).is_file()}
    for directory in SDIST_DIRS:
        for path in (root / directory).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and not _is_local_state(relative.as_posix()):
                names.add(relative.as_posix())
    return {name for name in names if not name.startswith("src/taskmeter.egg-info/")}


def _is_local_state(name: str) -> bool:
    return name.endswith((".pyc", ".pyo")) or any(part in LOCAL_STATE for part in name.split("/"))


@dataclass(frozen=True)
class Built:
    """The sdist, and the wheel built from it."""

    sdist: Path
    wheel: Path

    def sdist_names(self) -> set[str]:
        """The sdist's files, relative to its top directory."""
        with tarfile.open(self.sdist) as archive:
            members = archive.getmembers()
        return {m.name.split("/", 1)[1] for m in members if m.isfile() and "/" in m.name}

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())

    def wheel_text(self, name: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name).decode("utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``setuptools``' sdist of the checkout, and ``pip wheel`` of the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    # A copy without the build's own state: an existing *.egg-info/SOURCES.txt would add the
    # files of an earlier sdist to this one, whatever MANIFEST.in says now.
    checkout = tmp_path_factory.mktemp("checkout") / "taskmeter"
    shutil.copytree(ROOT, checkout, ignore=_not_copied, symlinks=True)
    backend = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    _build([sys.executable, "-c", backend, str(out)], cwd=checkout)
    (sdist,) = out.glob("taskmeter-*.tar.gz")
    unpacked = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # from Python 3.11.4 (Debian 12 has 3.11.2)
            archive.extractall(unpacked, filter="data")
        else:  # our own sdist, just built
            archive.extractall(unpacked)
    (source,) = unpacked.iterdir()
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    _build([*pip, "--no-index", "--no-cache-dir", "-q", "-w", str(out), str(source)], cwd=out)
    (wheel,) = out.glob("taskmeter-*.whl")
    return Built(sdist, wheel)


@dataclass(frozen=True)
class Installed:
    """A fresh environment with the wheel installed, and a working directory outside the repo."""

    venv: Path
    site_packages: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A user's environment: this venv first on PATH, no Python, OTel or taskmeter settings."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "TASKMETER_", "PYTHON", "PIP_"))
            and key not in ("VIRTUAL_ENV", "TRACEPARENT", "TRACESTATE")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env.update(extra or {})
        return env

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (``taskmeter``, ``python``: this venv's) in the working directory."""
        program = shutil.which(args[0], path=str(self.bin)) or args[0]
        return subprocess.run(
            [program, *args[1:]],
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(env),
        )


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel installed (``--no-deps --no-index``) in a new venv; dependencies lent by a .pth."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    _build([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=ROOT.parent)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    _build([*pip, "--no-index", "--no-cache-dir", "-q", str(built.wheel)], cwd=venv)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    site_packages = Path(purelib)
    # Written after the install, so pip never saw the test environment's editable taskmeter.
    lent = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "zz_test_dependencies.pth").write_text("\n".join(sorted(lent)) + "\n")
    home = venv.parent / "home"
    home.mkdir()
    return Installed(venv, site_packages, home)


def test_wheel_holds_every_module_py_typed_the_report_assets_and_the_license(
    built: Built,
) -> None:
    """Every file of src/taskmeter (modules, py.typed, report assets) is in the wheel, with the
    LICENSE; nothing else is installed at the top level, and no bytecode ships."""
    names = built.wheel_names()
    package = ROOT / "src" / "taskmeter"
    expected = {
        "taskmeter/" + path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and not _is_local_state(path.relative_to(package).as_posix())
    }
    assert expected - names == set()
    assert "taskmeter/py.typed" in names
    assert {f"taskmeter/report/assets/{asset}" for asset in ASSETS} <= names
    dist_info = f"taskmeter-{taskmeter.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert {name.split("/", 1)[0] for name in names} == {"taskmeter", dist_info}
    assert not [name for name in names if _is_local_state(name)]


def test_wheel_metadata_matches_the_project(built: Built) -> None:
    """Version = taskmeter.__version__, requires-python, every extra, the README as the long
    description (markdown), and the four entry points (CLI, instrumentor, two exporters)."""
    dist_info = f"taskmeter-{taskmeter.__version__}.dist-info"
    metadata = email.parser.Parser().parsestr(built.wheel_text(f"{dist_info}/METADATA"))
    project = PYPROJECT["project"]
    assert metadata["Name"] == "taskmeter"
    assert metadata["Version"] == taskmeter.__version__ == project["version"]
    assert metadata["Requires-Python"] == project["requires-python"] == ">=3.11"
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert extras == set(project["optional-dependencies"])
    assert {"gpu", "instrument", "prometheus", "yaml"} <= extras
    assert metadata["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert metadata.get_payload().strip() == readme.strip()
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in built.wheel_text(f"{dist_info}/entry_points.txt").splitlines():
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            groups.setdefault(group, {})[name] = value
    assert {group: points["taskmeter"] for group, points in groups.items()} == ENTRY_POINTS


def test_sdist_holds_what_rebuilds_and_tests_it_and_no_local_state(built: Built) -> None:
    """The sdist carries the package, tests, examples, benchmarks, collector configuration,
    CI script, docs figure, changelog and license; no venv, runs/, caches or bytecode."""
    names = built.sdist_names()
    assert _local_files(ROOT) - names == set()
    for required in ("CHANGELOG.md", "LICENSE", "tests/conftest.py", "examples/quickstart.py"):
        assert required in names
    assert any(name.startswith("bench/") for name in names)
    assert any(name.startswith("collector-config/") for name in names)
    assert not [name for name in names if _is_local_state(name)]


def test_installed_wheel_is_what_runs_not_the_checkout(installed: Installed) -> None:
    """In the fresh venv, ``import taskmeter`` is the wheel's copy; ``taskmeter --version``
    and ``python -m taskmeter --version`` print the package's version."""
    code = "import taskmeter, importlib.metadata as m; print(taskmeter.__file__, m.version(%r))"
    code %= "taskmeter"
    result = installed.run("python", "-c", code)
    assert result.returncode == 0, result.stderr
    location, version = result.stdout.split()
    assert Path(location).is_relative_to(installed.site_packages)
    assert not Path(location).is_relative_to(ROOT)
    assert version == taskmeter.__version__
    for command in (("taskmeter",), ("python", "-m", "taskmeter")):
        shown = installed.run(*command, "--version")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == f"taskmeter {taskmeter.__version__}"


def test_quickstart_show_and_report_from_the_wheel(installed: Installed) -> None:
    """The README's quickstart, copied out of the tree, writes its task file; ``taskmeter
    show`` lists its tasks, and ``taskmeter report`` writes a page with every asset inline."""
    shutil.copy(ROOT / "examples" / "quickstart.py", installed.home / "quickstart.py")
    example = installed.run("python", "quickstart.py", "--data-mib", "8", "--epochs", "2")
    assert example.returncode == 0, example.stderr
    assert "task file: runs/quickstart.json" in example.stdout
    shown = installed.run("taskmeter", "show", "runs/quickstart.json")
    assert shown.returncode == 0, shown.stderr
    labels = [line.strip().split("  ")[0] for line in shown.stdout.splitlines()[1:]]
    tree = ["quickstart pipeline", "load data", "train model", "epoch 1", "epoch 2", "evaluate"]
    assert labels == tree
    report = installed.run("taskmeter", "report", "runs/quickstart.json")
    assert report.returncode == 0, report.stderr
    page = (installed.home / "runs" / "quickstart.html").read_text(encoding="utf-8")
    assets = installed.site_packages / "taskmeter" / "report" / "assets"
    for asset in ("report.css", "report.js", "format.js"):
        assert (assets / asset).read_text(encoding="utf-8").strip() in page
    for placeholder in ("{{STYLE}}", "{{FORMAT}}", "{{SCRIPT}}", "{{DATA}}", "{{VERSION}}"):
        assert placeholder not in page
    assert "<link" not in page and "<script src" not in page


def test_run_measures_a_command_whose_tasks_use_the_wheel(installed: Installed) -> None:
    """``taskmeter run`` keeps the command's exit status and adopts the task the command's
    own taskmeter (the wheel's) reports as a subtask."""
    child = (
        "import sys\nfrom taskmeter import Task\n"
        "with Task('inner'):\n    sum(range(10**5))\nsys.exit(3)"
    )
    result = installed.run(
        "taskmeter", "run", "-q", "-o", "runs/cmd.json", "--", "python", "-c", child
    )
    assert result.returncode == 3, result.stderr
    document = json.loads((installed.home / "runs" / "cmd.json").read_text())
    assert document["status"] == "failed"
    assert [task["label"] for task in document["subtasks"]] == ["inner"]
    assert document["subtasks"][0]["status"] == "finished"


def test_measure_reads_the_example_pipeline_metadata(installed: Installed) -> None:
    """``taskmeter measure`` with the README's specs on the metadata the copied LSST example
    writes measures all three metrics."""
    shutil.copy(ROOT / "examples" / "lsst_pipeline.py", installed.home / "lsst_pipeline.py")
    example = installed.run("python", "lsst_pipeline.py", "--pixels", "20000")
    assert example.returncode == 0, example.stderr
    specs = ["--timing", "ccdProcessor.runDataRef", "pipe_tasks.ProcessCcdTime"]
    specs += [
        "--cpu-timing",
        "isr.run",
        "ip_isr.IsrCpuTime",
        "--memory",
        "isr.run",
        "ip_isr.IsrMemory",
    ]
    result = installed.run("taskmeter", "measure", "runs/ccdProcessor_metadata.json", *specs)
    assert result.returncode == 0, result.stderr
    measured = {m["metric"]: m["value"] for m in json.loads(result.stdout)}
    assert set(measured) == {"pipe_tasks.ProcessCcdTime", "ip_isr.IsrCpuTime", "ip_isr.IsrMemory"}
    assert all(value > 0 for value in measured.values())


def test_flush_delivers_what_the_durable_example_spooled(
    installed: Installed, otlp_sink: OtlpSink
) -> None:
    """The durable-export example spools its spans while no collector answers; ``taskmeter
    flush`` of the wheel delivers every one of them to a collector on 127.0.0.1."""
    shutil.copy(ROOT / "examples" / "durable_export.py", installed.home / "durable_export.py")
    down = f"http://127.0.0.1:{closed_port()}"
    args = ("--spool", "spool", "--endpoint", down, "--steps", "5")
    example = installed.run("python", "durable_export.py", *args)
    assert example.returncode == 0, example.stderr
    assert "spans sent: 0, spooled: 6, lost: 0" in example.stdout
    listed = installed.run("taskmeter", "flush", "--list", "spool")
    assert listed.returncode == 1, listed.stderr  # batches wait
    assert "6 span(s)" in listed.stdout
    flushed = installed.run("taskmeter", "flush", "spool", "--otlp-endpoint", otlp_sink.endpoint)
    assert flushed.returncode == 0, flushed.stderr
    assert len({span.span_id for span in otlp_sink.spans()}) == 6


def test_entry_points_load_from_the_wheel(installed: Installed) -> None:
    """The console script, the instrumentor and both exporters load by entry point, from the
    wheel's files."""
    result = installed.run("python", "-c", LOAD_ENTRY_POINTS, *ENTRY_POINTS)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {group: value for group, (value, _) in found.items()} == ENTRY_POINTS
    for _, module_file in found.values():
        assert Path(module_file).is_relative_to(installed.site_packages)


def test_opentelemetry_instrument_runs_the_wheels_instrumentor(installed: Installed) -> None:
    """Under ``opentelemetry-instrument`` (no code change) a plain OpenTelemetry span of the
    application is enriched with taskmeter's figures by the installed instrumentor."""
    (installed.home / "app.py").write_text(INSTRUMENTED_APP)
    instrument = "from opentelemetry.instrumentation.auto_instrumentation import run; run()"
    env = {
        "OTEL_SERVICE_NAME": "packaging",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = installed.run("python", "-c", instrument, "python", "app.py", env=env)
    assert result.returncode == 0, result.stderr
    assert f"taskmeter from {installed.site_packages}" in result.stdout
    assert '"name": "request"' in result.stdout
    assert '"taskmeter.cpu.time"' in result.stdout
