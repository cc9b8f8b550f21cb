"""Context passed to child processes through the environment (taskmeter.propagation)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from taskmeter import Task, propagation
from taskmeter.propagation import TraceParent, format_traceparent, parse_traceparent
from taskmeter.testing import SpanCapture

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID, (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1)),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", (None, None, 0)),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", (None, None, 1)),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("garbage", None),
    ],
)
def test_parse_traceparent_follows_w3c_rules(
    text: str, expected: tuple[int | None, int | None, int] | None
) -> None:
    """Valid values parse; bad versions, zero ids, upper case and extra fields on 00 do not."""
    parsed = parse_traceparent(text)
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    trace_id, span_id, flags = expected
    if trace_id is not None:
        assert (parsed.trace_id, parsed.span_id) == (trace_id, span_id)
    assert parsed.flags == flags


def test_traceparent_round_trips() -> None:
    """format_traceparent writes what parse_traceparent reads."""
    parent = TraceParent(0x1234, 0x5678, 1)
    assert parse_traceparent(format_traceparent(parent)) == parent
    with pytest.raises(ValueError, match="trace id"):
        TraceParent(0, 1)


def test_child_environment_replaces_an_outer_parent(tmp_path: Path) -> None:
    """A child reports to its nearest parent: outer variables are replaced or dropped."""
    outer = {
        "PATH": "/bin",
        propagation.ENV_PARENT_TASK: str(uuid4()),
        propagation.ENV_TRACESTATE: "a=b",
    }
    parent_id = uuid4()
    env = propagation.child_environment(
        outer, parent_id=parent_id, traceparent=TraceParent(1, 2), subtask_dir=tmp_path
    )
    assert env["PATH"] == "/bin"
    assert env[propagation.ENV_PARENT_TASK] == str(parent_id)
    assert env[propagation.ENV_SUBTASK_DIR] == str(tmp_path)
    assert env[propagation.ENV_TRACEPARENT] == f"00-{1:032x}-{2:016x}-01"
    assert propagation.ENV_TRACESTATE not in env


def test_a_child_in_another_directory_delivers_to_a_relative_subtask_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subtask directory named relative to the parent's working directory (``taskmeter
    run`` with ``TMPDIR=tmp``) reaches a child that runs, or moves, elsewhere."""
    import subprocess
    import sys

    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    env = propagation.child_environment(
        os.environ, parent_id=uuid4(), traceparent=None, subtask_dir="subtasks"
    )
    Path("subtasks").mkdir()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(propagation.__file__).parents[1]), *sys.path])
    child = subprocess.run(
        [sys.executable, "-c", "from taskmeter import Task\nwith Task('child'): pass"],
        cwd=tmp_path / "elsewhere",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert [task.label for task in propagation.collect("subtasks")] == ["child"]


def test_a_relative_subtask_dir_through_a_link_keeps_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``link/..`` is the parent of the link's target to the kernel, not the directory
    that holds the link: the child is given the path with the link kept, so that it
    names the directory the parent collects from."""
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    monkeypatch.chdir(tmp_path)
    env = propagation.child_environment(
        {}, parent_id=uuid4(), traceparent=None, subtask_dir="link/.."
    )
    given = env[propagation.ENV_SUBTASK_DIR]
    assert os.path.isabs(given)
    assert os.path.samefile(given, tmp_path / "real")


@pytest.fixture
def inherited(tmp_path: Path) -> Iterator[propagation.Inherited]:
    """This process behaves as a child of a run whose task id is random."""
    parent = propagation.refresh(
        {
            propagation.ENV_PARENT_TASK: str(uuid4()),
            propagation.ENV_SUBTASK_DIR: str(tmp_path),
            propagation.ENV_TRACEPARENT: VALID,
        }
    )
    assert parent is not None
    try:
        yield parent
    finally:
        propagation.refresh({})


def test_no_variables_no_adoption() -> None:
    """Without the variables nothing is inherited and tasks stay top-level."""
    assert propagation.refresh({}) is None
    with Task("alone") as task:
        pass
    assert task.parent_id is None and task.subprocess is False


def test_malformed_parent_id_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A malformed TASKMETER_PARENT_TASK is reported once and ignored."""
    assert propagation.refresh({propagation.ENV_PARENT_TASK: "not-a-uuid"}) is None
    assert "TASKMETER_PARENT_TASK" in caplog.text


def test_top_level_task_adopts_and_delivers(
    inherited: propagation.Inherited, tmp_path: Path, spans: SpanCapture
) -> None:
    """A top-level task adopts the parent, continues its trace, and is delivered when done."""
    with Task("adopted") as task, Task("nested") as nested:
        pass
    assert task.parent_id == inherited.parent_id
    assert task.subprocess is True
    assert nested.parent_id == task.task_id and nested.subprocess is False
    span = spans.one("adopted")
    assert span.parent is not None
    assert span.parent.span_id == 0x00F067AA0BA902B7
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.attributes is not None
    assert span.attributes["taskmeter.task.subprocess"] is True
    delivered = json.loads((tmp_path / f"{task.task_id}.json").read_text())
    assert delivered["label"] == "adopted"
    assert [t["label"] for t in delivered["subtasks"]] == ["nested"]
    assert not (tmp_path / f"{nested.task_id}.json").exists()


def test_tasks_without_an_sdk_do_not_take_the_runs_span_id(
    inherited: propagation.Inherited, tmp_path: Path
) -> None:
    """A program with no tracer provider under ``taskmeter run`` records no span of its own:
    its tasks are in the run's trace but carry no span id, rather than the run's span's."""
    from opentelemetry import trace

    from taskmeter import use_tracer_provider

    use_tracer_provider(trace.NoOpTracerProvider())
    try:
        with Task("train") as task, Task("epoch") as nested:
            pass
    finally:
        use_tracer_provider(None)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (task.trace_id, task.span_id) == (trace_id, None)
    assert (nested.trace_id, nested.span_id) == (trace_id, None)
    delivered = json.loads((tmp_path / f"{task.task_id}.json").read_text())
    assert delivered["span_id"] is None and delivered["subtasks"][0]["span_id"] is None


def test_task_with_explicit_parent_id_is_not_adopted(
    inherited: propagation.Inherited, tmp_path: Path
) -> None:
    """A task given a parent id of its own keeps it and is not delivered."""
    other = uuid4()
    with Task("mine", parent=other) as task:
        pass
    assert task.parent_id == other and task.subprocess is False
    assert list(tmp_path.glob("*.json")) == []


def test_collect_reads_records_in_start_order_and_skips_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """collect() returns valid records sorted by start time; a corrupt one is skipped, named."""
    for label, start in (("second", 2.0), ("first", 1.0)):
        task = Task.model_validate({"label": label, "start_time": start})
        (tmp_path / f"{task.task_id}.json").write_text(task.model_dump_json())
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / ".partial.json.x.tmp").write_text("{")
    tasks = propagation.collect(tmp_path)
    assert [t.label for t in tasks] == ["first", "second"]
    assert "broken.json" in caplog.text
    assert all(isinstance(t.task_id, UUID) for t in tasks)


