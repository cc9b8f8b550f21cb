"""Which sources are used: defaults quietly, named ones loudly, one source per domain."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import taskmeter
from taskmeter import Task
from taskmeter.probes import (
    GpuMemoryProbe,
    NvmlEnergyProbe,
    ProbeUnavailableError,
    PrometheusProbe,
    RaplProbe,
    default_probes,
)
from taskmeter.probes.energy_config import load_energy_config
from taskmeter.probes.nvml import Nvml
from taskmeter.probes.selection import (
    EnergySelection,
    energy_probes,
    parse_energy_selection,
    selection_from_environment,
)
from tests.fakes import LIBRARY_NOT_FOUND, FakeGpu, FakeNvml, FakePowercap, gpu_uuid

CONFIG = """
machine = "lab1"

[prometheus]
url = "http://127.0.0.1:1"
timeout = 0.5
min_duration = 30

[machines.lab1]
description = "a LensKit-style machine entry"

[machines.lab1.power_queries]
system = 'sum(increase(node_energy_joules_total{{machine="{machine}"}}[{elapsed}ms]))'
cpu = 'sum(increase(rapl_joules_total[{elapsed}ms]))'
gpu = 'sum(increase(gpu_joules_total[{elapsed}ms]))'

[machines.other.power_queries]
system = 'other_query'
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "energy.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    tree = FakePowercap(tmp_path / "sys")
    tree.zone("intel-rapl:0", "package-0")
    tree.zone("intel-rapl:0:2", "dram")
    tree.zone("intel-rapl:1", "psys")
    return tree


def gpu_nvml() -> Nvml:
    return Nvml(FakeNvml([FakeGpu(gpu_uuid(0))]), environ={})


def no_nvml() -> Nvml:
    return Nvml(FakeNvml([], init_error=LIBRARY_NOT_FOUND), environ={})


def kinds(probes: list[taskmeter.Probe]) -> list[str]:
    return [type(p).__name__ for p in probes]


@pytest.mark.parametrize(
    ("text", "auto", "named"),
    [
        ("auto", True, set()),
        ("none", False, set()),
        ("OFF", False, set()),
        ("rapl, nvml", False, {"rapl", "nvml"}),
        ("auto,psys", True, {"psys"}),
        ("dram", False, {"dram"}),  # only what was written: RAPL comes along unnamed
    ],
)
def test_parse_selection(text: str, auto: bool, named: set[str]) -> None:
    assert parse_energy_selection(text) == EnergySelection(auto, frozenset(named))


def test_dram_brings_the_packages_along() -> None:
    """``dram`` alone still reads the RAPL packages (DRAM is added to them)."""
    assert parse_energy_selection("dram").wants("rapl")
    assert not parse_energy_selection("nvml").wants("rapl")


