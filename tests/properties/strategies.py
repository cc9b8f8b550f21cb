"""Hostile inputs: JSON-like values of every shape and odd scalars."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # beyond a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "2024-06-11T10:00:00+00:00",
            "2024-06-11T10:00:05.5+00:00",
            "2024-06-11T10:00:00",
            "not a date",
            "",
            "NaN",
            "1e400",
            "\x00",
            "\udcff",
        ]
    ),
)
"""Scalars a JSON, YAML or span attribute value may be, and a few it should not."""

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)


def json_values(scalars: st.SearchStrategy[Any] = json_scalars) -> st.SearchStrategy[Any]:
    """Any JSON document (nested lists and objects), small."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=12), children, max_size=4),
        ),
        max_leaves=20,
    )


task_keys = st.sampled_from(
    [
        "label",
        "task_id",
        "parent_id",
        "status",
        "subtasks",
        "duration",
        "cpu_time",
        "peak_memory",
        "start_time",
        "chassis_power",
        "energy_sources",
        "pid",
        "hostname",
        "machine",
        "subprocess",
    ]
)


def task_like() -> st.SearchStrategy[Any]:
    """Objects shaped like task records, with values of any type (including subtasks)."""
    values = json_values()
    return st.recursive(
        st.dictionaries(task_keys, values, max_size=6),
        lambda children: st.builds(
            lambda base, subs: {**base, "label": base.get("label", "x"), "subtasks": subs},
            st.dictionaries(task_keys, values, max_size=5),
            st.one_of(
                st.lists(children, max_size=3),
                st.dictionaries(st.text(max_size=5), children, max_size=2),
            ),
        ),
        max_leaves=10,
    )


_uuids = st.uuids().map(str)
_figures = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1e9),
    st.integers(min_value=0, max_value=2**40),
)
_record_values: dict[str, st.SearchStrategy[Any]] = {
    "task_id": _uuids,
    "parent_id": st.one_of(st.none(), _uuids),
    "subprocess": st.booleans(),
    "hostname": st.text(max_size=8),
    "machine": st.one_of(st.none(), st.text(max_size=8)),
    "status": st.sampled_from(["pending", "running", "finished", "failed", "cancelled"]),
    "start_time": st.one_of(st.none(), st.floats(min_value=-1e10, max_value=2e9)),
    "finish_time": st.one_of(st.none(), st.floats(min_value=-1e10, max_value=2e9)),
    "duration": _figures,
    "cpu_time": _figures,
    "cpu_user_time": _figures,
    "cpu_system_time": _figures,
    "peak_memory": st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
    "peak_gpu_memory": st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
    "system_power": st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),
    "chassis_power": st.floats(min_value=0, max_value=1e6),
    "cpu_power": st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    "gpu_power": st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    "energy_sources": st.dictionaries(
        st.sampled_from(["cpu", "gpu", "system"]), st.sampled_from(["rapl", "nvml", "x"])
    ),
    "pid": st.one_of(st.none(), st.integers(min_value=1, max_value=2**22)),
    "trace_id": st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32)),
    "span_id": st.one_of(st.none(), st.text("0123456789abcdef", min_size=16, max_size=16)),
    "extra": json_values(),
}
_odd_values = st.one_of(
    st.sampled_from([True, "12", -1, -0.5, 1e308, 10**400, [], {}, "yes", 3]),
    json_scalars,
)


@st.composite
def _record(draw: st.DrawFn) -> dict[str, Any]:
    """One task's fields: each present or not, mostly of their type, now and then not."""
    record: dict[str, Any] = {"label": draw(st.text(max_size=10))}
    for name in draw(st.sets(st.sampled_from(sorted(_record_values)))):
        if draw(st.integers(min_value=0, max_value=19)) == 0:
            record[name] = draw(_odd_values)
        else:
            record[name] = draw(_record_values[name])
    if draw(st.integers(min_value=0, max_value=29)) == 0:
        del record["label"]
    return record


def task_records() -> st.SearchStrategy[dict[str, Any]]:
    """Trees of task records as taskmeter and LensKit write them (subtasks as lists, or
    now and then as a mapping), with optional fields left out, extra fields, and now
    and then a value of the wrong type or out of range."""
    return st.recursive(
        _record(),
        lambda children: st.builds(
            lambda base, subs: {**base, "subtasks": subs},
            _record(),
            st.one_of(
                st.lists(children, max_size=4),
                st.lists(children, max_size=4),
                st.lists(children, max_size=4),
                st.dictionaries(_uuids, children, max_size=2),
            ),
        ),
        max_leaves=12,
    )