def test_delivery_failure_is_counted_not_raised(inherited: propagation.Inherited) -> None:
    """An unwritable subtask directory never breaks the program being measured."""
    from taskmeter import _log

    inherited.subtask_dir = Path("/proc/taskmeter-cannot-write-here")
    with Task("adopted"):
        pass
    assert _log.error_counts["propagation.deliver"] == 1


def test_process_peak_is_published_once_per_new_high_into_the_run_directory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifetime RSS peak goes to the environment's directory (a run's) as an empty
    file whose name holds it, again only when it grows; a pool's directory gets none."""
    from taskmeter._rusage import PROCESS_RSS_PEAK

    run_dir, pool_dir = tmp_path / "run", tmp_path / "pool"
    run_dir.mkdir()
    pool_dir.mkdir()
    monkeypatch.setenv(propagation.ENV_SUBTASK_DIR, str(run_dir))
    monkeypatch.setattr(propagation, "_published_peak", None)
    monkeypatch.setattr(PROCESS_RSS_PEAK, "peak_bytes", 300)
    propagation.publish_process_peak(pool_dir)
    propagation.publish_process_peak(run_dir)
    propagation.publish_process_peak(run_dir)
    monkeypatch.setattr(PROCESS_RSS_PEAK, "peak_bytes", 500)
    propagation.publish_process_peak(run_dir)
    assert list(pool_dir.iterdir()) == []
    pid = os.getpid()
    assert sorted(p.name for p in run_dir.iterdir()) == [
        f"{pid}-300.rss-peak",
        f"{pid}-500.rss-peak",
    ]
    (run_dir / "1-900.json").write_text("{}")  # a task record: not a peak
    (run_dir / "2-x.rss-peak").touch()  # malformed: ignored
    assert propagation.published_process_peak(run_dir) == 500
    assert propagation.published_process_peak(tmp_path / "gone") is None
