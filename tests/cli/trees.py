"""Synthetic task trees of a chosen size, with known figures."""

from __future__ import annotations

import random
from typing import Any

from taskmeter import Task

MIB = 1024 * 1024


def make_tree(stages: int = 10, steps: int = 20, items: int = 24, *, seed: int = 1) -> Task:
    """root > stages > steps > items (10 x 20 x 24 + 211 = 5011 tasks by default).

    Tasks run one after another from t=1e9; every 7th item failed, every 5th
    step ran in a worker process, and figures grow with the position.
    """
    rng = random.Random(seed)
    clock = 1_000_000_000.0

    def task(label: str, start: float, duration: float, **extra: Any) -> dict[str, Any]:
        return {
            "label": label,
            "status": "finished",
            "start_time": start,
            "finish_time": start + duration,
            "duration": duration,
            "cpu_time": duration * rng.uniform(0.5, 1.0),
            "cpu_user_time": duration * 0.4,
            "cpu_system_time": duration * 0.1,
            "peak_memory": rng.randint(50, 500) * MIB,
            "hostname": "node-1",
            **extra,
        }

    root_start = clock
    stage_docs = []
    for s in range(stages):
        stage_start = clock
        step_docs = []
        for t in range(steps):
            step_start = clock
            item_docs = []
            for i in range(items):
                duration = rng.uniform(0.01, 0.2)
                doc = task(f"item {s}.{t}.{i}", clock, duration)
                if i % 7 == 6:
                    doc["status"] = "failed"
                item_docs.append(doc)
                clock += duration
            step = task(f"step {s}.{t}", step_start, clock - step_start, subtasks=item_docs)
            step["subprocess"] = t % 5 == 4
            step_docs.append(step)
        stage_docs.append(
            task(f"stage {s}", stage_start, clock - stage_start, subtasks=step_docs, cpu_power=12.5)
        )
    root = task("pipeline <b>&</b> friends", root_start, clock - root_start, subtasks=stage_docs)
    root["energy_sources"] = {"cpu": "rapl"}
    root["cpu_power"] = 1234.5
    root["command"] = ["python", "pipeline.py"]
    return Task.model_validate(root)


def energy_siblings(a: dict[str, float], b: dict[str, float], root: dict[str, float]) -> Task:
    """``root`` > ``a``, ``b`` with the given energy fields (``cpu_power``, ...), one second
    apart: the trees of the ``energy`` column's tests."""
    return Task.model_validate(
        {
            "label": "root",
            "status": "finished",
            "start_time": 1000.0,
            "duration": 2.0,
            **root,
            "subtasks": [
                {"label": "a", "status": "finished", "start_time": 1000.0, "duration": 1.0, **a},
                {"label": "b", "status": "finished", "start_time": 1001.0, "duration": 1.0, **b},
            ],
        }
    )


GPU_LOST_IN_B = energy_siblings(
    {"cpu_power": 100.0, "gpu_power": 500.0},
    {"cpu_power": 100.0},  # the GPU could not be read when b ended
    {"cpu_power": 200.0, "gpu_power": 1000.0},
)
"""Two siblings that each used 100 J of CPU and 500 J of GPU; ``b`` has no GPU figure."""

NO_GPU = energy_siblings({"cpu_power": 100.0}, {"cpu_power": 100.0}, {"cpu_power": 200.0})
"""A machine without a GPU: no task has a GPU figure, and each CPU figure is whole."""

WITH_SYSTEM = energy_siblings(
    {"cpu_power": 100.0, "gpu_power": 500.0, "system_power": 700.0},
    {"cpu_power": 100.0, "system_power": 800.0},
    {"cpu_power": 200.0, "gpu_power": 1000.0, "system_power": 1500.0},
)
"""System energy for every task: the figure shown, whole, whatever the other domains."""
