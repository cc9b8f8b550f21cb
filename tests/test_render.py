"""The task tree as text: one safe, aligned row per task."""

from __future__ import annotations

import pytest

from taskmeter import Task, format_tree
from taskmeter.formats import friendly_bytes, friendly_energy, friendly_seconds
from taskmeter.render import (
    LABEL_COLUMNS,
    EnergyTotal,
    display_width,
    energy_total,
    table_label,
    terminal_text,
    tree_energy_domains,
)

from .cli.trees import GPU_LOST_IN_B, NO_GPU, WITH_SYSTEM, energy_siblings


def test_terminal_text_escapes_controls_and_keeps_the_rest() -> None:
    """Controls, separators and format characters are escaped; letters, marks and joiners
    of any script are kept as they are."""
    assert terminal_text("a\x1b[31mb\n\t\x7f\x9b") == r"a\x1b[31mb\n\t\x7f\x9b"
    assert terminal_text("x\u2028y\u202ez\u200b") == r"x\u2028y\u202ez\u200b"
    kept = "épreuve 日本 👨\u200d👩 back\\slash"
    assert terminal_text(kept) == kept


def test_display_width_counts_wide_and_combining_characters() -> None:
    assert display_width("abc") == 3
    assert display_width("日本語") == 6
    assert display_width("e\u0301") == 1


def test_format_tree_rows_are_one_line_each_and_aligned() -> None:
    """A label with a line break stays on its row; a wide label does not shift the columns."""
    with Task("root") as root:
        with Task("two\nlines"):
            pass
        with Task("日本語"):
            pass
    lines = format_tree(root).splitlines()
    assert len(lines) == 4
    assert r"two\nlines" in lines[2]
    ends = {display_width(line[: line.index("finished") + 8]) for line in lines[1:]}
    assert len(ends) == 1


def test_format_tree_max_rows_keeps_the_first_tasks_depth_first() -> None:
    """``max_rows`` keeps the first tasks in tree order; ``max_depth`` applies first."""
    with Task("root") as root:
        for outer in range(3):
            with Task(f"group {outer}"):
                for inner in range(3):
                    with Task(f"item {outer}.{inner}"):
                        pass

    def labels(text: str) -> list[str]:
        return [line.strip().split("  ")[0] for line in text.splitlines()[1:]]

    assert labels(format_tree(root, max_rows=4)) == ["root", "group 0", "item 0.0", "item 0.1"]
    assert labels(format_tree(root, max_depth=1, max_rows=3)) == ["root", "group 0", "group 1"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.9994, "999ms"),
        (0.9996, "1.00s"),
        (59.994, "59.99s"),
        (59.999, "1m0.00s"),
        (60, "1m0.00s"),
        (60.5, "1m0.50s"),
        (119.994, "1m59.99s"),
        (119.999, "2m0.00s"),
        (3599.994, "59m59.99s"),
        (3599.9999, "1h0m0.00s"),
        (3600, "1h0m0.00s"),
        (7199.999, "2h0m0.00s"),
        (35_999_999.99, "9999h59m59.99s"),
        (35_999_999.996, "1.00e+04h"),  # 10,000 h once rounded: compact from there
        (1e308, "2.78e+304h"),
        (None, "-"),
    ],
)
def test_table_durations_round_before_choosing_the_unit(seconds: float | None, text: str) -> None:
    """A duration just under a unit is shown in the next one, not as ``1000ms`` or
    ``1m60.00s``, and a whole minute or hour is written in that unit, not as
    ``60.00s`` or ``60m0.00s`` (the table's durations are rounded to what they show,
    where LensKit's ``friendly_duration`` has strict boundaries); from 10,000
    hours on, hours in scientific notation keep the cell short."""
    assert friendly_seconds(seconds) == text


def test_a_peak_known_only_as_a_bound_is_shown_as_one() -> None:
    """``taskmeter run`` records ``peak_memory_at_most`` where the command's own peak is
    hidden by taskmeter's size at exec: the tree shows ``<= X``, as the run's summary does,
    not ``-``; a measured peak is shown as it is, and a bad bound as unknown."""
    bounded = Task.model_validate(
        {"label": "bounded", "peak_memory": None, "peak_memory_at_most": 25_784_320}
    )
    measured = Task.model_validate({"label": "measured", "peak_memory": 3 * 1024**2})
    bad = Task.model_validate({"label": "bad", "peak_memory_at_most": "lots"})
    assert "<= 24.6 MiB" in format_tree(bounded)
    assert "3.0 MiB" in format_tree(measured) and "<=" not in format_tree(measured)
    assert "<=" not in format_tree(bad)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1023.5, "1.0 KiB"),
        (1024, "1.0 KiB"),
        (1280, "1.2 KiB"),
        (1048575, "1.0 MiB"),
        (1048576, "1.0 MiB"),
        (1024 * 1023.94, "1023.9 KiB"),
        (2**30 - 1, "1.0 GiB"),
        (2**40 - 1, "1.0 TiB"),
        (2**50 - 1, "1.0 PiB"),
        (2**60, "1.15e+18 B"),  # past the largest unit: scientific
        (None, "-"),
    ],
)
def test_byte_counts_round_before_choosing_the_unit(count: float | None, text: str) -> None:
    """A count just under a unit is shown in that unit (1048575 bytes: ``1.0 MiB``, not
    ``1024.0 KiB``); PiB is the largest: from 1024 PiB on, bytes in scientific notation."""
    assert friendly_bytes(count) == text


