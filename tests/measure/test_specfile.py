"""Metric spec files: TOML, YAML and JSON say the same thing; mistakes are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskmeter.measure import (
    CpuTimingMetric,
    MemoryMetric,
    SpecError,
    TimingMetric,
    load_specs,
)

ENTRIES = [
    {"kind": "timing", "target": "isr.run", "package": "ip_isr", "metric": "IsrTime"},
    {"kind": "CpuTimingMetricTask", "target": "isr.run", "package": "ip_isr", "metric": "Cpu"},
    {
        "kind": "memory",
        "target": "apPipe:ccdProcessor.runDataRef",
        "package": "pipe_tasks",
        "metric": "ProcessCcdMemory",
        "legacy_maxrss_unit": 1,
    },
]
EXPECTED = (
    TimingMetric(target="isr.run", package="ip_isr", metric="IsrTime"),
    CpuTimingMetric(target="isr.run", package="ip_isr", metric="Cpu"),
    MemoryMetric(
        target="apPipe:ccdProcessor.runDataRef", package="pipe_tasks", metric="ProcessCcdMemory"
    ),
)

TOML = """
[[metrics]]
kind = "timing"
target = "isr.run"
package = "ip_isr"
metric = "IsrTime"

[[metrics]]
kind = "CpuTimingMetricTask"
target = "isr.run"
package = "ip_isr"
metric = "Cpu"

[[metrics]]
kind = "memory"
target = "apPipe:ccdProcessor.runDataRef"
package = "pipe_tasks"
metric = "ProcessCcdMemory"
legacy_maxrss_unit = 1
"""


def test_toml_yaml_and_json_give_the_same_specs(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(TOML)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"metrics": ENTRIES}))
    (tmp_path / "m.json").write_text(json.dumps(ENTRIES))
    for name in ("m.toml", "m.yaml", "m.json"):
        specs = load_specs(tmp_path / name)
        assert specs == EXPECTED, name
        memory = specs[2]
        assert isinstance(memory, MemoryMetric) and memory.legacy_maxrss_unit == 1


def test_duplicates_are_dropped_and_empty_files_are_empty(tmp_path: Path) -> None:
    (tmp_path / "dup.json").write_text(json.dumps([ENTRIES[0], ENTRIES[0]]))
    assert load_specs(tmp_path / "dup.json") == EXPECTED[:1]
    (tmp_path / "empty.yaml").write_text("")
    assert load_specs(tmp_path / "empty.yaml") == ()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.toml", "[[metrics]\n", "not valid TOML"),
        ("a.json", "[{]", "not valid JSON"),
        ("a.ini", "", "unknown spec file type"),
        ("a.json", '{"specs": []}', "unknown top-level key"),
        ("a.json", '{"metrics": "isr.run"}', "expected a list"),
        ("a.json", '[{"kind": "speed", "target": "r", "package": "p", "metric": "m"}]', "kind"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p"}]', "missing field"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p", "metric": "m", "x": 1}]',
         "unknown field(s) x"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p", "metric": "m.n"}]',
         "periods"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p", "metric": "m", '
         '"legacy_maxrss_unit": 1}]', "memory metrics only"),
        ("a.json", "[3]", "table of fields"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p", "metric": "m"}, '
         '{"kind": "memory", "target": "r", "package": "p", "metric": "M"}]',
         "metric spec 2: metric p.M is given with units 's'"),
        ("a.json", '[{"kind": "timing", "target": "r", "package": "p", "metric": "m"}, '
         '{"kind": "cpu_timing", "target": "r", "package": "p", "metric": "m"}]',
         "metric spec 2: metric p.m is given as timing (target r) and as cpu_timing"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_and_entry(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SpecError) as raised:
        load_specs(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_specs(tmp_path / "absent.toml")
