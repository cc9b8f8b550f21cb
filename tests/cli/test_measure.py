"""``taskmeter measure``: Measurements as JSON, clear messages, distinct exit codes."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taskmeter.cli import main
from taskmeter.cli.measure import (
    EXIT_BAD_METADATA,
    EXIT_BAD_SPECS,
    EXIT_NOT_COMPUTED,
    EXIT_OK,
    EXIT_USAGE,
)

METADATA = {
    "scalars": {},
    "arrays": {},
    "metadata": {
        "isr": {
            "scalars": {"__version__": 1, "nodeName": "node-1"},
            "arrays": {
                "runStartUtc": ["2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"],
                "runEndUtc": ["2026-01-01T00:00:10+00:00", "2026-01-01T00:01:30.5+00:00"],
                "runStartCpuTime": [1.0, 12.0],
                "runEndCpuTime": [9.0, 40.25],
                "runEndMaxResidentSetSize": [1000000, 2000000],
            },
            "metadata": {},
        },
        "calibrate": {
            "scalars": {"__version__": 1},
            "arrays": {"runStartCpuTime": [1.0], "runEndCpuTime": ["broken"]},
            "metadata": {},
        },
    },
}


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "isr_metadata.json"
    path.write_text(json.dumps(METADATA))
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    status = main(["measure", *args])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip() else None, err


def test_writes_measurements_as_json(
    metadata_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options give specs; the last call of isr.run is measured for each kind."""
    status, out, err = run(
        [
            str(metadata_file),
            "--timing", "isr.run", "ip_isr.IsrTime",
            "--cpu-timing", "isr.run", "ip_isr.IsrCpuTime",
            "--memory", "isr.run", "ip_isr.IsrMemory",
        ],
        capsys,
    )  # fmt: skip
    assert status == EXIT_OK, err
    assert [(m["metric"], m["value"], m["unit"]) for m in out] == [
        ("ip_isr.IsrTime", 30.5, "s"),
        ("ip_isr.IsrCpuTime", 28.25, "s"),
        ("ip_isr.IsrMemory", 2000000.0, "By"),
    ]
    assert out[0]["extras"] == {
        "start": "2026-01-01T00:01:00+00:00",
        "end": "2026-01-01T00:01:30.5+00:00",
    }
    assert out[0]["notes"]["estimator"] == "utils.timer.timeMethod"


