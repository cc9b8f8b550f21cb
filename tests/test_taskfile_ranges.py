"""Figures out of range in a task file (``NaN``, infinities, whole numbers beyond a float,
negative durations, CPU times and memory): ``load_task`` reads them as LensKit's model does;
with ``mistyped`` (as ``show`` and ``report`` read) each is absent, the rest of the file is
kept, and one line names the file, the task and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from taskmeter import Task
from taskmeter.taskfile import load_task, parse_task

CHILD_ID = "22d51d69-ea23-4f64-802c-344db148c3e2"


@pytest.mark.parametrize(
    ("content", "field", "value"),
    [
        ('{"label": "x", "duration": 1e400}', "duration", math.inf),
        ('{"label": "x", "cpu_time": -5}', "cpu_time", -5.0),
        ('{"label": "x", "peak_memory": -1}', "peak_memory", -1),
        ('{"label": "x", "start_time": Infinity}', "start_time", math.inf),
        ('{"label": "x", "gpu_power": -Infinity}', "gpu_power", -math.inf),
        ('{"label": "x", "peak_memory": 1' + "0" * 400 + "}", "peak_memory", 10**400),
    ],
)
def test_load_task_reads_out_of_range_figures_as_lenskit_does(
    tmp_path: Path, content: str, field: str, value: float
) -> None:
    """Without ``mistyped``, ``load_task`` gives what ``Task.model_validate_json`` gives
    (LensKit's reading), as it does for values of the wrong type."""
    path = tmp_path / "odd.json"
    path.write_text(content)
    loaded = getattr(load_task(path), field)
    assert loaded == value and type(loaded) is type(value)
    assert getattr(Task.model_validate_json(content), field) == value


def test_load_task_reads_nan_as_lenskit_does() -> None:
    """``NaN`` (which equals nothing) is kept as ``nan`` without ``mistyped``."""
    assert math.isnan(parse_task('{"label": "x", "duration": NaN}').duration or 0.0)


@pytest.mark.parametrize(
    ("content", "field", "shown"),
    [
        ('{"label": "x", "duration": 1e400}', "duration", "Infinity, not a finite number >= 0"),
        ('{"label": "x", "duration": NaN}', "duration", "NaN, not a finite number >= 0"),
        ('{"label": "x", "cpu_time": -5}', "cpu_time", "-5, not a finite number >= 0"),
        ('{"label": "x", "peak_memory": -1}', "peak_memory", "-1, not a finite number >= 0"),
        ('{"label": "x", "peak_memory": NaN}', "peak_memory", "NaN, not a finite number >= 0"),
        ('{"label": "x", "peak_gpu_memory": 1e400}', "peak_gpu_memory", "Infinity, not a"),
        ('{"label": "x", "duration": 1' + "0" * 400 + "}", "duration", "1000000000"),
        ('{"label": "x", "start_time": Infinity}', "start_time", "Infinity, not a finite number"),
        ('{"label": "x", "chassis_power": -Infinity}', "system_power", "-Infinity, not a finite"),
    ],
)
def test_a_figure_out_of_range_is_absent_with_one_line(
    content: str, field: str, shown: str
) -> None:
    """With ``mistyped``: the figure is ``None`` (and not set, as if absent), the other
    values are kept, and one line names the source, the task and the field."""
    messages: list[str] = []
    document = json.loads(content)
    document["status"] = "finished"
    document["cpu_user_time"] = 0.25
    task = parse_task(json.dumps(document), "odd.json", mistyped=messages.append)
    assert getattr(task, field) is None
    assert field not in task.model_fields_set
    assert task.cpu_user_time == 0.25 and task.status.value == "finished"
    (message,) = messages
    assert message.startswith("odd.json: task 'x' (no id): ")
    assert f" is {shown}" in message and message.endswith(": shown as absent")


def test_negative_energy_and_early_start_times_are_in_range() -> None:
    """LensKit's energy comes from a user's Prometheus query, which may be negative; a
    start time before 1970 is a time: kept, no line."""
    messages: list[str] = []
    task = parse_task(
        '{"label": "x", "cpu_power": -3.5, "system_power": -1, "start_time": -1.0}',
        mistyped=messages.append,
    )
    assert (task.cpu_power, task.system_power, task.start_time) == (-3.5, -1.0, -1.0)
    assert messages == []


def user_file() -> dict[str, object]:
    """A root with a negative CPU time, and subtasks with an infinite duration, a negative
    peak memory and a value of the wrong type (as a hand-edited file may have)."""
    return {
        "task_id": "ca7a12af-7d68-4f38-8949-b0a668e8aff4",
        "label": "root",
        "status": "finished",
        "duration": 2.0,
        "cpu_time": -5,
        "subtasks": [
            {"task_id": CHILD_ID, "label": "sleep", "status": "finished", "duration": math.inf},
            {"label": "burn", "status": "finished", "duration": 1.0, "peak_memory": -1},
            {"label": "alloc", "status": "finished", "cpu_time": True, "peak_memory": 4096},
        ],
    }


@pytest.mark.parametrize("one_pass", [True, False])
def test_a_file_with_figures_out_of_range_and_mistyped_values_is_shown(
    tmp_path: Path, one_pass: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad value is absent, every other value kept, and one line for the file counts
    the others of both kinds; the one-pass reader and the general one agree."""
    if not one_pass:
        from taskmeter import _fastload

        monkeypatch.setattr(_fastload, "file_validator", lambda: None)
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(user_file()))
    messages: list[str] = []
    root = load_task(path, mistyped=messages.append)
    sleep, burn, alloc = root.subtasks
    assert (root.duration, root.cpu_time) == (2.0, None)
    assert (sleep.label, sleep.duration) == ("sleep", None)
    assert (burn.duration, burn.peak_memory) == (1.0, None)
    assert (alloc.cpu_time, alloc.peak_memory) == (None, 4096)
    assert messages == [
        f"{path}: task 'root' (id ca7a12af-7d68-4f38-8949-b0a668e8aff4): cpu_time is -5, "
        "not a finite number >= 0: shown as absent "
        "(and 3 more values of the wrong type or out of range)"
    ]


def test_a_subtask_is_named_by_its_label_and_id() -> None:
    """The first bad value in a subtask: the line names that subtask (label and id), not
    only its path from the root."""
    document = user_file()
    document["cpu_time"] = 5.0
    del document["subtasks"][2]  # type: ignore[attr-defined]
    messages: list[str] = []
    parse_task(json.dumps(document), "f.json", mistyped=messages.append)
    assert messages == [
        f"f.json: task 'sleep' (id {CHILD_ID}): subtasks.0.duration is Infinity, not a "
        "finite number >= 0: shown as absent (and 1 more value out of range)"
    ]


def test_a_large_file_with_one_bad_figure_is_read_whole() -> None:
    """One figure out of range among 2,000 tasks: that figure alone is absent."""
    leaves = [{"label": f"item {i}", "duration": 0.5, "cpu_time": 0.25} for i in range(2000)]
    leaves[1234]["cpu_time"] = -0.25
    text = json.dumps({"label": "root", "subtasks": leaves})
    messages: list[str] = []
    root = parse_task(text, "big.json", mistyped=messages.append)
    assert len(root.subtasks) == 2000
    assert [t.cpu_time for t in root.subtasks].count(None) == 1
    assert root.subtasks[1234].cpu_time is None and root.subtasks[1233].cpu_time == 0.25
    assert len(messages) == 1 and "subtasks.1234.cpu_time is -0.25" in messages[0]


def test_a_delivered_record_with_a_bad_figure_is_kept_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``propagation.collect``: a subtask record with a negative CPU time is kept (its other
    figures too), the figure absent, and a warning names the record and the field."""
    from taskmeter import propagation

    record = tmp_path / "worker.json"
    record.write_text('{"label": "w", "status": "finished", "duration": 1.5, "cpu_time": -5}')
    with caplog.at_level("WARNING", logger="taskmeter"):
        (task,) = propagation.collect(tmp_path)
    assert (task.label, task.duration, task.cpu_time) == ("w", 1.5, None)
    assert f"{record}: task 'w' (no id): cpu_time is -5" in caplog.text
