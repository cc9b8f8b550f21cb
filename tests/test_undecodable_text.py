"""Text holding bytes that are not UTF-8 (lone surrogates, as Python gives undecodable file
names, arguments and environment values): task files are written and spans carry it, such
bytes as ``\\xNN``; the task keeps the program's own string."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from taskmeter import Task, load_task, time_method, time_this
from taskmeter import attributes as attr
from taskmeter._text import valid_text, valid_values
from taskmeter.testing import SpanCapture

CAFE = os.fsdecode(b"caf\xe9.csv")
"""``'caf\\udce9.csv'``: a Latin-1 file name as Python decodes it."""


def written(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def save_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "taskfile.save" in r.getMessage()]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("café", "café"),
        (CAFE, "caf\\xe9.csv"),
        ("a\ud800b", "a\\ud800b"),  # a surrogate that came from no byte
    ],
)
def test_valid_text(text: str, shown: str) -> None:
    assert valid_text(text) == shown


def test_valid_values_reaches_keys_and_nested_values() -> None:
    value = {CAFE: [CAFE, (1, CAFE)], 2: {CAFE}}
    assert valid_values(value) == {
        "caf\\xe9.csv": ["caf\\xe9.csv", [1, "caf\\xe9.csv"]],
        2: ["caf\\xe9.csv"],
    }


def test_a_subtask_label_is_written_escaped_and_the_root_finishes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported case: the file was left as written at start (status running)."""
    path = tmp_path / "s.json"
    with (
        caplog.at_level(logging.WARNING, logger="taskmeter"),
        Task("pipeline", file=path),
        Task("load " + CAFE) as load,
    ):
        pass
    document = written(path)
    assert document["status"] == "finished"
    assert document["subtasks"][0]["label"] == "load caf\\xe9.csv"
    assert load.label == "load " + CAFE  # the task keeps the program's string
    assert save_failures(caplog) == []
    assert load_task(path).subtasks[0].label == "load caf\\xe9.csv"


def test_an_extra_field_is_written_escaped_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sx.json"
    nested = {CAFE: [CAFE]}
    with (
        caplog.at_level(logging.WARNING, logger="taskmeter"),
        Task("x", file=path, path=CAFE, nested=nested, machine=CAFE) as task,
    ):
        pass
    document = written(path)
    assert document["path"] == "caf\\xe9.csv"
    assert document["nested"] == {"caf\\xe9.csv": ["caf\\xe9.csv"]}
    assert document["machine"] == "caf\\xe9.csv"
    assert document["status"] == "finished"
    assert task.path == CAFE and task.nested is nested
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_text_beside_a_value_json_cannot_hold_is_written_escaped(tmp_path: Path) -> None:
    """An extra field pydantic cannot write (bytes that are not UTF-8) takes the other path."""
    path = tmp_path / "both.json"
    with Task("load " + CAFE, file=path, raw=b"\xff", path=CAFE):
        pass
    document = written(path)
    assert (document["label"], document["path"]) == ("load caf\\xe9.csv", "caf\\xe9.csv")
    assert document["raw"] == "b'\\xff'"


def test_a_running_tree_and_a_tree_too_deep_for_pydantic_are_written(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    with Task("root", file=path) as root:
        parent, opened = root, []
        for depth in range(200):
            parent = Task(f"{CAFE} {depth}", parent=parent)
            parent.start()
            opened.append(parent)
        root.save_to_file(path)  # running: the snapshot
        running = written(path)
        for task in reversed(opened):
            task.finish()
    for document in (running, written(path)):
        node = document
        while node["subtasks"]:
            (node,) = node["subtasks"]
        assert node["label"] == "caf\\xe9.csv 199"


def test_task_span_name_and_attributes_are_valid_text(spans: SpanCapture) -> None:
    """What the OTLP exporter encodes: a lone surrogate there drops the whole batch."""
    with Task("load " + CAFE, machine=CAFE):
        pass
    span = spans.one("load caf\\xe9.csv")
    assert (span.attributes or {})[attr.MACHINE] == "caf\\xe9.csv"
    encode_spans([span]).SerializeToString()


def test_a_failure_with_an_undecodable_message_is_recorded_as_valid_text(
    spans: SpanCapture,
) -> None:
    with pytest.raises(ValueError), Task("read"):
        raise ValueError("cannot read " + CAFE)
    span = spans.one("read")
    assert span.status.description == "ValueError: cannot read caf\\xe9.csv"
    (event,) = span.events
    assert "caf\\xe9.csv" in (event.attributes or {})["exception.message"]
    assert "caf\\xe9.csv" in str((event.attributes or {})["exception.stacktrace"])
    encode_spans([span]).SerializeToString()


def test_timer_spans_are_valid_text(spans: SpanCapture) -> None:
    class Loader:
        def getFullName(self) -> str:
            return "load." + CAFE

        @time_method
        def run(self) -> None:
            raise OSError(CAFE)

    with Task("outer " + CAFE):
        with time_this(msg="block " + CAFE):
            pass
        with pytest.raises(OSError):
            Loader().run()
    block = spans.one("block caf\\xe9.csv")
    assert (block.attributes or {})[attr.TASK_LABEL] == "outer caf\\xe9.csv"
    (run,) = [s for s in spans.spans if s.name.endswith("Loader.run")]
    # getFullName gives a dotted path; LSST spells it with colons
    assert (run.attributes or {})[attr.TIMER_TASK] == "load:caf\\xe9:csv"
    assert run.status.description == "OSError: caf\\xe9.csv"
    encode_spans([block, run]).SerializeToString()
