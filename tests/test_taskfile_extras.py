"""Extra fields JSON cannot hold: the task file is still written, each such value in the
JSON form that loses least, and each such field is named once in a warning."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from taskmeter import Task, load_task
from taskmeter._jsonform import json_form
from taskmeter.propagation import write_record

from .cli.runner import taskmeter
from .test_taskfile import _lenskit_task_class


class Scalar:
    """Stands for a NumPy scalar: a plain value through ``item()``."""

    def item(self) -> int:
        return 7


class Array:
    """Stands for a NumPy array: plain lists through ``tolist()``."""

    def tolist(self) -> list[list[float]]:
        return [[1.0, 2.5], [3.0, 4.0]]


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(3)"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def written(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def warnings_about(caplog: pytest.LogCaptureFixture, field: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and f"extra field {field!r}" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("value", "form"),
    [
        (Scalar(), 7),
        (Array(), [[1.0, 2.5], [3.0, 4.0]]),
        (b"caf\xc3\xa9", "café"),
        (b"\xff\x00", "b'\\xff\\x00'"),
        (bytearray(b"ab"), "ab"),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (Opaque(), "Opaque(3)"),
        (BrokenRepr(), "<tests.test_taskfile_extras.BrokenRepr object>"),
        ({"n": Scalar(), 2: [Array()]}, {"n": 7, "2": [[[1.0, 2.5], [3.0, 4.0]]]}),
        ([b"\xff", Scalar()], ["b'\\xff'", 7]),
    ],
    ids=[
        "item",
        "tolist",
        "utf8-bytes",
        "other-bytes",
        "bytearray",
        "set",
        "frozenset",
        "object",
        "broken-repr",
        "nested-mapping",
        "list-of-bytes",
    ],
)
def test_json_form(value: object, form: object) -> None:
    assert json_form(value) == form


def test_a_set_whose_items_do_not_sort_keeps_every_item() -> None:
    assert sorted(json_form({1, "a"}), key=str) == [1, "a"]


def test_a_list_holding_itself_ends() -> None:
    looped: list[object] = []
    looped.append(looped)
    assert isinstance(json.dumps(json_form(looped)), str)


@pytest.mark.parametrize(
    ("value", "form"),
    [
        (Scalar(), 7),
        (Array(), [[1.0, 2.5], [3.0, 4.0]]),
        (b"\xff", "b'\\xff'"),
        ({"b", "a"}, None),  # pydantic writes a set as an array itself
        (Opaque(), "Opaque(3)"),
    ],
    ids=["item", "tolist", "bytes", "set", "object"],
)
def test_the_file_holds_the_json_form_and_the_task_keeps_the_value(
    tmp_path: Path, value: object, form: object
) -> None:
    path = tmp_path / "fold.json"
    with Task("fold", file=path, n_items=value) as task:
        pass
    assert task.n_items is value
    stored = written(path)["n_items"]
    if form is None:
        assert sorted(stored) == sorted(value)  # type: ignore[call-overload]
    else:
        assert stored == form
    assert load_task(path).n_items == stored


def test_every_file_is_written_and_each_field_is_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported case: three folds, three files, one warning for the field."""
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        for i in range(3):
            with Task("fold", file=tmp_path / f"x{i}.json", n_items=Scalar(), name="ok"):
                pass
        with Task("fold", file=tmp_path / "other.json", blob=b"\xff"):
            pass
    assert [written(tmp_path / f"x{i}.json")["n_items"] for i in range(3)] == [7, 7, 7]
    assert written(tmp_path / "other.json")["blob"] == "b'\\xff'"
    (message,) = warnings_about(caplog, "n_items")
    assert "Scalar" in message
    assert len(warnings_about(caplog, "blob")) == 1
    assert warnings_about(caplog, "name") == []
    assert not [r for r in caplog.records if "taskfile.save" in r.getMessage()]


