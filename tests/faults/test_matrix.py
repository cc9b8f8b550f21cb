"""Every dependency fails in every way it can; the application never notices, and what could
be measured or sent still is (see ``catalogue.py`` for the table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmeter import TaskStatus, _log

from .catalogue import (
    COMPONENTS,
    EXPECTED,
    FAULTS,
    NOT_APPLICABLE,
    SCENARIOS,
    Scenario,
)


def test_the_table_has_no_hole() -> None:
    """Each component x fault cell is a scenario or says why it cannot happen (not both)."""
    for component in COMPONENTS:
        for fault in FAULTS:
            cell = (component, fault)
            assert (cell in SCENARIOS) != (cell in NOT_APPLICABLE), cell


def _counted(key: str) -> int:
    if key.endswith("."):
        return sum(n for name, n in _log.error_counts.items() if name.startswith(key))
    return _log.error_counts[key]


@pytest.mark.parametrize("case", list(SCENARIOS.values()), ids=[f"{c}-{f}" for c, f in SCENARIOS])
def test_fault(
    case: Scenario,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The application's result is right and its task finished; the fault is counted and
    logged at most once per kind; what survives is what the scenario says."""
    caplog.set_level("WARNING", logger="taskmeter")
    outcome = case.run(tmp_path, monkeypatch)
    assert outcome.result == EXPECTED
    assert outcome.task.status is TaskStatus.FINISHED
    if case.counted is not None:
        assert _counted(case.counted) >= 1, dict(_log.error_counts)
        key_lines = [r for r in caplog.records if r.getMessage().startswith(case.counted)]
        by_key: dict[str, int] = {}
        for record in key_lines:
            key = record.getMessage().split(":", 1)[0]
            by_key[key] = by_key.get(key, 0) + 1
        assert all(n == 1 for n in by_key.values()), by_key  # once per kind, however many
    if case.logged is not None:
        lines = [r.getMessage() for r in caplog.records if case.logged in r.getMessage()]
        assert len(lines) == 1, lines
    case.check(outcome)


def test_tally() -> None:
    """Print how many faults the table injects (for the record), and keep it meaningful."""
    print(f"\n{len(SCENARIOS)} fault scenarios over {len(COMPONENTS)} components")
    assert len(SCENARIOS) >= 40
