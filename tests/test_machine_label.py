"""Where a task's machine label comes from: ``TASKMETER_MACHINE``, else the energy
configuration's ``machine`` (as LensKit records it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from taskmeter import Task, settings
from taskmeter import attributes as attr
from taskmeter.testing import SpanCapture

LENSKIT_TOML = """
machine = "gpu01"

[prometheus]
url = "http://127.0.0.1:1"

[machines.gpu01.power_queries]
system = 'sum(increase(node_energy_joules_total[{elapsed}ms]))'
"""


@pytest.fixture
def energy_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A LensKit-style configuration naming ``gpu01``, named by TASKMETER_ENERGY_CONFIG."""
    path = tmp_path / "lenskit.toml"
    path.write_text(LENSKIT_TOML)
    monkeypatch.delenv(settings.ENV_MACHINE, raising=False)
    monkeypatch.setenv(settings.ENV_ENERGY_CONFIG, str(path))
    settings.reload()
    return path


def test_the_energy_configuration_names_the_machine(
    energy_config: Path, spans: SpanCapture
) -> None:
    """Without TASKMETER_MACHINE, a task and its span get the configuration's machine."""
    with Task("fold") as task:
        pass
    assert task.machine == "gpu01"
    assert task.model_copy().machine == "gpu01"
    attributes = spans.one("fold").attributes
    assert attributes is not None and attributes[attr.MACHINE] == "gpu01"


def test_a_task_with_data_gets_the_configuration_machine_too(energy_config: Path) -> None:
    """The validating constructor (a task given extra data) reads the same label."""
    with Task("fold", n_items=3) as task:
        pass
    assert task.machine == "gpu01"


def test_taskmeter_machine_wins_over_the_configuration(
    energy_config: Path, monkeypatch: pytest.MonkeyPatch, spans: SpanCapture
) -> None:
    monkeypatch.setenv(settings.ENV_MACHINE, "lab-7")
    settings.reload()
    with Task("fold") as task:
        pass
    assert task.machine == "lab-7"
    attributes = spans.one("fold").attributes
    assert attributes is not None and attributes[attr.MACHINE] == "lab-7"


def test_the_configuration_is_read_once_until_reload(energy_config: Path) -> None:
    """The label is cached (it is on the path of every task); ``reload`` reads it again."""
    assert settings.machine() == "gpu01"
    energy_config.write_text(LENSKIT_TOML.replace("gpu01", "gpu02"))
    assert settings.machine() == "gpu01"
    settings.reload()
    assert settings.machine() == "gpu02"


def test_an_explicit_environment_reads_its_own_configuration(energy_config: Path) -> None:
    environ = {settings.ENV_ENERGY_CONFIG: str(energy_config)}
    assert settings.machine(environ) == "gpu01"
    assert settings.machine({**environ, settings.ENV_MACHINE: "lab-7"}) == "lab-7"
    assert settings.machine({}) is None


@pytest.mark.parametrize(
    "content",
    [
        "machine = [",  # not TOML
        "machine = 3",  # not a string
        "[prometheus]\nurl = 'http://127.0.0.1:1'\n",  # no machine
        'machine = "  "',  # blank
    ],
    ids=["invalid", "not-a-string", "absent", "blank"],
)
def test_a_configuration_without_a_usable_machine_gives_no_label_quietly(
    energy_config: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Task creation goes on without a label; the energy probes' detection reports a file
    it cannot use, not the machine label."""
    energy_config.write_text(content)
    with caplog.at_level(logging.WARNING, logger="taskmeter"), Task("fold") as task:
        pass
    assert task.machine is None
    assert [r for r in caplog.records if "machine" in r.getMessage()] == []


def test_a_missing_configuration_gives_no_label(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(settings.ENV_MACHINE, raising=False)
    monkeypatch.setenv(settings.ENV_ENERGY_CONFIG, str(tmp_path / "absent.toml"))
    settings.reload()
    assert Task("fold").machine is None


def test_an_unprintable_configured_machine_is_refused_with_one_warning(
    energy_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    energy_config.write_text('machine = "gpu\\t01"')
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        assert settings.machine() is None
        settings.reload()
        assert settings.machine() is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert settings.ENV_ENERGY_CONFIG in message and "recording no machine label" in message


def test_the_prometheus_probe_queries_for_the_same_machine(energy_config: Path) -> None:
    """The probe's ``{machine}`` and the recorded label agree."""
    from taskmeter.probes.selection import energy_probes, parse_energy_selection

    probes = energy_probes(parse_energy_selection("prometheus"), strict=True)
    (probe,) = [p for p in probes if type(p).__name__ == "PrometheusProbe"]
    assert probe.machine == settings.machine() == "gpu01"
