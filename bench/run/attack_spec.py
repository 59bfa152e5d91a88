"""Attack specs: what ``--attacks`` accepts, parsed into attack instances before a run starts.

A spec is a comma-separated list of entries; commas inside parentheses or quotes do not
split it (``blur,chain(blur(3),noise(0.05))`` is two entries). Each entry is one of:

- ``all``: every registered attack (every grid point);
- ``paper``: the paper's six attacks (family ``paper``), every grid point;
- a name or a glob (``blur``, ``h26*``): every grid point of the attacks it names;
- ``name(args)``: that one setting; positional arguments fill the fields of the attack's
  ``Params`` dataclass in order, keyword arguments (``h264(crf=28)``) name them; ``name()``
  is the attack's default (paper) setting;
- ``chain(A, B, ...)``: the attacks ``A``, ``B``, ... applied left to right (attacks/chain.py),
  each part ``name(args)`` or a bare name (its default setting).

Values are integers, floats (``0.8``, ``-15``, ``5e-2``), strings (a bare word such as
``medium`` or a quoted ``'any text'``), ``None``, and tuples ``(lo, hi)`` or ``U(lo, hi)``
(a range drawn per row; the form canonical names print). So an attack's ``canonical``
(``noise(sigma=U(0.0,0.2))``, ``chain(blur(kernel=3),h264(crf=28,preset=medium))``) parses
back to the same setting. A value is checked against the field's type annotation (an int
for a float field becomes a float, so ``rotation(5)`` and ``rotation(5.0)`` are one
setting), then by the attack's own ``Params`` validation. Every problem (an unknown attack or
parameter, a bad value, a syntax error) raises BenchError naming the offending part.

Grammar (whitespace is ignored between tokens)::

    spec   := entry ("," entry)*
    entry  := "all" | "paper" | NAME | GLOB | call
    call   := NAME "(" [arg ("," arg)*] ")"
    arg    := [NAME "="] value
    value  := NUMBER | STRING | NAME | "None" | call | "(" value ("," value)* ")"
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Optional, Union

from bench.core import registry
from bench.core.api import Attack, BenchError

CHAIN = "chain"
GLOB_CHARS = "*?["

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_./-]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<punct>[(),=])
""", re.VERBOSE)


@dataclass(frozen=True)
class Call:
    """``name(args)`` as written: positional ``args``, ``kwargs`` as (field, value) pairs."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()
    #: the text of the call in the spec, for messages
    text: str = ""


# --------------------------------------------------------------------------- syntax


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) tokens of ``text``; a character no token starts with raises."""
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise BenchError(f"syntax error in attack spec {text!r}: unexpected "
                             f"{text[pos]!r} at position {pos + 1}")
        kind = match.lastgroup
        if kind != "space":
            out.append((kind, match.group(), pos))
        pos = match.end()
    return out


class _Parser:
    """Recursive descent over the tokens of one entry (see the grammar above)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, what: str) -> BenchError:
        if self.pos < len(self.tokens):
            _, token, at = self.tokens[self.pos]
            where = f"{token!r} at position {at + 1}"
        else:
            where = "the end"
        return BenchError(f"syntax error in attack spec {self.text!r}: {what}, found {where}")

    def peek(self, text: Optional[str] = None, kind: Optional[str] = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        tk, tt, _ = self.tokens[self.pos]
        return (text is None or tt == text) and (kind is None or tk == kind)

    def expect(self, text: str) -> None:
        if not self.peek(text=text, kind="punct"):
            raise self.fail(f"expected {text!r}")
        self.pos += 1

    def entry(self) -> Call:
        if not self.peek(kind="name"):
            raise self.fail("expected an attack name")
        call = self.call()
        if self.pos != len(self.tokens):
            raise self.fail("expected the end of the entry (separate entries with ',')")
        return call

    def call(self) -> Call:
        _, name, start = self.tokens[self.pos]
        self.pos += 1
        self.expect("(")
        args: list = []
        kwargs: list = []
        while not self.peek(")", "punct"):
            if args or kwargs:
                self.expect(",")
            if self.peek(kind="name") and self.pos + 1 < len(self.tokens) \
                    and self.tokens[self.pos + 1][1] == "=":
                key = self.tokens[self.pos][1]
                self.pos += 2
                kwargs.append((key, self.value()))
            elif kwargs:
                raise self.fail("expected a keyword argument (positional ones come first)")
            else:
                args.append(self.value())
        _, _, end = self.tokens[self.pos]
        self.pos += 1
        return Call(name, tuple(args), tuple(kwargs), self.text[start:end + 1])

    def value(self) -> Any:
        if self.pos >= len(self.tokens):
            raise self.fail("expected a value")
        kind, token, _ = self.tokens[self.pos]
        if kind == "number":
            self.pos += 1
            number = float(token)
            return int(token) if re.fullmatch(r"[-+]?\d+", token) else number
        if kind == "string":
            self.pos += 1
            return token[1:-1]
        if kind == "name":
            if self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][1] == "(":
                call = self.call()
                return tuple(call.args) if call.name == "U" and not call.kwargs else call
            self.pos += 1
            return None if token == "None" else token
        if token == "(":
            self.pos += 1
            items = [self.value()]
            while self.peek(",", "punct"):
                self.pos += 1
                items.append(self.value())
            self.expect(")")
            return tuple(items)
        raise self.fail("expected a value")


def parse_call(text: str) -> Call:
    """One entry ``name(args)`` -> its Call (syntax only: names are not looked up)."""
    if len(registry.split_list(text)) > 1:  # also checks the parentheses and quotes
        raise BenchError(f"syntax error in attack spec {text!r}: one entry expected")
    return _Parser(text.strip()).entry()


# --------------------------------------------------------------------------- building


def _type_hints(params_cls) -> dict:
    """Field annotations of an attack's Params, resolved; {} when they cannot be."""
    module = sys.modules.get(params_cls.__module__)
    try:
        return typing.get_type_hints(params_cls, vars(module) if module else None)
    except Exception:  # an annotation that does not resolve: leave checks to Params
        return {}