@pytest.mark.parametrize(
    ("joules", "text"),
    [
        (0.25, "0.2 J"),
        (999.94, "999.9 J"),
        (999.95, "1.0 kJ"),
        (999.96, "1.0 kJ"),
        (1000, "1.0 kJ"),
        (999_949, "999.9 kJ"),
        (999_950, "1.0 MJ"),
        (2.5e9, "2.50e+09 J"),  # past the largest unit: scientific
        (None, "-"),
    ],
)
def test_energies_round_before_choosing_the_unit(joules: float | None, text: str) -> None:
    """An energy just under a unit is shown in that unit (999.96 J: ``1.0 kJ``, not
    ``1000.0 J``); MJ is the largest."""
    assert friendly_energy(joules) == text


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("epoch 3", "epoch 3"),
        ("x" * LABEL_COLUMNS, "x" * LABEL_COLUMNS),
        ("x" * (LABEL_COLUMNS + 1), "x" * (LABEL_COLUMNS - 1) + "…"),
        ("語" * LABEL_COLUMNS, "語" * (LABEL_COLUMNS // 2 - 1) + "…"),
        ("a\nb" * LABEL_COLUMNS, ("a\\nb" * LABEL_COLUMNS)[: LABEL_COLUMNS - 1] + "…"),
    ],
)
def test_table_label_is_cut_to_the_column_limit_by_display_width(label: str, shown: str) -> None:
    """Labels up to LABEL_COLUMNS terminal columns stay whole; longer ones are cut, wide
    characters counting two, escapes counted as printed, and end in an ellipsis."""
    assert table_label(label) == shown
    assert display_width(table_label(label)) <= LABEL_COLUMNS


def test_format_tree_cuts_a_huge_label() -> None:
    """The tree taskmeter run prints stays readable with a label of 100,000 characters."""
    with Task("root") as root, Task("y" * 100_000):
        pass
    lines = format_tree(root).splitlines()
    assert all(display_width(line) < LABEL_COLUMNS + 60 for line in lines)
    assert lines[2].startswith("  yyy") and "…" in lines[2]


def energy_cells(table: str) -> dict[str, str]:
    """Each task row's label and energy cell (the last column)."""
    rows = table.splitlines()[1:4]
    return {row.split()[0]: row.rsplit("  ", 1)[-1].strip() for row in rows}


def test_energy_lacking_a_domain_its_siblings_have_is_marked_partial() -> None:
    """A task whose GPU could not be read shows its CPU energy marked ``*`` and explained
    under the table, not as a total beside siblings that include the GPU."""
    table = format_tree(GPU_LOST_IN_B)
    assert energy_cells(table) == {"root": "1.2 kJ", "a": "600.0 J", "b": "100.0 J*"}
    assert table.splitlines()[-1] == "* partial energy: lacks the GPU energy other tasks have"


def test_energy_of_a_tree_without_any_gpu_figure_is_whole() -> None:
    """On a machine without a GPU every CPU figure is the whole: no mark, no note."""
    table = format_tree(NO_GPU)
    assert energy_cells(table) == {"root": "200.0 J", "a": "100.0 J", "b": "100.0 J"}
    assert "*" not in table and "partial" not in table


def test_energy_is_the_system_figure_where_there_is_one() -> None:
    """System energy is the whole: shown as it is, even for a task without a GPU figure."""
    table = format_tree(WITH_SYSTEM)
    assert energy_cells(table) == {"root": "1.5 kJ", "a": "700.0 J", "b": "800.0 J"}
    assert "*" not in table


def test_energy_lacking_the_system_figure_others_have_is_partial() -> None:
    """CPU + GPU beside tasks whose system energy was measured is not the same figure."""
    root = energy_siblings(
        {"cpu_power": 100.0, "system_power": 700.0}, {"cpu_power": 100.0}, {"system_power": 1.0}
    )
    assert energy_total(root.subtasks[1], tree_energy_domains(root)) == EnergyTotal(
        100.0, ("system",)
    )
    assert format_tree(root).endswith("lacks the system energy other tasks have")


def test_format_tree_writes_a_figure_that_is_not_a_number_as_unknown() -> None:
    """A record whose duration or CPU time is not a finite number (read from a file that
    holds one) shows ``-``, as ``taskmeter show`` and the report do, not ``nanms``."""
    record = Task.model_validate(
        {"label": "odd", "status": "finished", "duration": float("nan"), "cpu_time": float("inf")}
    )
    row = format_tree(record).splitlines()[1].split()
    assert row[:4] == ["odd", "finished", "-", "-"]