def test_spec_file_and_no_work_found(
    metadata_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec file works like the options; a target that did not run is reported, not emitted."""
    specs = tmp_path / "metrics.yaml"
    specs.write_text(
        "metrics:\n"
        "  - {kind: cpu_timing, target: isr.run, package: ip_isr, metric: IsrCpuTime}\n"
        "  - {kind: timing, target: characterize.run, package: pipe_tasks, metric: CharTime}\n"
    )
    status, out, err = run([str(metadata_file), "--specs", str(specs)], capsys)
    assert status == EXIT_OK
    assert [m["metric"] for m in out] == ["ip_isr.IsrCpuTime"]
    assert "no work found for pipe_tasks.CharTime" in err


def test_legacy_maxrss_unit_applies_to_memory_specs_from_files_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--legacy-maxrss-unit`` describes the metadata: memory metrics of a spec file get
    it as those of ``--memory`` do (200 units of 1 byte each, not of the platform's KiB)."""
    legacy = tmp_path / "legacy.json"  # no __version__: ru_maxrss in the writer's unit
    legacy.write_text(
        json.dumps({"isr.runStartMaxResidentSetSize": [100], "isr.runEndMaxResidentSetSize": [200]})
    )
    specs = tmp_path / "metrics.toml"
    specs.write_text(
        '[[metrics]]\nkind = "memory"\ntarget = "isr.run"\n'
        'package = "ip_isr"\nmetric = "IsrMemory"\n'
    )
    options = ["--memory", "isr.run", "ip_isr.CliMemory", "--specs", str(specs)]
    status, out, _ = run([str(legacy), *options, "--legacy-maxrss-unit", "1"], capsys)
    assert status == EXIT_OK
    assert {m["metric"]: m["value"] for m in out} == {
        "ip_isr.CliMemory": 200.0,
        "ip_isr.IsrMemory": 200.0,
    }


@pytest.mark.parametrize("value", ["0", "-3"])
def test_legacy_maxrss_unit_must_be_positive_even_without_memory_specs(
    metadata_file: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """A nonsensical unit is a usage error whatever the specs are, not silently unused."""
    status, out, err = run(
        [str(metadata_file), "--timing", "isr.run", "a.b", "--legacy-maxrss-unit", value],
        capsys,
    )
    assert status == EXIT_USAGE
    assert out is None
    assert f"--legacy-maxrss-unit must be a positive number of bytes, not {value}" in err


def test_uncomputable_metric_has_its_own_exit_code(
    metadata_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value fails that metric only: the others are written, the status says so."""
    status, out, err = run(
        [str(metadata_file), "--cpu-timing", "calibrate.run", "p.Cal",
         "--cpu-timing", "isr.run", "p.Isr"],
        capsys,
    )  # fmt: skip
    assert status == EXIT_NOT_COMPUTED
    assert [m["metric"] for m in out] == ["p.Isr"]
    assert "cannot compute p.Cal" in err and "'broken'" in err


def test_overflowing_metrics_fail_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CPU time or a legacy-unit size that overflows fails that metric only, with
    the failed-metric status: the wall time is still written."""
    path = tmp_path / "overflow.json"
    path.write_text(
        json.dumps(
            {
                "isr": {
                    "runStartCpuTime": [-1e308],
                    "runEndCpuTime": [1.7e308],
                    "runEndMaxResidentSetSize": [1e308],
                    "runStartUtc": ["2020-01-01T00:00:00+00:00"],
                    "runEndUtc": ["2020-01-01T00:00:02+00:00"],
                }
            }
        )
    )
    status, out, err = run(
        [str(path), "--timing", "isr.run", "a.wall", "--cpu-timing", "isr.run", "a.cpu",
         "--memory", "isr.run", "a.mem", "--legacy-maxrss-unit", "1024"],
        capsys,
    )  # fmt: skip
    assert status == EXIT_NOT_COMPUTED
    assert [(m["metric"], m["value"]) for m in out] == [("a.wall", 2.0)]
    assert "cannot compute a.cpu: isr.runEndCpuTime - isr.runStartCpuTime" in err
    assert "cannot compute a.mem: isr.runEndMaxResidentSetSize" in err


def test_unquoted_yaml_timestamps_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML reads an unquoted timestamp as a datetime: measured as the time it is."""
    path = tmp_path / "dt.yaml"
    path.write_text(
        "isr:\n  runStartUtc: [2020-01-01T00:00:00+00:00]\n"
        "  runEndUtc: [2020-01-01T00:00:01.25+00:00]\n"
    )
    status, out, err = run([str(path), "--timing", "isr.run", "a.b"], capsys)
    assert (status, err) == (EXIT_OK, "")
    ((measured,),) = [out]
    assert measured["value"] == 1.25
    assert measured["extras"] == {
        "start": "2020-01-01T00:00:00+00:00",
        "end": "2020-01-01T00:00:01.250000+00:00",
    }


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("{not json", "bad.json", "not valid JSON"),
        ("[1, 2]", "list.json", "expected a mapping"),
        ("a: [", "bad.yaml", "not valid YAML"),
    ],
)
def test_bad_metadata_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    status, out, err = run([str(path), "--timing", "isr.run", "p.m"], capsys)
    assert status == EXIT_BAD_METADATA
    assert out is None
    assert message in err and name in err


def test_missing_metadata_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is named once, plainly (not ``cannot read: [Errno 2] ...``)."""
    absent = tmp_path / "absent.json"
    status, _, err = run([str(absent), "--timing", "isr.run", "p.m"], capsys)
    assert status == EXIT_BAD_METADATA
    assert err == f"taskmeter: error: no such metadata file: {absent}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timing", "isr.run", "IsrTime"], "PACKAGE.METRIC"),
        (["--timing", "isr run", "p.m"], "target"),
        (["--memory", "isr.run", "p.a.b"], "periods"),
    ],
)
def test_bad_spec_options(
    metadata_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status, out, err = run([str(metadata_file), *args], capsys)
    assert status == EXIT_BAD_SPECS
    assert out is None and message in err


def test_bad_spec_file(
    metadata_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "metrics.toml"
    specs.write_text('[[metrics]]\nkind = "timing"\ntarget = "isr.run"\npackage = "p"\n')
    status, _, err = run([str(metadata_file), "--specs", str(specs)], capsys)
    assert status == EXIT_BAD_SPECS
    assert "metrics.toml: metric spec 1: missing field(s) metric" in err


def test_no_specs_is_a_usage_error(metadata_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run([str(metadata_file)], capsys)
    assert status == EXIT_USAGE and "no metric specs" in err


def test_console_script_writes_output_file(metadata_file: Path, tmp_path: Path) -> None:
    """The installed entry point runs the verb and writes -o."""
    out = tmp_path / "measurements.json"
    result = subprocess.run(
        [sys.executable, "-m", "taskmeter", "measure", str(metadata_file),
         "--memory", "isr.run", "ip_isr.IsrMemory", "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(out.read_text())[0]["value"] == 2000000.0


ROOT = Path(__file__).resolve().parents[2]


def readme_measure_commands() -> list[list[str]]:
    """The commands of the README's "From the shell" block for ``taskmeter measure``."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*From the shell\.\*\*.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README shows taskmeter measure in a sh block"
    text = block.group(1).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def test_readme_measure_command_measures_the_example_pipeline(tmp_path: Path) -> None:
    """The README's commands, run as written: every metric is measured, none is missing."""
    commands = readme_measure_commands()
    assert [words[0] for words in commands] == ["python", "taskmeter"]
    for words in commands:
        program, *args = words
        if program == "python":
            line = [sys.executable, str(ROOT / args[0]), *args[1:], "--pixels", "20000"]
        else:
            line = [sys.executable, "-m", "taskmeter", *args]
        result = subprocess.run(line, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == EXIT_OK, result.stderr
    assert "no work found" not in result.stderr
    metrics = [measurement["metric"] for measurement in json.loads(result.stdout)]
    assert metrics == ["pipe_tasks.ProcessCcdTime", "ip_isr.IsrCpuTime", "ip_isr.IsrMemory"]


@pytest.mark.parametrize("link", ["same path", "symbolic link", "hard link"])
def test_output_that_is_the_metadata_file_is_refused(
    metadata_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    """``-o`` naming the metadata file (itself, or by a symbolic or hard link): a usage
    error in one line, as ``taskmeter report`` says of its task file; the file is kept."""
    before = metadata_file.read_bytes()
    output = tmp_path / "measurements.json"
    if link == "same path":
        output = metadata_file
    elif link == "symbolic link":
        output.symlink_to(metadata_file)
    else:
        output.hardlink_to(metadata_file)
    status, out, err = run(
        [str(metadata_file), "--timing", "isr.run", "ip_isr.IsrTime", "-o", str(output)], capsys
    )
    assert status == EXIT_USAGE
    assert out is None
    assert f"-o {output} is the metadata file itself" in err
    assert err.count("\n") == 1
    assert metadata_file.read_bytes() == before


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "a file there"])
def test_output_written_as_a_directory_is_refused(
    metadata_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], exists: bool
) -> None:
    """``-o out/``: refused as a directory, in one line, and no file named ``out``
    written or replaced (``Path("out/")`` is ``out``)."""
    target = tmp_path / "out"
    if exists:
        target.write_text("kept")
    status, out, err = run(
        [str(metadata_file), "--timing", "isr.run", "ip_isr.IsrTime", "-o", f"{target}/"],
        capsys,
    )
    assert status == EXIT_USAGE
    assert out is None
    assert err == f"taskmeter: error: cannot write {target}/: Is a directory\n"
    assert target.exists() == exists
    if exists:
        assert target.read_text() == "kept"


# ---------------------------------------------------------------- "-": standard input

YAML_METADATA = """\
isr:
  runStartCpuTime: [1.0, 12.0]
  runEndCpuTime: [9.0, 40.25]
"""


def run_with_stdin(
    data: bytes,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, Any, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    return run(args, capsys)


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_dash_reads_the_metadata_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """``-`` is standard input, as for most tools: JSON, or YAML when it is not JSON."""
    data = json.dumps(METADATA) if form == "json" else YAML_METADATA
    status, out, err = run_with_stdin(
        data.encode(), ["-", "--cpu-timing", "isr.run", "ip_isr.IsrCpuTime"], capsys, monkeypatch
    )
    assert status == EXIT_OK, err
    assert [(m["metric"], m["value"]) for m in out] == [("ip_isr.IsrCpuTime", 28.25)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "taskmeter: error: standard input is empty: no task metadata\n"),
        (b" \n\t\n", "taskmeter: error: standard input is empty: no task metadata\n"),
        (b"[1, 2]", "taskmeter: error: bad metadata: standard input: expected a mapping"),
        (b"\xff\xfe", "taskmeter: error: bad metadata: standard input: not UTF-8 text"),
        (b"{not json", "standard input: not valid JSON (Expecting property name"),
        (b"{not json", "and not valid YAML"),
    ],
)
def test_bad_metadata_on_standard_input_is_said_with_the_unreadable_file_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: bytes, message: str
) -> None:
    """What standard input holds, when it is not metadata, is reported as a bad file is
    (status 3), naming standard input; text that is neither JSON nor YAML says both."""
    status, out, err = run_with_stdin(
        data, ["-", "--timing", "isr.run", "p.m"], capsys, monkeypatch
    )
    assert status == EXIT_BAD_METADATA
    assert out is None
    assert message in err


def test_a_file_named_dash_is_read_as_dot_slash_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``./-`` is the file called ``-``, not standard input."""
    (tmp_path / "-").write_text(json.dumps(METADATA))
    monkeypatch.chdir(tmp_path)
    status, out, err = run_with_stdin(
        b"", ["./-", "--cpu-timing", "isr.run", "ip_isr.IsrCpuTime"], capsys, monkeypatch
    )
    assert status == EXIT_OK, err
    assert out[0]["value"] == 28.25


def _measure_process(
    args: list[str], stdin: Any, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskmeter", "measure", *args],
        stdin=stdin, capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip


def test_dash_reads_a_pipe_in_the_console_script() -> None:
    """``echo ... | taskmeter measure - ...`` measures what the pipe holds."""
    result = subprocess.run(
        [sys.executable, "-m", "taskmeter", "measure", "-", "--memory", "isr.run", "p.Mem"],
        input=json.dumps(METADATA), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(result.stdout)[0]["value"] == 2000000.0


def test_output_that_is_the_file_standard_input_reads_is_refused(
    metadata_file: Path, tmp_path: Path
) -> None:
    """``measure - -o meta.json < meta.json`` would replace the metadata: a usage error,
    as when the file is named; the file is kept."""
    before = metadata_file.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(metadata_file)
    for output in (metadata_file, link):
        with metadata_file.open("rb") as stdin:
            result = _measure_process(
                ["-", "--timing", "isr.run", "ip_isr.IsrTime", "-o", str(output)], stdin
            )
        assert result.returncode == EXIT_USAGE
        assert result.stderr == (
            f"taskmeter: error: -o {output} is the metadata file itself (standard input): "
            "the measurements would replace it; give another path\n"
        )
        assert metadata_file.read_bytes() == before


def test_output_beside_a_redirected_standard_input_is_written(
    metadata_file: Path, tmp_path: Path
) -> None:
    """Another output than the file standard input reads is written as usual."""
    output = tmp_path / "measurements.json"
    with metadata_file.open("rb") as stdin:
        result = _measure_process(
            ["-", "--timing", "isr.run", "ip_isr.IsrTime", "-o", str(output)], stdin
        )
    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(output.read_text())[0]["metric"] == "ip_isr.IsrTime"


def test_closed_standard_input_is_said_plainly() -> None:
    """``taskmeter measure - <&-``: status 3 and one line, not a traceback."""
    command = f"{shlex.quote(sys.executable)} -m taskmeter measure - --timing isr.run p.m <&-"
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_METADATA
    assert result.stderr == "taskmeter: error: cannot read the metadata: standard input is closed\n"


def test_output_dash_is_standard_output_and_dot_slash_dash_a_file(
    metadata_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``-o -`` writes to standard output, as ``report -o -`` does; ``-o ./-`` is a file."""
    monkeypatch.chdir(tmp_path)
    spec = ["--timing", "isr.run", "ip_isr.IsrTime"]
    status, out, err = run([str(metadata_file), *spec, "-o", "-"], capsys)
    assert status == EXIT_OK, err
    assert [m["value"] for m in out] == [30.5]
    assert not (tmp_path / "-").exists()
    status, out, err = run([str(metadata_file), *spec, "-o", "./-"], capsys)
    assert status == EXIT_OK, err
    assert out is None
    assert [m["value"] for m in json.loads((tmp_path / "-").read_text())] == [30.5]


def test_output_file_is_replaced_atomically(
    metadata_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The measurements go to a new file renamed over the old one: a reader of the old
    one (here, a hard link to it) never sees it half rewritten."""
    import os

    output = tmp_path / "measurements.json"
    output.write_text("old\n")
    kept = tmp_path / "kept.json"
    os.link(output, kept)
    status, _, err = run(
        [str(metadata_file), "--timing", "isr.run", "ip_isr.IsrTime", "-o", str(output)], capsys
    )
    assert status == EXIT_OK, err
    assert kept.read_text() == "old\n"
    assert [m["value"] for m in json.loads(output.read_text())] == [30.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [metadata_file.name, "measurements.json", "kept.json"]
    )


def test_output_to_the_terminal_standard_input_reads_is_written(metadata_file: Path) -> None:
    """``measure - -o /dev/stdout`` typed at a terminal: standard input and the output are
    the same terminal, which is written through, not replaced: not refused."""
    import os
    import select

    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "taskmeter", "measure", "-"),
                *("--timing", "isr.run", "ip_isr.IsrTime", "-o", os.ttyname(slave)),
            ],
            stdin=slave,
            stderr=subprocess.PIPE,
        )
        os.write(master, metadata_file.read_bytes().replace(b"\n", b" ") + b"\n\x04")
        _, stderr = process.communicate(timeout=60)
        received = b""
        while select.select([master], [], [], 0.5)[0]:
            received += os.read(master, 1 << 16)
    finally:
        os.close(master)
        os.close(slave)
    assert process.returncode == EXIT_OK, stderr
    assert b'"ip_isr.IsrTime"' in received