def _conform(value: Any, hint: Any) -> Any:
    """``value`` as the annotation ``hint`` wants it (int -> float for a float field, an
    integral float -> int for an int field); raises TypeError when it cannot be one."""
    if hint is Any or hint is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        arms = typing.get_args(hint)
        if value is None:
            if type(None) in arms:
                return None
            raise TypeError
        exact = [a for a in arms if isinstance(a, type) and type(value) is a]
        for arm in exact + [a for a in arms if a not in exact and a is not type(None)]:
            try:
                return _conform(value, arm)
            except TypeError:
                continue
        raise TypeError
    if origin in (tuple, list):
        if isinstance(value, tuple):
            return value
        raise TypeError
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError
    if hint is tuple:
        if isinstance(value, tuple):
            return value
        raise TypeError
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError
    return value


def _hint_text(hint: Any) -> str:
    """``int``, ``float or tuple``, ``float or None``: an annotation as a reader says it."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_hint_text(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _show(value: Any) -> str:
    if isinstance(value, Call):
        return value.text or value.name
    return repr(value)


def build_call(call: Call) -> Attack:
    """The attack one ``name(args)`` call names (a chain's parts built in turn)."""
    if call.name == CHAIN:
        return _build_chain(call)
    try:
        cls = registry.get("attacks", call.name)
    except BenchError as exc:
        raise BenchError(f"{exc}; in {call.text!r}") from exc
    fields = [f for f in dataclasses.fields(cls.Params) if f.init]
    names = [f.name for f in fields]
    listed = ", ".join(names) or "none"
    if len(call.args) > len(fields):
        raise BenchError(f"attack {call.name!r} takes at most {len(fields)} argument(s) "
                         f"({listed}), got {len(call.args)} in {call.text!r}")
    given = dict(zip(names, call.args, strict=False))  # fewer args than fields is fine
    for key, value in call.kwargs:
        if key not in names:
            raise BenchError(f"attack {call.name!r} has no parameter {key!r} in {call.text!r} "
                             f"(its parameters: {listed})")
        if key in given:
            raise BenchError(f"parameter {key!r} of {call.name!r} given twice in {call.text!r}")
        given[key] = value
    hints = _type_hints(cls.Params)
    for key, value in given.items():
        if isinstance(value, Call):
            raise BenchError(f"bad value {_show(value)} for parameter {key!r} of "
                             f"{call.name!r} in {call.text!r}: attacks go inside chain(...)")
        if key in hints:
            try:
                given[key] = _conform(value, hints[key])
            except TypeError:
                raise BenchError(f"bad value {value!r} for parameter {key!r} of {call.name!r} "
                                 f"in {call.text!r} (expected {_hint_text(hints[key])})"
                                 ) from None
    try:
        params = cls.Params(**given)
        return cls(params)
    except BenchError as exc:
        raise BenchError(f"bad value in {call.text!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise BenchError(f"bad value in {call.text!r}: {type(exc).__name__}: {exc}") from exc


def _build_chain(call: Call) -> Attack:
    from attacks.chain import Chain

    if call.kwargs:
        raise BenchError(f"chain takes attacks, not keyword arguments, in {call.text!r}")
    if not call.args:
        raise BenchError(f"empty chain {call.text!r}: give its attacks, e.g. "
                         "chain(blur(3),h264(28))")
    parts = []
    for part in call.args:
        if isinstance(part, Call):
            parts.append(build_call(part))
        elif isinstance(part, str) and part and not any(c in part for c in GLOB_CHARS):
            if part == CHAIN:
                raise BenchError(f"a chain inside {call.text!r} needs its parts")
            parts.append(registry.get("attacks", part)())
        else:
            raise BenchError(f"chain part {_show(part)} in {call.text!r} is not an attack "
                             "(give name(args) or a name)")
    return Chain(Chain.Params(parts=tuple(parts)))


def build_entry(entry: str) -> list[Attack]:
    """The settings one top-level entry names: every grid point of each attack a name, glob,
    ``all`` or ``paper`` names; the one setting of ``name(args)`` or ``chain(...)``."""
    entry = entry.strip()
    if any(c in entry for c in "()'\"="):
        return [build_call(parse_call(entry))]
    out = []
    for name in registry.resolve("attacks", entry):
        cls = registry.get("attacks", name)
        out.extend(cls(params) for params in cls.grid())
    return out


def attack_groups(spec: str) -> list[list[Attack]]:
    """The settings a spec names, one list per attack entry: a name (or each attack a glob,
    ``all`` or ``paper`` names) gives its grid, the paper's setting first; ``name(args)`` and
    ``chain(...)`` give their one setting. The first setting of each list is the one every
    video gets under a profile's ``curve_videos``."""
    groups: list[list[Attack]] = []
    entries = registry.split_list(spec)
    if not entries:
        raise BenchError("no attacks given")
    for entry in entries:
        if any(c in entry for c in "()'\"="):
            groups.append(build_entry(entry))
            continue
        for name in registry.resolve("attacks", entry):
            cls = registry.get("attacks", name)
            groups.append([cls(params) for params in cls.grid()])
    return groups


def unique(attacks) -> list[Attack]:
    """``attacks`` without repeated settings (same canonical), in order."""
    seen: dict[str, Attack] = {}
    for attack in attacks:
        seen.setdefault(attack.canonical, attack)
    return list(seen.values())


__all__ = ["Call", "attack_groups", "build_call", "build_entry", "parse_call",
           "unique"]
