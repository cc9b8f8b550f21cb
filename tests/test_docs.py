"""The README stays true: its commands are CI's, its attribute table is the code's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from taskmeter.attributes import ATTRIBUTE_UNITS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def first_screen_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block, "the README starts with a sh block of commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_first_screen_has_demo_and_test_commands() -> None:
    demo, tests = first_screen_commands()
    assert "examples/quickstart.py" in demo
    assert "pytest" in tests
    assert README.index("```sh") < 1200, "the commands are on the first screen"


def test_ci_runs_the_readme_test_command_exactly() -> None:
    _, tests = first_screen_commands()
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[-1] == tests


def readme_attribute_units() -> dict[str, str]:
    units: dict[str, str] = {}
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                units[name] = cells[1]
    return units


def test_attribute_table_documents_every_attribute_with_its_unit() -> None:
    documented = readme_attribute_units()
    for name, unit in ATTRIBUTE_UNITS.items():
        assert name in documented, f"{name} missing from the README table"
        assert documented[name] == unit, f"{name}: README says {documented[name]!r}"


def test_changelog_has_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog


def test_rapl_permission_glob_covers_every_zone_the_probe_reads() -> None:
    """The README's chmod and tmpfiles globs match every powercap zone RaplProbe reads:
    each control type it knows (intel-rapl, -mmio, -tpmi) and subzones such as DRAM."""
    from fnmatch import fnmatch

    from taskmeter.probes import rapl

    globs = re.findall(r"/sys/class/powercap/(\S+)/energy_uj", README)
    assert len(globs) >= 2, "the README shows the chmod command and the tmpfiles rule"
    zones = [f"{kind}:{index}" for kind in rapl._CONTROL_TYPE_RANK for index in ("0", "0:2")]
    for glob in globs:
        for zone in zones:
            assert fnmatch(zone, glob), f"{glob} misses {zone}"
    assert "/sys/class/powercap/" + globs[0] in rapl.README_FIX


def readme_toml_blocks() -> list[str]:
    return [str(block) for block in re.findall(r"```toml\n(.*?)```", README, re.S)]


def test_readme_metric_spec_file_loads(tmp_path: Path) -> None:
    """The [[metrics]] TOML of the README is a valid TASKMETER_METRIC_SPECS file."""
    from taskmeter.measure import load_specs

    (block,) = [b for b in readme_toml_blocks() if "[[metrics]]" in b]
    path = tmp_path / "metrics.toml"
    path.write_text(block)
    (spec,) = load_specs(path)
    assert spec.target == "apPipe:ccdProcessor.runDataRef"


def test_readme_energy_configuration_loads(tmp_path: Path) -> None:
    """The Prometheus TOML of the README is a valid TASKMETER_ENERGY_CONFIG file, with the
    timeout and minimum duration its comments give."""
    from taskmeter.probes.energy_config import load_energy_config

    (block,) = [b for b in readme_toml_blocks() if "[prometheus]" in b]
    path = tmp_path / "taskmeter.toml"
    path.write_text(block)
    settings = load_energy_config(path, machine=None)
    assert settings.machine == "gpu01" and set(settings.queries) == {"system", "gpu"}
    assert settings.timeout_s == 2.0 and settings.min_duration_s == 10.0


def test_configuration_table_lists_exactly_the_variables_the_code_reads() -> None:
    """Every TASKMETER_* name the package's source spells out is a row of the README's
    Configuration table, and every TASKMETER_* row is read by the package."""
    source = "\n".join(path.read_text() for path in (ROOT / "src" / "taskmeter").rglob("*.py"))
    read = set(re.findall(r"[\"'](TASKMETER_[A-Z_]+)[\"']", source))
    table = README[README.index("## Configuration") : README.index("## Performance")]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(TASKMETER_[A-Z_]+)`", row)}
    assert read == documented, (sorted(read - documented), sorted(documented - read))


PUBLIC_MODULES = (
    "taskmeter",
    "taskmeter.timer",
    "taskmeter.measure",
    "taskmeter.export",
    "taskmeter.testing",
)


def docstring_examples(text: str) -> list[str]:
    """The literal blocks (after a line ending in ``::``) of a docstring, dedented."""
    import textwrap

    blocks: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body: list[str] = []
        for following in lines[index + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip())
    return blocks


def test_public_module_docstring_examples_import_what_they_use() -> None:
    """Each example in a public module's docstring compiles, and its import lines run as a
    user's script would run them (no relative import, no name the module lacks)."""
    import importlib

    checked = 0
    for name in PUBLIC_MODULES:
        doc = importlib.import_module(name).__doc__ or ""
        for example in docstring_examples(doc):
            compile(example, f"<{name} docstring>", "exec")
            imports = "\n".join(
                line for line in example.splitlines() if line.startswith(("from ", "import "))
            )
            result = subprocess.run(
                [sys.executable, "-c", imports],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=Path(__file__).parent,
            )
            assert result.returncode == 0, f"{name}: {imports}\n{result.stderr}"
            checked += 1
    assert checked >= 2, "the export and testing modules show an example each"


def test_report_png_script_draws_the_readme_run(tmp_path: Path) -> None:
    """``docs/report_png.py`` (how docs/report.png is made) runs the README's example
    under ``taskmeter run`` and screenshots its report: a PNG of the script's size, not
    blank; the README shows the image and names the script beside it."""
    from .conftest import require_executable

    require_executable("chromium", "chromium")
    image_module = pytest.importorskip("PIL.Image")
    stat_module = pytest.importorskip("PIL.ImageStat")
    out = tmp_path / "report.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "report_png.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with image_module.open(out) as image:
        assert image.size == (1400, 530)
        assert stat_module.Stat(image.convert("L")).var[0] > 100
    shown = README.index("](docs/report.png)")
    assert "docs/report_png.py" in README[shown - 400 : shown + 400]
