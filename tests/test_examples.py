"""The examples run as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_prints_tree_and_writes_task_file(tmp_path: Path) -> None:
    out = tmp_path / "quickstart.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--out",
            str(out),
            "--data-mib",
            "64",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "quickstart pipeline" in result.stdout
    assert "epoch 2" in result.stdout
    assert f"task file: {out}" in result.stdout
    document = json.loads(out.read_text())
    assert document["status"] == "finished"
    labels = [sub["label"] for sub in document["subtasks"]]
    assert labels == ["load data", "train model", "evaluate"]
    load = document["subtasks"][0]
    assert load["peak_memory"] >= 64 * 1024 * 1024
    train = document["subtasks"][1]
    assert train["cpu_time"] >= 0.35
    assert document["trace_id"] and len(document["trace_id"]) == 32
