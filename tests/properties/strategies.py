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
