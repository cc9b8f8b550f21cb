"""Reading a task file in one pass gives what Task's own validation gives, errors included."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmeter import Task, TaskFileError, _fastload
from taskmeter.taskfile import load_task, parse_task, save_task

from .strategies import task_records


def _general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fastload, "file_validator", lambda: None)


def _outcome(text: str, checked: bool) -> tuple[str, Any, list[str]]:
    messages: list[str] = []
    try:
        task = parse_task(text, "tree.json", mistyped=messages.append if checked else None)
    except TaskFileError as exc:
        return "error", str(exc), messages
    return "task", task, messages


def _typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {name: (type(value), value) for name, value in values.items()}


def assert_same_tree(got: Task, expected: Task) -> None:
    """Same class, field values (and their types), fields set and extra fields, task by task
    (``task_id`` where the record gave one: otherwise a fresh random id)."""
    pairs = [(got, expected)]
    while pairs:
        left, right = pairs.pop()
        assert type(left) is Task and type(right) is Task
        assert left.model_fields_set == right.model_fields_set
        mine = dict(left.__dict__)
        theirs = dict(right.__dict__)
        subtasks = mine.pop("subtasks"), theirs.pop("subtasks")
        if "task_id" not in left.model_fields_set:
            del mine["task_id"], theirs["task_id"]
        assert _typed(mine) == _typed(theirs)
        assert _typed(left.__pydantic_extra__ or {}) == _typed(right.__pydantic_extra__ or {})
        assert type(subtasks[0]) is list and len(subtasks[0]) == len(subtasks[1])
        pairs.extend(zip(*subtasks, strict=True))


@given(task_records(), st.booleans())
def test_one_pass_reads_what_task_validation_reads(document: dict[str, Any], checked: bool) -> None:
    """Any tree of records (mapping subtasks, wrong types, bad figures, missing fields): the
    same tasks, or the same error, and the same report of mistyped values, as Task's own
    validation (``show``'s checked reading and the lax one alike)."""
    text = json.dumps(document)
    got = _outcome(text, checked)
    with pytest.MonkeyPatch.context() as patch:
        _general_path(patch)
        expected = _outcome(text, checked)
    assert got[0] == expected[0], (got, expected)
    assert got[2] == expected[2]
    if got[0] == "error":
        assert got[1] == expected[1]
    else:
        assert_same_tree(got[1], expected[1])


def test_the_one_pass_validator_is_built() -> None:
    """Task's schema has the shape the one-pass validator is built from (if it changed,
    every file would silently take the slower path)."""
    validator = _fastload.file_validator()
    assert validator is not None
    # Built from the stripped schema, not pydantic's prebuilt validator of Task (whose
    # Python step would set pid): the pid left out is not set until the loader marks it.
    read = validator.validate_json('{"label": "a", "subtasks": [{"label": "b"}]}')
    assert type(read) is Task and read.__pydantic_fields_set__ == {"label", "subtasks"}
    assert read.pid is None


def test_a_record_without_pid_reads_as_none_and_set() -> None:
    """A LensKit record (no pid) has ``pid`` None, set, as ``Task.model_validate`` gives it."""
    task = parse_task('{"label": "a", "subtasks": [{"label": "b", "pid": 7}]}')
    assert task.pid is None and "pid" in task.model_fields_set
    assert task.subtasks[0].pid == 7
    assert Task.model_validate({"label": "a"}).model_fields_set == {"label", "pid"}


def test_subtasks_as_a_mapping_still_load() -> None:
    """LensKit's mapping of id to subtask is read as the list of its values."""
    task = parse_task('{"label": "a", "subtasks": {"x": {"label": "b"}, "y": {"label": "c"}}}')
    assert [sub.label for sub in task.subtasks] == ["b", "c"]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_state_is_restored(enabled: bool) -> None:
    """Reading pauses the garbage collector and leaves it as it found it, file valid or not."""
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        parse_task('{"label": "a", "subtasks": [{"label": "b"}]}')
        assert gc.isenabled() is enabled
        with pytest.raises(TaskFileError):
            parse_task('{"label": "a", "peak_memory": 1.5}')
        assert gc.isenabled() is enabled
        with pytest.raises(TaskFileError):
            parse_task('{"label": 3}')
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()


def test_a_loaded_task_starts_and_finishes_like_a_validated_one() -> None:
    """A task read from a file gets its state when first used: it can be started and
    finished (a task never started), as one made by ``model_validate``."""
    task = parse_task('{"label": "loaded"}')
    with task:
        pass
    assert task.status.value == "finished" and task.duration is not None
    again = Task.model_validate({"label": "validated"})
    with again:
        pass
    assert again.status.value == "finished"


def test_a_file_taskmeter_wrote_reads_as_task_validation_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree of 2,000 measured tasks saved by taskmeter (ids, pids, figures, energy
    sources, a failed task): every task, field and fields set as Task's own validation
    reads them, lax and as ``show`` reads it."""
    root = Task("root")
    with root:
        for stage in range(20):
            with Task(f"stage {stage}"):
                for item in range(99):
                    with Task(f"item {item}", energy_sources={"cpu": "rapl"}) as leaf:
                        leaf.cpu_power = 0.5 * item
        with pytest.raises(RuntimeError), Task("broken"):
            raise RuntimeError("boom")
    path = tmp_path / "tree.json"
    save_task(root, path)
    fast = [load_task(path), load_task(path, mistyped=pytest.fail)]
    _general_path(monkeypatch)
    general = [load_task(path), load_task(path, mistyped=pytest.fail)]
    for got, expected in zip(fast, general, strict=True):
        assert sum(1 for _ in got.walk()) == 2 + 20 * 100
        assert_same_tree(got, expected)
        assert got.model_dump_json() == expected.model_dump_json() == root.model_dump_json()
