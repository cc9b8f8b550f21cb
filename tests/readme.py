"""The README's structure, read as a new user reads it: its code blocks (with the heading
they sit under), its headings and their GitHub anchors, and the taskmeter command lines of
its shell blocks."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_PATH = ROOT / "README.md"

FRAGMENT_MARK = "<!-- fragment -->"
"""Put on the line above a code block that is deliberately incomplete (it uses names the
reader supplies): the tests then only compile it instead of running it."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    lang: str
    """The info string: ``python``, ``sh``, ``toml``, or ``""`` for output."""
    body: str
    """The text between the fences, dedented by the opening fence's indentation."""
    line: int
    """1-based line number of the opening fence."""
    heading: str
    """The title of the nearest heading above the block."""
    fragment: bool
    """Marked with :data:`FRAGMENT_MARK` on the line above (blank lines skipped)."""

    @property
    def name(self) -> str:
        """Where the block is, for test ids and messages: ``L39 Using it``."""
        return f"L{self.line} {self.heading}"


def readme_text() -> str:
    return README_PATH.read_text(encoding="utf-8")


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced code block of the README, in order."""
    lines = (readme_text() if text is None else text).splitlines()
    found: list[Block] = []
    heading = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        title = _HEADING.match(line)
        if title:
            heading = title.group("title")
        fence = _FENCE.match(line)
        if not fence:
            index += 1
            continue
        indent = len(fence.group("indent"))
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"README line {index + 1}: code block never closed")
        body = "".join(text_line[indent:] + "\n" for text_line in lines[index + 1 : end])
        above = index - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        fragment = above >= 0 and lines[above].strip() == FRAGMENT_MARK
        found.append(Block(fence.group("lang"), body, index + 1, heading, fragment))
        index = end + 1
    return found


def headings(text: str | None = None) -> list[tuple[int, str]]:
    """``(level, title)`` of each heading outside code blocks."""
    found: list[tuple[int, str]] = []
    in_code = False
    for line in (readme_text() if text is None else text).splitlines():
        if _FENCE.match(line) or (in_code and line.strip() == "```"):
            in_code = not in_code
            continue
        match = None if in_code else _HEADING.match(line)
        if match:
            found.append((len(match.group("hashes")), match.group("title")))
    return found


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces
    as hyphens (``At the shell: `taskmeter run` `` -> ``at-the-shell-taskmeter-run``)."""
    text = re.sub(r"[`*_]", "", title).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def shell_commands(body: str) -> list[str]:
    """The command lines of a shell block: continuation lines joined, comments dropped;
    in a block written as a session (``$ command`` then its output), only the ``$``
    lines."""
    raw = body.splitlines()
    session = any(line.startswith("$ ") for line in raw)
    commands: list[str] = []
    pending = ""
    for line in raw:
        if session and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if shlex.split(full, comments=True):
            commands.append(full)
    return commands


_OPERATORS = {"|", "||", "&&", ";", "&"}
_REDIRECTS = {"<", ">", ">>", "2>", "2>&1"}


def invocations(command: str) -> list[list[str]]:
    """The argument vectors of the simple commands of a command line (split at pipes,
    ``&&`` and ``;``; redirections and leading ``NAME=value`` assignments removed)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    result: list[list[str]] = []
    current: list[str] = []
    tokens = list(lexer)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in _OPERATORS:
            result.append(current)
            current = []
        elif token in _REDIRECTS:
            index += 1  # the redirection's target
        else:
            current.append(token)
        index += 1
    result.append(current)
    cleaned = []
    for argv in result:
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
            argv = argv[1:]
        if argv:
            cleaned.append(argv)
    return cleaned


def taskmeter_argvs(body: str) -> list[list[str]]:
    """The arguments given to ``taskmeter`` (after the program name) in a shell block."""
    found = []
    for command in shell_commands(body):
        for argv in invocations(command):
            if Path(argv[0]).name == "taskmeter":
                found.append(argv[1:])
    return found