def test_a_running_tree_is_written_with_its_extras_in_json_form(tmp_path: Path) -> None:
    """The running snapshot (its running tasks, and the finished subtasks written as
    records) and the file written as the task starts."""
    path = tmp_path / "run.json"
    with Task("root", file=path, scale=Scalar()) as root:
        assert written(path)["scale"] == 7  # written as it starts
        with Task("done", raw=b"\xff", shape=Array()):
            pass
        with Task("running", obj=Opaque()):
            root.save_to_file(path)
            document = written(path)
    assert document["status"] == "running"
    assert document["scale"] == 7
    done, running = document["subtasks"]
    assert (done["raw"], done["shape"]) == ("b'\\xff'", [[1.0, 2.5], [3.0, 4.0]])
    assert running["obj"] == "Opaque(3)"
    assert written(path)["subtasks"][0]["raw"] == "b'\\xff'"  # the finished file


def test_a_tree_too_deep_for_pydantic_is_written_with_its_extras(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    with Task("root", file=path) as root:
        parent, opened = root, []
        for depth in range(200):
            parent = Task(f"level {depth}", parent=parent, raw=b"\xff", n=Scalar())
            parent.start()
            opened.append(parent)
        for task in reversed(opened):
            task.finish()
    node = written(path)
    while node["subtasks"]:
        (node,) = node["subtasks"]
    assert (node["label"], node["raw"], node["n"]) == ("level 199", "b'\\xff'", 7)


def test_lenskit_and_the_command_line_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fold.json"
    extras: dict[str, Any] = {"n_items": Scalar(), "raw": b"\xff", "tags": {"b", "a"}}
    with Task("fold", file=path, **extras) as task, Task("inner", shape=Array()):
        pass
    LensKitTask = _lenskit_task_class()
    theirs = LensKitTask.model_validate_json(path.read_text())
    assert theirs.task_id == task.task_id
    assert theirs.model_extra["n_items"] == 7
    assert [t.label for t in theirs.subtasks] == ["inner"]
    for verb in (["show"], ["report", "-o", str(tmp_path / "fold.html")]):
        result = taskmeter(*verb, str(path))
        assert result.returncode == 0, result.stderr
        assert "inner" in result.stdout or verb[0] == "report"


def test_a_worker_record_is_written_with_its_extras(tmp_path: Path) -> None:
    """A worker's task record for its parent is a task file too."""
    task = Task("worker", n_items=Scalar(), raw=b"\xff")
    write_record(tmp_path, task)
    stored = written(tmp_path / f"{task.task_id}.json")
    assert (stored["n_items"], stored["raw"]) == (7, "b'\\xff'")


def test_real_numpy_values(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "fold.json"
    values = {
        "n_items": np.int64(10),
        "ratio": np.float32(1.5),
        "flag": np.bool_(True),
        "zero_d": np.array(2.5),
        "matrix": np.arange(6).reshape(2, 3),
        "nested": {"count": np.int32(3), "ids": np.array([1, 2])},
    }
    with Task("fold", file=path, **values) as task:
        pass
    stored = written(path)
    assert stored["n_items"] == 10 and type(stored["n_items"]) is int
    assert stored["ratio"] == 1.5
    assert stored["flag"] is True
    assert stored["zero_d"] == 2.5
    assert stored["matrix"] == [[0, 1, 2], [3, 4, 5]]
    assert stored["nested"] == {"count": 3, "ids": [1, 2]}
    assert task.n_items is values["n_items"]
    LensKitTask = _lenskit_task_class()
    assert LensKitTask.model_validate_json(path.read_text()).model_extra["matrix"] == [
        [0, 1, 2],
        [3, 4, 5],
    ]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (math.inf, None),
        (-math.inf, None),
        (math.nan, None),
        ([1.0, math.inf], [1.0, None]),
        ({"scores": (0.5, math.nan)}, {"scores": [0.5, None]}),
    ],
    ids=["inf", "-inf", "nan", "in-a-list", "in-a-mapping"],
)
def test_a_float_that_is_not_finite_is_written_null_and_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, value: object, stored: object
) -> None:
    path = tmp_path / "np.json"
    with Task("np", ratio=value) as task:
        pass
    with caplog.at_level(logging.WARNING, logger="taskmeter"):
        task.save_to_file(path)
    assert written(path)["ratio"] == stored
    assert task.ratio is value
    (message,) = warnings_about(caplog, "ratio")
    assert "null" in message


def test_finite_floats_raise_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="taskmeter"),
        Task("np", file=tmp_path / "ok.json", ratio=[0.5, 1e300], name="x"),
    ):
        pass
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
