"""The reader of JSON nested past the standard parser's limit reads as ``json.loads``."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmeter import _deepjson
from taskmeter._deepjson import loads_deep

from .strategies import json_values, odd_scalars

# Strings a placeholder could be taken for: the control characters it is made of.
MARKERS = "".join(chr(code) for code in (*range(0x00, 0x08), *range(0x10, 0x1A)))
scalars = st.one_of(odd_scalars, st.sampled_from([MARKERS, "\x000", "\x001", "\x011"]))


def outcome(read: object, text: str) -> tuple[object, ...]:
    """What reading ``text`` gives: the value's ``repr`` (NaN equal to itself), or the
    error's message and position."""
    assert callable(read)
    try:
        return ("value", repr(read(text)))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg, exc.pos)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """JSON text, valid or damaged at one place (cut, a character added or removed)."""
    text = json.dumps(
        draw(json_values(scalars)),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 1])),
    )
    damage = draw(st.sampled_from(["none", "cut", "insert", "remove"]))
    at = draw(st.integers(min_value=0, max_value=len(text)))
    if damage == "cut":
        return text[:at]
    if damage == "insert":
        return text[:at] + draw(st.sampled_from(list('{}[],:" \\e.-tn\x01x'))) + text[at:]
    if damage == "remove":
        return text[:at] + text[at + 1 :]
    return text


@pytest.mark.parametrize("shallow_levels", [0, 1, 2])
@given(text=texts())
def test_reads_as_json_loads(shallow_levels: int, text: str) -> None:
    """With every container (or every one with more than 1 or 2 levels below it) read
    as a deep one: the same value as ``json.loads``, or the same error at the same place."""
    with mock.patch.object(_deepjson, "SHALLOW_LEVELS", shallow_levels):
        assert outcome(loads_deep, text) == outcome(json.loads, text)


@pytest.mark.parametrize(("depth", "string"), [(1_000, MARKERS), (100_000, "\x00")])
def test_reads_any_depth(depth: int, string: str) -> None:
    """Objects nested far past any recursion limit, with a key repeated (the later value
    kept), read without recursion; with a string of every placeholder character too."""
    text = '{"a":' * depth + f"[1,{json.dumps(string)}]" + ',"b":{},"b":2}' * depth
    value = loads_deep(text.encode())
    for _ in range(depth):
        assert isinstance(value, dict)
        assert value["b"] == 2
        value = value["a"]
    assert value == [1, string]
