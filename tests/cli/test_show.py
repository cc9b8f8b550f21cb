"""``taskmeter show``: the table, the filters, JSON for scripts, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmeter import Task, TaskStatus

from .runner import taskmeter
from .trees import GPU_LOST_IN_B, NO_GPU, WITH_SYSTEM


def tree_file(tmp_path: Path) -> Path:
    """A finished tree: pipeline > load, train > epoch 1..3 (epoch 3 failed), evaluate."""
    with Task("pipeline") as root:
        with Task("load data"):
            pass
        with Task("train model"):
            for epoch in (1, 2, 3):
                task = Task(f"epoch {epoch}")
                task.start()
                task.finish(TaskStatus.FAILED if epoch == 3 else TaskStatus.FINISHED)
        with Task("evaluate"):
            pass
    path = tmp_path / "tree.json"
    path.write_text(root.model_dump_json())
    return path


def labels(stdout: str) -> list[str]:
    return [line.strip().split("  ")[0] for line in stdout.splitlines()[1:]]


def test_table_shows_every_task_indented_with_columns(tmp_path: Path) -> None:
    """All tasks, indented by depth, under the seven column headings."""
    result = taskmeter("show", str(tree_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["task", "status", "duration", "cpu", "peak", "mem", "gpu", "mem", "energy"]
    assert labels(result.stdout) == [
        "pipeline",
        "load data",
        "train model",
        "epoch 1",
        "epoch 2",
        "epoch 3",
        "evaluate",
    ]
    assert "    epoch 1" in result.stdout


def test_depth_limits_the_levels(tmp_path: Path) -> None:
    """--depth 1 shows the root and its children only."""
    result = taskmeter("show", str(tree_file(tmp_path)), "--depth", "1")
    assert labels(result.stdout) == ["pipeline", "load data", "train model", "evaluate"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("EPOCH", ["epoch 1", "epoch 2", "epoch 3"]),
        ("epoch [12]", ["epoch 1", "epoch 2"]),
        ("*data", ["load data"]),
    ],
)
def test_label_filter_substring_or_glob_with_ancestors(
    tmp_path: Path, pattern: str, expected: list[str]
) -> None:
    """A substring (any case) or a glob; matching tasks keep their ancestors, marked."""
    result = taskmeter("show", str(tree_file(tmp_path)), "--label", pattern)
    assert result.returncode == 0
    shown = [label.removeprefix("· ") for label in labels(result.stdout)]
    assert [s for s in shown if s in expected] == expected
    assert "· pipeline" in result.stdout


def bracketed_tree_file(tmp_path: Path) -> Path:
    """pipeline > "[gpu] train", "[gpu] eval", "gpu warmup", "u-turn": labels with
    characters that mean something in a glob."""
    with Task("pipeline") as root:
        for label in ("[gpu] train", "[gpu] eval", "gpu warmup", "u-turn"):
            with Task(label):
                pass
    path = tmp_path / "bracketed.json"
    path.write_text(root.model_dump_json())
    return path


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[gpu] train", ["[gpu] train"]),  # the whole label, as written
        ("[GPU]", ["[gpu] train", "[gpu] eval"]),  # a substring, any case
        ("*train", ["[gpu] train"]),  # a glob
        ("[gu]*", ["gpu warmup", "u-turn"]),  # a glob with a class, no literal match
        ("[[]gpu[]] *", ["[gpu] train", "[gpu] eval"]),  # a glob naming the brackets
    ],
)
def test_label_filter_finds_labels_with_glob_characters_as_written(
    tmp_path: Path, pattern: str, expected: list[str]
) -> None:
    """A pattern found in a label as written matches it, brackets and all; glob matching
    applies besides, when the pattern has ``*?[``."""
    result = taskmeter("show", str(bracketed_tree_file(tmp_path)), "--label", pattern, "--json")
    assert result.returncode == 0, result.stderr
    assert [task["label"] for task in json.loads(result.stdout)["tasks"]] == expected


def test_status_filter_and_json_for_scripts(tmp_path: Path) -> None:
    """--status failed --json: exactly the failed task, with units in the key names."""
    result = taskmeter("show", str(tree_file(tmp_path)), "--status", "failed", "--json")
    assert result.returncode == 0
    document = json.loads(result.stdout)
    [task] = document["tasks"]
    assert task["label"] == "epoch 3"
    assert task["path"] == ["pipeline", "train model", "epoch 3"]
    assert task["depth"] == 2
    for key in ("duration_s", "cpu_total_s", "peak_memory_bytes", "energy_j"):
        assert key in task


def test_no_match_exits_1(tmp_path: Path) -> None:
    """Filters that match nothing: exit 1 and a message, like grep."""
    result = taskmeter("show", str(tree_file(tmp_path)), "--label", "nothing-like-this")
    assert result.returncode == 1
    assert "no task" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such task file"), ("{broken", "not a valid task file"), ('{"a": 1}', "label")],
)
def test_bad_files_exit_3_without_traceback(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """Missing, corrupt or foreign files: exit 3, one line naming the problem."""
    path = tmp_path / "task.json"
    if content is not None:
        path.write_text(content)
    result = taskmeter("show", str(path))
    assert result.returncode == 3
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_reads_a_lenskit_task_file(tmp_path: Path) -> None:
    """A file written by LensKit's own Task shows like ours."""
    lenskit_tasks = pytest.importorskip("lenskit.logging.tasks")
    with lenskit_tasks.Task("lenskit root") as root, lenskit_tasks.Task("lenskit child"):
        pass
    path = tmp_path / "lenskit.json"
    path.write_text(root.model_dump_json())
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    assert labels(result.stdout) == ["lenskit root", "lenskit child"]


def strict_json(text: str) -> object:
    """``text`` parsed as standard JSON: NaN and Infinity are refused."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not standard JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_standard_json_when_a_total_overflows(tmp_path: Path) -> None:
    """Two huge CPU times sum to infinity: null in JSON and '-' in the table."""
    huge = {"status": "finished", "cpu_time": 1e308}
    document = {"label": "root", **huge, "subtasks": [{"label": "w", "subprocess": True, **huge}]}
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(document))
    result = taskmeter("show", str(path), "--json")
    assert result.returncode == 0, result.stderr
    tasks = strict_json(result.stdout)["tasks"]  # type: ignore[index]
    assert tasks[0]["cpu_total_s"] is None
    assert tasks[0]["cpu_time_s"] == 1e308
    table = taskmeter("show", str(path))
    assert table.stdout.splitlines()[1].split()[3] == "-"


def test_labels_cannot_drive_the_terminal_and_wide_ones_stay_aligned(tmp_path: Path) -> None:
    """Escape sequences, line breaks and bidi overrides in labels are printed escaped, one
    row per task; East Asian wide labels keep the columns aligned on screen."""
    from taskmeter.render import display_width

    with Task("root") as root:
        with Task("evil\x1b]0;title\x07\x1b[2J\nsecond\rline"):
            pass
        with Task("日本語のタスク"):
            pass
        with Task("abc\u202edef"):
            pass
    path = tmp_path / "labels.json"
    path.write_text(root.model_dump_json())
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert not any(char in result.stdout for char in "\x1b\x07\r\u202e")
    assert r"evil\x1b]0;title\x07\x1b[2J\nsecond\rline" in lines[2]
    assert r"abc\u202edef" in lines[4]
    status_ends = {
        display_width(line[: line.index("finished") + len("finished")]) for line in lines[1:]
    }
    assert len(status_ends) == 1


def test_a_very_long_label_is_cut_in_the_table_and_whole_in_json(tmp_path: Path) -> None:
    """A 100,000-character label no longer makes every row 100,000 columns wide: the
    table cuts it at LABEL_COLUMNS with an ellipsis; --json keeps it whole."""
    from taskmeter.render import LABEL_COLUMNS, display_width

    long_label = "step " + "x" * 100_000
    with Task("root") as root:
        with Task(long_label):
            pass
        with Task("short"):
            pass
    path = tmp_path / "long.json"
    path.write_text(root.model_dump_json())
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert max(display_width(line) for line in lines) < LABEL_COLUMNS + 60
    assert lines[2].startswith("  step xxx") and "…" in lines[2]
    as_json = taskmeter("show", str(path), "--json")
    assert [task["label"] for task in json.loads(as_json.stdout)["tasks"]][1] == long_label


def test_a_directory_given_as_file_is_said_plainly(tmp_path: Path) -> None:
    """``show DIR`` and ``report DIR``: one line naming DIR once with the reason, exit 3
    (it was ``[Errno 21] Is a directory: 'DIR'`` after the path)."""
    for verb in ("show", "report"):
        result = taskmeter(verb, str(tmp_path))
        assert result.returncode == 3
        assert (
            result.stderr == f"taskmeter: error: cannot read task file {tmp_path}: Is a directory\n"
        )


@pytest.mark.parametrize("verb", ["show", "report"])
def test_a_warning_naming_a_key_of_the_file_prints_it_escaped(tmp_path: Path, verb: str) -> None:
    """A file whose mistyped value sits under a key holding an escape sequence (a key of
    ``energy_sources``): the one-line warning names the key escaped, as labels are, and no
    control character reaches the terminal."""
    key = "\x1b]0;owned\x07\x1b[2J\u202e"
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"label": "x", "energy_sources": {key: 5}}))
    output = ["-o", str(tmp_path / "r.html")] if verb == "report" else []
    result = taskmeter(verb, str(path), *output)
    assert result.returncode == 0
    if verb == "report":
        result.stderr = result.stderr.split("taskmeter: wrote")[0]
    assert r"energy_sources.\x1b]0;owned\x07\x1b[2J\u202e is 5, not a string" in result.stderr
    assert not any(char in result.stderr for char in "\x1b\x07\u202e")
    assert result.stderr.count("\n") == 1


def test_a_tree_127_levels_deep_stays_as_wide_as_12_levels(tmp_path: Path) -> None:
    """Rows are indented 12 levels at most; deeper ones start with their level
    (``[13] d13``), so a chain 127 levels deep prints lines of about 90 columns instead of
    313 (every row of the table wrapped on a terminal)."""
    node: dict[str, object] = {"label": "d127", "status": "finished"}
    for level in range(126, -1, -1):
        node = {"label": f"d{level}", "status": "finished", "subtasks": [node]}
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(node))
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 129
    assert max(len(line) for line in lines) < 100
    first = [line.split("  finished")[0].rstrip() for line in lines[1:]]
    assert first[12] == " " * 24 + "d12"
    assert first[13] == " " * 24 + "[13] d13"
    assert first[127] == " " * 24 + "[127] d127"
    deep = taskmeter("show", str(path), "--label", "d127")
    assert deep.stdout.splitlines()[-1].startswith(" " * 24 + "[127] d127")


def test_a_file_name_with_an_escape_sequence_is_printed_escaped(tmp_path: Path) -> None:
    """Messages that name a file (``show`` of a missing one, ``report``'s "wrote"): a name
    holding an escape sequence (one a glob over someone else's directory can pick) is
    printed escaped, as labels are, not sent to the terminal."""
    name = "run\x1b]0;owned\x07\x1b[2J"
    missing = taskmeter("show", str(tmp_path / f"{name}.json"))
    assert missing.returncode == 3
    assert r"run\x1b]0;owned\x07\x1b[2J.json" in missing.stderr
    source = tmp_path / f"{name}.json"
    source.write_text(json.dumps({"label": "x"}))
    written = taskmeter("report", str(source))
    assert written.returncode == 0, written.stderr
    assert r"run\x1b]0;owned\x07\x1b[2J.html (1 task" in written.stderr
    assert not any(char in missing.stderr + written.stderr for char in "\x1b\x07")


ROOT_ID = "6f1c3c0e-8f47-4e57-9d43-2bd0c7d7a3c1"

REPORT_COLUMN_IN_JSON = {
    "parent": "parent_id",
    "label": "label",
    "status": "status",
    "start": "start_time",
    "duration": "duration_s",
    "cpu": "cpu_time_s",
    "total": "cpu_total_s",
    "user": "cpu_user_time_s",
    "system": "cpu_system_time_s",
    "mem": "peak_memory_bytes",
    "mem_bound": "peak_memory_at_most_bytes",
    "gpu": "peak_gpu_memory_bytes",
    "energy": "energy_j",
    "proc": "subprocess",
    "id": "task_id",
    "pid": "pid",
    "host": "hostname",
    "machine": "machine",
}
"""Where ``show --json`` gives each field of a report row (the start relative to the root
in the report, absolute in JSON; the energy as a total there, by domain here)."""


def test_json_gives_every_field_the_report_shows(tmp_path: Path) -> None:
    """Each column of the report's rows, and its details panel (energy sources, extra
    fields), has its key in ``show --json``, with the same value: host and machine
    included."""
    from taskmeter.report import COLUMNS, report_data

    assert set(REPORT_COLUMN_IN_JSON) == set(COLUMNS)
    root = Task.model_validate(
        {
            "task_id": ROOT_ID,
            "label": "root",
            "status": "finished",
            "hostname": "node-7",
            "machine": "cluster-a",
            "pid": 4242,
            "start_time": 1_700_000_000.0,
            "duration": 4.0,
            "cpu_time": 3.0,
            "cpu_user_time": 2.5,
            "cpu_system_time": 0.5,
            "peak_memory_at_most": 2048,
            "peak_gpu_memory": 4096,
            "cpu_power": 10.0,
            "gpu_power": 5.0,
            "energy_sources": {"cpu": "rapl", "gpu": "nvml-counter"},
            "dataset": "ml-25m",
            "subtasks": [
                {
                    "label": "worker",
                    "parent_id": ROOT_ID,
                    "status": "finished",
                    "subprocess": True,
                    "hostname": "node-8",
                    "start_time": 1_700_000_001.0,
                    "cpu_time": 1.0,
                    "peak_memory": 1024,
                }
            ],
        }
    )
    path = tmp_path / "full.json"
    path.write_text(root.model_dump_json())
    result = taskmeter("show", str(path), "--json")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    data = report_data(root)
    for row, shown in zip(data["tasks"], tasks, strict=True):
        fields = dict(zip(COLUMNS, row, strict=True))
        assert shown["hostname"] == data["hosts"][fields["host"]]
        machine = fields["machine"]
        assert shown["machine"] == (None if machine is None else data["machines"][machine])
        assert shown["subprocess"] == bool(fields["proc"])
        assert shown["task_id"] == fields["id"]
        parent = fields["parent"]
        assert shown["parent_id"] == (None if parent < 0 else tasks[parent]["task_id"])
        assert shown["start_time"] - tasks[0]["start_time"] == fields["start"]
        energy = shown["energy_j"]
        assert (sum(energy.values()) if energy else None) == fields["energy"]
        assert shown["status"] == data["statuses"][fields["status"]]
        for column in ("label", "duration", "cpu", "total", "user", "system"):
            assert shown[REPORT_COLUMN_IN_JSON[column]] == fields[column], column
        for column in ("mem", "mem_bound", "gpu", "pid"):
            assert shown[REPORT_COLUMN_IN_JSON[column]] == fields[column], column
    assert tasks[0]["hostname"] == "node-7" and tasks[0]["machine"] == "cluster-a"
    assert tasks[0]["energy_sources"] == {"cpu": "rapl", "gpu": "nvml-counter"}
    assert tasks[0]["extra"] == {"peak_memory_at_most": 2048, "dataset": "ml-25m"}
    assert tasks[0]["extra"] == data["extra"][0] | {"peak_memory_at_most": 2048}
    assert tasks[1]["hostname"] == "node-8"


def test_a_recursion_300_tasks_deep_saves_its_file_and_shows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task per call of a recursion 300 deep (past the 127 levels pydantic serializes):
    the file is written when the root finishes, with every task finished, nothing is
    logged as a failure, and ``show`` reads it back."""
    path = tmp_path / "deep.json"

    def descend(level: int) -> None:
        with Task(f"level {level}"):
            if level < 300:
                descend(level + 1)

    with caplog.at_level("WARNING", logger="taskmeter"), Task("recursion", file=path):
        descend(1)
    assert [record.getMessage() for record in caplog.records] == []
    result = taskmeter("show", str(path), "--json")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert len(tasks) == 301
    assert {task["status"] for task in tasks} == {"finished"}
    assert tasks[-1]["label"] == "level 300" and tasks[-1]["depth"] == 300
    assert all(task["duration_s"] is not None for task in tasks)


@pytest.mark.parametrize("depth", [600, 20_000])
def test_a_tree_deeper_than_the_json_parser_reads_shows_and_reports(
    tmp_path: Path, depth: int
) -> None:
    """A tree nested past the ~490 levels the standard JSON parser reads, as a recursion
    that opens a task per call writes it: ``show`` lists every task, its deepest last with
    its level, and ``report`` writes the page."""
    path = tmp_path / "deep.json"
    root = Task("recursion")
    current = root
    for level in range(1, depth + 1):
        child = Task(f"level {level}", parent_id=current.task_id, duration=float(level))
        current.subtasks.append(child)
        current = child
    root.save_to_file(path, monitor=False)
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == depth + 2  # the header, then a row a task
    assert rows[-1].lstrip().startswith(f"[{depth}] level {depth} ")
    report = taskmeter("report", str(path), "-o", str(tmp_path / "deep.html"))
    assert report.returncode == 0, report.stderr
    assert f"level {depth}" in (tmp_path / "deep.html").read_text()


def test_workers_nested_past_the_recursion_limit_show_and_report_their_total_cpu(
    tmp_path: Path,
) -> None:
    """A chain of 3000 worker tasks, each inside the one before (each total adds the
    workers below it): ``show`` and ``report`` give every row its total, as
    ``total_cpu()`` does, where each row's total recursed into the next."""
    depth = 3000
    path = tmp_path / "workers.json"
    root = Task("root", cpu_time=1.0)
    current = root
    for level in range(1, depth + 1):
        child = Task(f"w{level}", parent_id=current.task_id, cpu_time=1.0, subprocess=True)
        current.subtasks.append(child)
        current = child
    assert root.total_cpu() == depth + 1
    root.save_to_file(path, monitor=False)
    result = taskmeter("show", "--json", str(path))
    assert result.returncode == 0, result.stderr
    totals = [task["cpu_total_s"] for task in json.loads(result.stdout)["tasks"]]
    assert totals == [float(depth + 1 - level) for level in range(depth + 1)]
    table = taskmeter("show", str(path))
    assert table.returncode == 0, table.stderr
    assert "50m1.00s" in table.stdout.splitlines()[1]  # the root: 3001 s
    report = taskmeter("report", str(path), "-o", str(tmp_path / "workers.html"))
    assert report.returncode == 0, report.stderr


def test_json_document_holds_a_task_a_line_and_reads_as_the_indented_one() -> None:
    """``--json``'s document, written a task a line by the C encoder, reads as the same
    document indented would; with no task too."""
    from taskmeter.cli.show import json_document

    tasks = [
        {"label": "caf\u00e9 \u202e", "duration_s": 1.5, "path": ["root", "x"]},
        {"label": "b", "extra": {"nested": [1, None]}},
    ]
    text = json_document("runs/t.json", tasks)
    assert json.loads(text) == {"file": "runs/t.json", "tasks": tasks}
    assert text.splitlines()[3:5] == [f"    {json.dumps(task)}," for task in tasks[:1]] + [
        f"    {json.dumps(tasks[1])}"
    ]
    assert json.loads(json_document("t.json", [])) == {"file": "t.json", "tasks": []}


def test_whole_minutes_and_hours_are_written_in_that_unit(tmp_path: Path) -> None:
    """Exactly a minute is ``1m0.00s`` and an hour (or what rounds to one) ``1h0m0.00s``,
    not ``60.00s`` and ``60m0.00s``."""
    root = Task("root", duration=3600.0, cpu_time=3599.9999)
    root.subtasks.append(Task("minute", duration=60.0, cpu_time=59.999))
    path = tmp_path / "durations.json"
    path.write_text(root.model_dump_json())
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[2:4] for line in result.stdout.splitlines()[1:]}
    assert rows == {"root": ["1h0m0.00s", "1h0m0.00s"], "minute": ["1m0.00s", "1m0.00s"]}


def test_energy_lacking_a_domain_other_tasks_have_is_marked_partial(tmp_path: Path) -> None:
    """``b`` (its GPU unreadable) shows its CPU energy marked ``*`` and explained under the
    table, also when a filter shows it alone; ``--json`` keeps its figures by domain."""
    path = tmp_path / "t.json"
    path.write_text(GPU_LOST_IN_B.model_dump_json())
    result = taskmeter("show", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.rsplit("  ", 1)[-1].strip() for line in lines[1:4]] == [
        "1.2 kJ",
        "600.0 J",
        "100.0 J*",
    ]
    assert lines[4:] == ["* partial energy: lacks the GPU energy other tasks have"]
    alone = taskmeter("show", str(path), "--label", "b").stdout.splitlines()
    assert alone[2].endswith(" 100.0 J*") and alone[3].startswith("* partial energy")
    tasks = json.loads(taskmeter("show", str(path), "--json").stdout)["tasks"]
    assert [task["energy_j"] for task in tasks] == [
        {"cpu": 200.0, "gpu": 1000.0},
        {"cpu": 100.0, "gpu": 500.0},
        {"cpu": 100.0},
    ]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [(NO_GPU, ["200.0 J", "100.0 J", "100.0 J"]), (WITH_SYSTEM, ["1.5 kJ", "700.0 J", "800.0 J"])],
    ids=["no-gpu-anywhere", "system-energy"],
)
def test_whole_energy_is_shown_unmarked(tmp_path: Path, tree: Task, expected: list[str]) -> None:
    """A machine without a GPU gives whole CPU figures; system energy is shown where
    measured: no mark, no note."""
    path = tmp_path / "t.json"
    path.write_text(tree.model_dump_json())
    result = taskmeter("show", str(path))
    assert [line.rsplit("  ", 1)[-1].strip() for line in result.stdout.splitlines()[1:]] == expected