@pytest.mark.parametrize(
    ("text", "message"),
    [("rapl,gpu", "unknown energy source"), ("none,rapl", "none"), ("", "empty")],
)
def test_parse_rejects_what_it_does_not_know(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_energy_selection(text)


def test_auto_uses_every_working_source_and_prometheus_for_the_rest(
    powercap: FakePowercap, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAPL takes cpu, NVML gpu; Prometheus keeps only the system query."""
    monkeypatch.delenv("TASKMETER_MACHINE", raising=False)
    probes = energy_probes(
        EnergySelection(), powercap_root=powercap.root, nvml=gpu_nvml(), config_path=config
    )
    assert kinds(probes) == ["RaplProbe", "NvmlEnergyProbe", "GpuMemoryProbe", "PrometheusProbe"]
    rapl, prometheus = probes[0], probes[3]
    assert isinstance(rapl, RaplProbe) and [z.domain for z in rapl.zones] == ["package"]
    assert isinstance(prometheus, PrometheusProbe)
    assert set(prometheus.queries) == {"system"}
    assert prometheus.timeout_s == 0.5 and prometheus.min_duration_s == 30


def test_auto_on_a_bare_machine_adds_nothing(tmp_path: Path) -> None:
    probes = energy_probes(EnergySelection(), powercap_root=tmp_path / "none", nvml=no_nvml())
    assert probes == []


def test_named_sources_dram_and_psys(powercap: FakePowercap) -> None:
    probes = energy_probes(
        parse_energy_selection("dram,psys"), strict=True, powercap_root=powercap.root
    )
    assert kinds(probes) == ["RaplProbe"]
    rapl = probes[0]
    assert isinstance(rapl, RaplProbe)
    assert sorted(z.domain for z in rapl.zones) == ["dram", "package", "psys"]
    assert rapl.energy_domains == {"cpu", "system"}


def test_only_prometheus_named_takes_every_domain_from_it(
    powercap: FakePowercap, config: Path
) -> None:
    probes = energy_probes(
        parse_energy_selection("prometheus"),
        strict=True,
        powercap_root=powercap.root,
        nvml=gpu_nvml(),
        config_path=config,
    )
    assert kinds(probes) == ["PrometheusProbe"]
    assert isinstance(probes[0], PrometheusProbe)
    assert set(probes[0].queries) == {"system", "cpu", "gpu"}


def test_named_source_missing_raises_from_default_probes(tmp_path: Path) -> None:
    with pytest.raises(ProbeUnavailableError, match="'nvml' asked for"):
        energy_probes(parse_energy_selection("nvml"), strict=True, nvml=no_nvml())
    with pytest.raises(ProbeUnavailableError, match="'rapl' asked for"):
        energy_probes(parse_energy_selection("rapl"), strict=True, powercap_root=tmp_path / "none")
    with pytest.raises(ProbeUnavailableError, match="TASKMETER_ENERGY_CONFIG is not set"):
        energy_probes(parse_energy_selection("prometheus"), strict=True, config_path=None)


def test_default_probes_with_energy_argument_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKMETER_ENERGY_CONFIG", raising=False)
    with pytest.raises(ProbeUnavailableError, match="prometheus"):
        default_probes("prometheus")
    assert [p.name for p in default_probes("none")] == ["process"]


def test_named_in_environment_but_missing_is_logged_as_error_and_tasks_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TASKMETER_ENERGY", "prometheus")
    monkeypatch.delenv("TASKMETER_ENERGY_CONFIG", raising=False)
    with caplog.at_level(logging.ERROR, logger="taskmeter"):
        taskmeter.set_probes(default_probes())
        default_probes()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "TASKMETER_ENERGY names prometheus" in errors[0].getMessage()
    with Task("goes on") as task:
        pass
    assert task.cpu_time is not None


def test_missing_rapl_is_reported_as_the_dram_the_user_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """``TASKMETER_ENERGY=dram`` without RAPL: one error, naming dram, never rapl
    (which the user did not write); strict selection raises naming dram too."""
    monkeypatch.setenv("TASKMETER_ENERGY", "dram")
    with caplog.at_level(logging.DEBUG, logger="taskmeter"):
        probes = energy_probes(
            selection_from_environment(), powercap_root=tmp_path / "none", nvml=no_nvml()
        )
    assert probes == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith("TASKMETER_ENERGY names dram, which is unavailable")
    assert "names rapl" not in caplog.text
    with pytest.raises(ProbeUnavailableError, match="'dram' asked for"):
        energy_probes(
            parse_energy_selection("dram"),
            strict=True,
            powercap_root=tmp_path / "none",
            nvml=no_nvml(),
        )


def test_malformed_environment_selection_warns_and_uses_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TASKMETER_ENERGY", "rapl,wattmeter")
    assert selection_from_environment() == EnergySelection()
    assert "ignoring TASKMETER_ENERGY='rapl,wattmeter'" in caplog.text


def test_environment_none_turns_energy_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMETER_ENERGY", "none")
    assert [p.name for p in default_probes()] == ["process"]


def test_config_for_another_machine_is_quiet(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKMETER_MACHINE", "unlisted")
    probes = energy_probes(
        EnergySelection(), powercap_root=tmp_path / "none", nvml=no_nvml(), config_path=config
    )
    assert probes == []


def test_broken_config_named_by_the_environment_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[prometheus\nurl = 1")
    probes = energy_probes(
        EnergySelection(), powercap_root=tmp_path / "none", nvml=no_nvml(), config_path=path
    )
    assert probes == []
    assert "ignoring TASKMETER_ENERGY_CONFIG" in caplog.text and "not valid TOML" in caplog.text


def test_gpu_probes_share_one_nvml_start() -> None:
    fake = FakeNvml([FakeGpu(gpu_uuid(0))])
    nvml = Nvml(fake, environ={})
    probes = energy_probes(parse_energy_selection("nvml"), strict=True, nvml=nvml)
    assert kinds(probes) == ["NvmlEnergyProbe", "GpuMemoryProbe"]
    assert isinstance(probes[0], NvmlEnergyProbe) and isinstance(probes[1], GpuMemoryProbe)
    assert fake.init_calls == 1


# ---------------------------------------------------------------- configuration file


def test_lenskit_layout_is_read_for_the_file_machine(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_energy_config(config)
    assert settings.url == "http://127.0.0.1:1"
    assert settings.machine == "lab1"
    assert set(settings.queries) == {"system", "cpu", "gpu"}
    assert (settings.timeout_s, settings.min_duration_s) == (0.5, 30.0)
    assert settings.missing() is None


def test_machine_argument_wins_over_the_file(config: Path) -> None:
    settings = load_energy_config(config, machine="other")
    assert settings.queries == {"system": "other_query"}


def test_defaults_when_taskmeter_keys_are_absent(tmp_path: Path) -> None:
    path = tmp_path / "lenskit.toml"
    path.write_text('[prometheus]\nurl = "http://p:9090"\n')
    settings = load_energy_config(path, machine="m")
    assert (settings.timeout_s, settings.min_duration_s) == (2.0, 10.0)
    assert settings.missing() == f"no [machines.m.power_queries] in {path}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[prometheus]\nurl = 'p:9090'\n", "prometheus.url must be an http"),
        ("[prometheus]\ntimeout = 0\n", "prometheus.timeout must be positive"),
        ("[prometheus]\nmin_duration = 'long'\n", "prometheus.min_duration must be a number"),
        ("machine = 3\n", "machine must be a string"),
        (
            "machine = 'm'\n[machines.m.power_queries]\nsystem = 'x{job=\"a\"}'\n",
            "machines.m.power_queries: the system query",
        ),
        ("machine = 'm'\n[machines.m.power_queries]\nchassis = 'x'\n", "unknown energy domain"),
        (
            "machine = 'm'\n[machines.m.power_queries]\nsystem = 'x{{i=\"{machine.host}\"}}'\n",
            "the system query .* does not format",
        ),
        (
            "machine = 'm'\n[machines.m.power_queries]\ngpu = 'x[{elapsed[0]}ms]'\n",
            "the gpu query .* does not format",
        ),
        (
            "machine = 'm'\n[machines.m.power_queries]\ncpu = 'x{{i=\"{machine[3]}\"}}'\n",
            "the cpu query .* does not format",
        ),
        ("prometheus = 3\n", "prometheus must be a table"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        load_energy_config(path)
    assert str(path) in str(raised.value)


def test_a_query_that_cannot_format_leaves_the_counters_in_use(
    powercap: FakePowercap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in a Prometheus template (an attribute of the machine label) is a warning
    about the file; RAPL, which needs no file, is still used."""
    path = tmp_path / "typo.toml"
    path.write_text(
        "machine = 'm'\n[prometheus]\nurl = 'http://127.0.0.1:1'\n"
        "[machines.m.power_queries]\nsystem = 'x{{i=\"{machine.host}\"}}'\n"
    )
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        probes = energy_probes(
            parse_energy_selection("auto"),
            powercap_root=powercap.root,
            nvml=no_nvml(),
            config_path=path,
        )
    assert kinds(probes) == ["RaplProbe"]
    assert any(
        str(path) in r.getMessage() and "machine.host" in r.getMessage() for r in caplog.records
    )


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read energy configuration"):
        load_energy_config(tmp_path / "absent.toml")
