"""Every parser meets hostile input with its documented error type, never anything else."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from taskmeter import Task, TaskFileError, settings
from taskmeter.export import Batch, SpoolCorruptError, decode_batch, encode_batch
from taskmeter.export.config import sender_for
from taskmeter.export.senders import Sender
from taskmeter.measure import MetadataError, SpecError, load_metadata, load_specs
from taskmeter.measure.specfile import specs_from_data
from taskmeter.probes.energy_config import load_energy_config
from taskmeter.probes.selection import EnergySelection, parse_energy_selection
from taskmeter.propagation import (
    Inherited,
    TraceParent,
    format_traceparent,
    parse_traceparent,
)
from taskmeter.taskfile import dump_task, parse_task

from .strategies import json_values, task_like

# ---------------------------------------------------------------- task files


@given(st.binary(max_size=300))
def test_task_file_bytes(data: bytes) -> None:
    """Any bytes: a task or a TaskFileError."""
    with contextlib.suppress(TaskFileError):
        assert isinstance(parse_task(data), Task)


@given(task_like())
def test_task_file_shapes(document: object) -> None:
    """Task-shaped JSON with values of any type: a task or a TaskFileError naming a field."""
    try:
        text = json.dumps(document)
    except (TypeError, ValueError):
        assume(False)
    try:
        task = parse_task(text, "doc.json")
    except TaskFileError as exc:
        assert str(exc).startswith("doc.json")
    else:
        assert isinstance(task.label, str)


@given(st.integers(min_value=0, max_value=4000))
def test_task_file_depth(depth: int) -> None:
    """Subtasks nested to any depth: a task with every level (past the standard JSON
    parser's limit, about 490 levels, too).

    The text is built as a string: ``json.dumps`` of the nested document recurses
    in C, and from Python 3.12 that stops at a fixed C recursion limit (about 750
    levels of subtasks on 3.12.1) that ``sys.setrecursionlimit`` does not raise.
    """
    text = '{"label":"l","subtasks":[' * depth + '{"label":"leaf"}' + "]}" * depth
    assert sum(1 for _ in parse_task(text).walk()) == depth + 1


@given(st.integers(min_value=0, max_value=127))
def test_every_tree_taskmeter_writes_loads_back(depth: int) -> None:
    """A tree as deep as pydantic can serialize loads back (it parses fewer levels than it
    writes: the loader falls back to the standard parser)."""
    root = Task("root")
    current = root
    for _ in range(depth):
        child = Task("child", parent_id=current.task_id)
        current.subtasks.append(child)
        current = child
    assert sum(1 for _ in parse_task(dump_task(root)).walk()) == depth + 1


def test_a_tree_deeper_than_pydantic_writes_is_written_and_loads_back() -> None:
    """300 levels of subtasks (pydantic's serializer stops at about 127, its validator at
    about 250): written whole, and read back with every task and its figures."""
    root = Task("root")
    current = root
    for level in range(300):
        child = Task(f"child {level}", duration=float(level))
        current.subtasks.append(child)
        current = child
    tasks = [task for _, task in parse_task(dump_task(root)).walk()]
    assert len(tasks) == 301
    assert [task.label for task in tasks[1:]] == [f"child {level}" for level in range(300)]
    assert [task.duration for task in tasks[1:]] == [float(level) for level in range(300)]
    assert tasks[-1].task_id == current.task_id


def test_a_task_among_its_own_subtasks_is_a_clear_error() -> None:
    """A cycle (made by hand) cannot be written: a TaskFileError naming the task."""
    root = Task("root")
    child = Task("child")
    root.subtasks.append(child)
    child.subtasks.append(root)
    with pytest.raises(TaskFileError, match="task 'root' cannot be written"):
        dump_task(root)


def test_huge_task_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from taskmeter.taskfile import load_task

    path = tmp_path / "huge.json"
    path.write_bytes(b" " * 2000)
    with pytest.raises(TaskFileError, match="larger than 1000 bytes"):
        load_task(path, max_bytes=1000)


# ---------------------------------------------------------------- metadata and spec files


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".txt"])
@given(data=st.one_of(st.binary(max_size=200), json_values().map(lambda v: json.dumps(v).encode())))
def test_metadata_files(tmp_path: Path, suffix: str, data: bytes) -> None:
    """Any file: metadata or a MetadataError naming the file."""
    path = _write(tmp_path, "meta" + suffix, data)
    try:
        load_metadata(path)
    except MetadataError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize("depth", [500, 5_000, 50_000])
def test_deep_metadata_files(tmp_path: Path, depth: int) -> None:
    """JSON and YAML nested past any recursion limit: a MetadataError, not a RecursionError."""
    for name in ("deep.json", "deep.yaml"):
        path = _write(tmp_path, name, b'{"a":' * depth + b"1" + b"}" * depth)
        try:
            load_metadata(path)
        except MetadataError as exc:
            assert "nested" in str(exc) or "not valid" in str(exc)


def test_metadata_that_contains_itself_is_a_type_error() -> None:
    from taskmeter.measure import Metadata

    looped: dict[str, object] = {"a": 1}
    looped["self"] = looped
    with pytest.raises(TypeError, match="nested deeper"):
        Metadata(looped)


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json", ".ini"])
@given(data=st.binary(max_size=200))
def test_spec_files_bytes(tmp_path: Path, suffix: str, data: bytes) -> None:
    """Any file: specs or a SpecError naming the file."""
    path = _write(tmp_path, "specs" + suffix, data)
    try:
        load_specs(path)
    except SpecError as exc:
        assert str(path) in str(exc)


@given(json_values())
def test_spec_documents(document: object) -> None:
    """Any parsed document: specs or a SpecError."""
    with contextlib.suppress(SpecError):
        specs_from_data(document)


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["kind", "target", "package", "metric", "legacy_maxrss_unit", "x"]),
            st.one_of(
                st.sampled_from(["timing", "cpu_timing", "memory", "isr.run", "ip_isr", "T"]),
                json_values(),
            ),
            max_size=6,
        ),
        max_size=4,
    )
)
def test_spec_entries(entries: list[dict[str, object]]) -> None:
    """Entries with right and wrong fields of right and wrong types: specs or SpecError."""
    with contextlib.suppress(SpecError):
        specs_from_data({"metrics": entries})


def test_deep_spec_files(tmp_path: Path) -> None:
    for name, data in (
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        ("deep.yaml", b"[" * 100_000 + b"]" * 100_000),
        ("deep.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000),
    ):
        with pytest.raises(SpecError, match=r"nested too deeply|not valid"):
            load_specs(_write(tmp_path, name, data))


@given(st.binary(max_size=300))
def test_energy_config_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """Any TOML file for TASKMETER_ENERGY_CONFIG: settings or a ValueError naming it."""
    path = tmp_path_factory.mktemp("energy") / "lenskit.toml"
    path.write_bytes(data)
    try:
        load_energy_config(path)
    except ValueError as exc:
        assert str(path) in str(exc)


def test_deep_energy_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_energy_config(path)


# ---------------------------------------------------------------- environment settings

env_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["nan", "inf", "-1", "0", "1e-300", "1e309", "0.001", "10", "1 GiB", "yes"]),
)


@given(env_text)
def test_taskmeter_settings_never_raise(text: str) -> None:
    """Every TASKMETER_* value: a usable setting (the default after a warning), never an error."""
    assume("\x00" not in text)
    environ = {
        settings.ENV_MONITOR_INTERVAL: text,
        settings.ENV_DISABLE_TIMER: text,
        settings.ENV_MACHINE: text,
        settings.ENV_SPOOL_MAX_BYTES: text,
        settings.ENV_RECORD_COMMAND: text,
        settings.ENV_SPOOL_DIR: text,
        settings.ENV_ENERGY: text,
    }
    interval = settings.monitor_interval(environ)
    assert settings.MIN_MONITOR_INTERVAL <= interval < float("inf")
    assert isinstance(settings.timers_disabled(environ), bool)
    machine = settings.machine(environ)
    assert machine is None or 0 < len(machine) <= settings.MAX_MACHINE_LABEL
    assert settings.spool_max_bytes(environ) > 0
    assert isinstance(settings.record_command(environ), bool)
    with contextlib.suppress(ValueError):
        assert isinstance(parse_energy_selection(text), EnergySelection)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "OTEL_EXPORTER_OTLP_INSECURE",
            ]
        ),
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(["grpc", "http/protobuf", "http://[::1", "host:1/x", "a=b,c", "%zz"]),
        ),
    )
)
def test_otlp_variables_never_raise(environ: dict[str, str]) -> None:
    """Any OTEL_EXPORTER_OTLP_* values: a sender (defaults after a warning), never an error."""
    sender = sender_for("traces", environ)
    assert isinstance(sender, Sender)
    assert sender.timeout_s > 0
    sender.close()


# ---------------------------------------------------------------- traceparent


@given(st.text(max_size=80))
def test_traceparent_text(text: str) -> None:
    """Any text: a TraceParent or None."""
    parsed = parse_traceparent(text)
    assert parsed is None or isinstance(parsed, TraceParent)


@given(
    st.integers(min_value=1, max_value=2**128 - 1),
    st.integers(min_value=1, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=255),
)
def test_traceparent_round_trip(trace_id: int, span_id: int, flags: int) -> None:
    parent = TraceParent(trace_id, span_id, flags)
    assert parse_traceparent(format_traceparent(parent)) == parent


@given(
    st.dictionaries(
        st.sampled_from(
            ["TASKMETER_PARENT_TASK", "TASKMETER_SUBTASK_DIR", "TRACEPARENT", "TRACESTATE"]
        ),
        st.one_of(
            st.text(max_size=60),
            st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            st.uuids().map(str),
        ),
    )
)
def test_inherited_environment(environ: dict[str, str]) -> None:
    """Any propagation variables: an Inherited parent or None."""
    inherited = Inherited.from_environment(environ)
    assert inherited is None or inherited.parent_id is not None


# ---------------------------------------------------------------- spool files


@given(st.binary(max_size=200))
def test_spool_bytes(data: bytes) -> None:
    """Any bytes: a batch or SpoolCorruptError."""
    with contextlib.suppress(SpoolCorruptError):
        assert isinstance(decode_batch(data), Batch)


@given(
    st.sampled_from(["traces", "metrics", "logs"]),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.binary(max_size=200),
    st.data(),
)
def test_spool_round_trip_and_truncation(
    signal: str, items: int, payload: bytes, data: st.DataObject
) -> None:
    """A batch reads back as written; cut anywhere, it is corrupt, never a different batch."""
    encoded = encode_batch(Batch(signal, items, payload))
    assert decode_batch(encoded) == Batch(signal, items, payload)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(SpoolCorruptError):
        decode_batch(encoded[:cut])
