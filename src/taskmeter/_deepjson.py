"""JSON nested deeper than the standard parser reads, read without recursion.

``json.loads`` recurses once per object or array, in C, and stops with a
``RecursionError`` at the interpreter's recursion limit: about 490 levels of
subtasks in a task file.  taskmeter writes a tree of any depth (see
:mod:`taskmeter._deeptree`), so a task file it writes must be read past that.

Why this reader rather than another way:

* Raising ``sys.setrecursionlimit`` (or running ``json.loads`` in a thread with a
  large stack) is process-wide, and a limit high enough for 100,000 levels lets
  C recursion overflow the stack: a segmentation fault instead of an error.
* A JSON reader written wholly in Python would be several times slower than the
  C parser on every value, and would have to copy its handling of escapes and
  numbers, where a difference would read a file differently from ``json.loads``.

So :func:`loads_deep` leaves every value, and every part of the text that is not
nested deeply, to the C parser, and walks only the deep part itself.  A first pass
over the brackets (a regular expression skips everything else, strings included)
finds each object and array with more than :data:`SHALLOW_LEVELS` levels below it
(:class:`_Layout`).  Then:

* Each such container is read by the C parser in one piece: its own text, with each
  deep container directly in it replaced by a string that no string of the file
  can equal (a control character, which valid JSON holds only as an escape the file
  does not contain, and a number), whose place the inner container then takes
  (:func:`_read_in_pieces`).  A task of a deep chain is one call of the C scanner.
* Text that does not read that way is not valid JSON (or holds every escape a
  placeholder could use): it is read again position by position
  (:class:`_DeepReader`), the deep containers member by member with an explicit
  stack, as the C parser reads them (the same delimiters, whitespace and error
  messages), every other value by the C scanner at its position in the text.  That
  gives ``json.loads``'s own error, at the same position.

Escapes, numbers and constants are therefore read by ``json.loads``'s own code, and
both readings take time linear in the size of the text (the second about four
times the first: only invalid files take it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_Scanner = Callable[[str, int], tuple[Any, int]]

# json's own readers (its C ones where CPython has them), which typeshed does not declare.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

SHALLOW_LEVELS = 64
"""Containers with at most this many levels below them are read by the C parser
(whose recursion stays far from the interpreter's limit)."""

_BRACKET = re.compile(
    r'[^"\[\]{}]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"[^"\[\]{}]*+)*+(?:([\[\]{}])|(")|\Z)', re.DOTALL
)
"""Everything up to the next bracket outside a string and that bracket (group 1), or up
to an unterminated string and its quote (group 2), or up to the end of the text."""

_SPACE = re.compile(r"[ \t\n\r]*")
"""The whitespace JSON allows between tokens (json.decoder's ``WHITESPACE``)."""


def _after_space(text: str, position: int) -> int:
    """The position of the first character at or after ``position`` that is not space."""
    space = _SPACE.match(text, position)
    assert space is not None  # it matches the empty string
    return space.end()


def _scanner() -> _Scanner:
    """The scanner ``json.loads`` reads a value with (``json.JSONDecoder().scan_once``)."""
    scan_once: _Scanner = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    return scan_once


def loads_deep(text: str | bytes) -> object:
    """``json.loads(text)`` for text nested to any depth, without recursion.

    Raises :class:`json.JSONDecodeError` where ``json.loads`` does (with the same
    message and position), and ``UnicodeDecodeError`` for bytes that are not text.
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    layout = _Layout(text)
    marker = _unused_marker(text)
    if layout.complete and marker is not None:
        try:
            return _read_in_pieces(text, layout, marker)
        except (json.JSONDecodeError, StopIteration, _NotAsLaidOut):
            pass  # invalid: read position by position, for json's error
    return _DeepReader(text, layout.deep).document()


class _NotAsLaidOut(Exception):
    """The text does not read as the first pass laid it out (it is not valid JSON)."""


class _Layout:
    """Where the deep containers of a text are: those with more than
    :data:`SHALLOW_LEVELS` levels below them, or never closed."""

    def __init__(self, text: str) -> None:
        self.deep: set[int] = set()
        """The positions of their opening brackets."""
        self.ends: dict[int, int] = {}
        """The position after each closed one's closing bracket, by its opening's."""
        self.inner: dict[int, list[int]] = {}
        """The deep containers directly in each closed one, in order."""
        self.complete = False
        """Whether every bracket was closed and no string left unterminated."""
        self._lay_out(text)

    def _lay_out(self, text: str) -> None:
        # Of each open container: its position, the levels below it so far, its deep ones.
        opened: list[tuple[int, list[int]]] = []
        heights: list[int] = []
        outermost: list[int] = []  # the deep containers in no other (one in valid JSON)
        for bracket in _BRACKET.finditer(text):
            found = bracket.lastindex
            if found != 1:
                # The end of the text, or an unterminated string (invalid).
                self.complete = found is None and not opened
                break
            position = bracket.end() - 1
            if text[position] in "{[":
                opened.append((position, []))
                heights.append(0)
                continue
            if not opened:
                break  # a bracket closing nothing (invalid)
            start, inner = opened.pop()
            height = heights.pop() + 1
            if height > SHALLOW_LEVELS:
                self.deep.add(start)
                self.ends[start] = position + 1
                self.inner[start] = inner
                (opened[-1][1] if opened else outermost).append(start)
            if heights and heights[-1] < height:
                heights[-1] = height
        self.deep.update(start for start, _ in opened)


_MARKERS = [f"{code:04x}" for code in (*range(0x00, 0x08), *range(0x10, 0x1A))]
"""Control characters whose JSON escape has a single spelling (no hex letters)."""


def _unused_marker(text: str) -> str | None:
    """The four hex digits of a control character no string of ``text`` holds (a string of
    valid JSON holds one only as its escape), if there is one."""
    for marker in _MARKERS:
        if f"\\u{marker}" not in text:
            return marker
    return None


def _slots(container: object, flag: str, count: int) -> list[object]:
    """The key or index of each of the ``count`` placeholders in ``container`` (``None``
    for one whose key comes again later: its value is the later one)."""
    values = list(container.values()) if isinstance(container, dict) else container
    assert isinstance(values, list)
    keys = list(container) if isinstance(container, dict) else None
    if count == 1:  # a chain's: looked for in C
        try:
            indexes: list[int | None] = [values.index(f"{flag}0")]
        except ValueError:
            indexes = [None]
    else:  # one pass, however many there are
        found = {
            value: index
            for index, value in enumerate(values)
            if value.__class__ is str and value[:1] == flag
        }
        indexes = [found.get(f"{flag}{number}") for number in range(count)]
    return [index if keys is None or index is None else keys[index] for index in indexes]


def _read_in_pieces(text: str, layout: _Layout, marker: str) -> object:
    """The value of ``text`` with each deep container read by the C parser in one piece:
    its text with each deep container in it replaced by a string holding the marker
    character and the inner container's number, which takes that string's place once read.

    Raises :class:`json.JSONDecodeError` or :class:`_NotAsLaidOut` for invalid text.
    """
    scan_once = _scanner()
    ends = layout.ends
    inner = layout.inner
    flag = chr(int(marker, 16))
    start = _after_space(text, 0)
    if start not in ends or _after_space(text, ends[start]) != len(text):
        raise _NotAsLaidOut
    holder: list[object] = [None]
    # Each deep container to read, with the container and the key or index it goes to.
    pending: list[tuple[int, object, object]] = [(start, holder, 0)]
    while pending:
        start, parent, slot = pending.pop()
        pieces: list[str] = []
        last = start
        children = inner[start]
        for number, child in enumerate(children):
            pieces += (text[last:child], f'"\\u{marker}{number}"')
            last = ends[child]
        pieces.append(text[last : ends[start]])
        piece = "".join(pieces)
        value, stop = scan_once(piece, 0)
        if stop != len(piece):
            raise _NotAsLaidOut
        parent[slot] = value  # type: ignore[index]
        if not children:
            continue
        for child, child_slot in zip(children, _slots(value, flag, len(children)), strict=True):
            # A container whose key comes again is read all the same (for its errors).
            pending.append((child, value, child_slot) if child_slot is not None else (child, {}, 0))
    return holder[0]


class _DeepReader:
    """One reading of ``text`` (see the module's description)."""

    def __init__(self, text: str, deep: set[int]) -> None:
        self.text = text
        self.deep = deep
        self.scan_once = _scanner()
        self.keys: dict[str, str] = {}

    def document(self) -> object:
        """The value of the whole text, as ``json.JSONDecoder.decode`` reads it."""
        text = self.text
        value, position, opened = self.value_at(_after_space(text, 0))
        if opened:
            assert isinstance(value, dict | list)
            position = self.fill(value, position)
        position = _after_space(text, position)
        if position != len(text):
            raise json.JSONDecodeError("Extra data", text, position)
        return value

    def value_at(self, position: int) -> tuple[object, int, bool]:
        """The value at ``position`` and the position after it; or, for a deep container,
        the empty container, the position after its bracket and ``True``."""
        if position in self.deep:
            return ({} if self.text[position] == "{" else []), position + 1, True
        try:
            value, end = self.scan_once(self.text, position)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", self.text, stop.value) from None
        return value, end, False

    def fill(self, root: dict[str, object] | list[object], position: int) -> int:
        """Read the members of ``root``, a deep container whose bracket ends before
        ``position``, with those of every deep container in it; the position after it."""
        text = self.text
        keys = self.keys
        stack = [root]
        starting = True
        while stack:
            container = stack[-1]
            is_object = isinstance(container, dict)
            position = _after_space(text, position)
            char = text[position : position + 1]
            if char == ("}" if is_object else "]"):
                stack.pop()
                position += 1
                starting = False
                continue
            if not starting:
                if char != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
                position = _after_space(text, position + 1)
            starting = False
            if is_object:
                key, position = self.key_at(position)
                key = keys.setdefault(key, key)
            value, position, opened = self.value_at(position)
            if is_object:
                container[key] = value  # type: ignore[call-overload]
            else:
                container.append(value)  # type: ignore[union-attr]
            if opened:
                stack.append(value)  # type: ignore[arg-type]
                starting = True
        return position

    def key_at(self, position: int) -> tuple[str, int]:
        """A member's key at ``position``, and the position of its value."""
        text = self.text
        if text[position : position + 1] != '"':
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, position
            )
        key, position = _scanstring(text, position + 1, True)
        position = _after_space(text, position)
        if text[position : position + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
        return key, _after_space(text, position + 1)
