"""Text as valid Unicode, for task files, spans and terminals.

Python gives the bytes of a file name, command-line argument or environment
value that are not UTF-8 as lone surrogates (``os.fsdecode(b"caf\\xe9")`` is
``"caf\\udce9"``), which no JSON file, span exporter or UTF-8 terminal accepts.
Such text is written with each of those bytes as ``\\xNN`` (``caf\\xe9``);
the program's own objects keep their strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 32
"""Containers nested deeper than this are left as they are by :func:`valid_values`."""


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: undecodable bytes of an argument or name as ``\\xNN``.

    Python gives the bytes of a command line that are not UTF-8 as lone
    surrogates, which no JSON file, span exporter or UTF-8 terminal accepts.
    A surrogate that did not come from a byte is written ``\\udNNN``.
    """
    if text.isascii():  # O(1) in CPython: the common case costs one check
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that did not come from bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def valid_values(value: Any, depth: int = 0) -> Any:
    """``value`` with every string in it (mapping keys included) made :func:`valid_text`.

    Mappings become ``dict``, lists, tuples and sets become ``list``; other values are
    returned as they are, and so are containers nested deeper than 32 levels.
    """
    if isinstance(value, str):
        return valid_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            valid_text(key) if isinstance(key, str) else key: valid_values(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [valid_values(item, depth + 1) for item in value]
    return value
