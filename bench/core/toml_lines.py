"""Line numbers of tables and keys in a TOML text (tomllib parses without positions).

For error messages about a file that has already parsed: a line scan finds table headers
(``[name]``, ``[[name]]``) and key assignments, skipping multi-line strings and arrays, whose
lines could look like either. Covers the top level and one level of tables (a ``[name]``
table, given by a header, an inline table or dotted keys, and the Nth ``[[name]]`` of an
array); ``None`` wherever the text does not tell for sure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_PART = r"""(?:[\w-]+|"[^"]*"|'[^']*')"""
_PATH = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_PATH})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_PATH})\s*=")
_MULTILINE = ('"""', "'''")


def _key_path(text: str) -> tuple[str, ...]:
    """``a."b.c"`` -> ("a", "b.c")."""
    return tuple(part[1:-1] if part[0] in "\"'" else part
                 for part in re.findall(_PART, text))


@dataclass
class Block:
    """A stretch of the text: the top level or one [table] / [[array]] header onwards."""

    path: tuple[str, ...]  # the header's key path (() at the top level)
    array: bool  # a [[header]]
    line: int  # the header's line (0 at the top level)
    keys: dict[tuple[str, ...], int]  # key path -> line of its first assignment

    def find(self, key: str) -> Optional[int]:
        """Line of ``key`` (or of the first dotted key under it) in this stretch."""
        if (key,) in self.keys:
            return self.keys[(key,)]
        return next((line for path, line in self.keys.items() if path[0] == key), None)


def _depth(depth: int, fragment: str) -> int:
    """Bracket depth after a line fragment (strings and comments left out): > 0 inside a
    multi-line array."""
    bare = fragment
    for quote in _MULTILINE:
        bare = bare.replace(quote, "")
    bare = _STRINGS.sub('""', bare).split("#")[0]
    return max(depth + bare.count("[") - bare.count("]"), 0)


def scan(text: str) -> list[Block]:
    """The blocks of a TOML text, in order."""
    blocks = [Block((), False, 0, {})]
    open_quote, depth = None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        if open_quote is not None:  # inside a multi-line string
            if line.count(open_quote) % 2:
                depth = _depth(depth, line.split(open_quote, 1)[1])
                open_quote = None
            continue
        header = _HEADER.match(line) if depth == 0 else None
        if header:
            blocks.append(Block(_key_path(header.group(2)), header.group(1) == "[[", number, {}))
            continue
        key = _KEY.match(line) if depth == 0 else None
        if key:
            blocks[-1].keys.setdefault(_key_path(key.group(1)), number)
        open_quote = next((q for q in _MULTILINE if line.count(q) % 2), None)
        depth = _depth(depth, line)
    return blocks


class TomlLines:
    """Where the top level's keys, its tables and their keys are in ``text``.

    data: ``tomllib.loads(text)``, to tell whether the [[name]] headers found are all of an
    array's entries (not so for ``name = [{...}]`` or with [name.sub] headers).
    """

    def __init__(self, text: str, data: dict):
        self.data = data
        self.blocks = scan(text)
        self.top = self.blocks[0]

    def _array(self, name: str) -> list[Block]:
        mine = [b for b in self.blocks if b.path[:1] == (name,)]
        entries = self.data.get(name)
        plain = all(b.path == (name,) and b.array for b in mine)
        return mine if plain and isinstance(entries, list) and len(entries) == len(mine) else []

    def _table(self, name: str) -> Optional[Block]:
        return next((b for b in self.blocks if b.path == (name,) and not b.array), None)

    def table(self, name: str, index: Optional[int] = None) -> Optional[int]:
        """Line of table ``name`` (entry ``index`` of an array of tables): its header, or
        where the top level sets it."""
        if index is not None:
            array = self._array(name)
            return array[index].line if index < len(array) else None
        block = self._table(name)
        return block.line if block else self.top.find(name)

    def key(self, table: Optional[str], key: str, index: Optional[int] = None
            ) -> Optional[int]:
        """Line where ``key`` is set in ``table`` (None: the top level; ``index``: that
        entry of an array of tables)."""
        if table is None:
            found = self.top.find(key)
            return found or next((b.line for b in self.blocks[1:] if b.path[0] == key), None)
        if index is not None:
            array = self._array(table)
            return array[index].find(key) if index < len(array) else None
        block = self._table(table)
        if block is not None:
            return block.find(key)
        # dotted keys (table.key = ...), else an inline table (on one line in TOML 1.0)
        return self.top.keys.get((table, key)) or self.top.keys.get((table,))


__all__ = ["Block", "TomlLines", "scan"]
