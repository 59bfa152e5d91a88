"""Name -> factory registries filled from entry points (built-ins are declared there too).

Groups: ``bench.methods``, ``bench.attacks``, ``bench.metrics``, ``bench.sources``. A plugin is a
pip-installable package that declares entry points in these groups; nothing else is needed.
Entry points load lazily; unknown names fail with a did-you-mean list.

Attacks built from other attacks (``chain``, attacks/chain.py) are known here by name but
are not entry points: they have no setting without their parts, so ``names`` and ``all``
leave them out and they are given with their parts on ``--attacks`` (bench/run/attack_spec.py).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from bench.core.api import BenchError

KINDS = ("methods", "attacks", "metrics", "sources")
#: attacks made of other attacks: name -> (module, class, the syntax ``bench list`` shows)
COMPOSED_ATTACKS = {"chain": ("attacks.chain", "Chain", "chain(A(...),B(...),...)")}
#: the family of the paper's six attacks (``--attacks paper``)
PAPER_FAMILY = "paper"


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict:
    if kind not in KINDS:
        raise BenchError(f"unknown registry {kind!r}; choose one of {', '.join(KINDS)}")
    eps = {ep.name: ep for ep in entry_points(group=f"bench.{kind}")}
    if not eps:
        raise BenchError(
            f"no entry points in group bench.{kind}: safesora-bench is not installed "
            "(run `pip install -e .` in the repository)")
    return eps


def names(kind: str, pattern: str = "*") -> list[str]:
    """Registered names of a kind, sorted, filtered by a glob (``safe-sora*``)."""
    return sorted(n for n in _entry_points(kind) if fnmatch.fnmatchcase(n, pattern))


@lru_cache(maxsize=None)
def get(kind: str, name: str) -> Any:
    """The object registered under ``name`` (a class or factory); did-you-mean on a miss."""
    eps = _entry_points(kind)
    if kind == "attacks" and name in COMPOSED_ATTACKS:
        module, attr, _ = COMPOSED_ATTACKS[name]
        return getattr(importlib.import_module(module), attr)
    if name not in eps:
        known = list(eps) + (list(COMPOSED_ATTACKS) if kind == "attacks" else [])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise BenchError(f"unknown {kind[:-1]} {name!r}{hint} (known: {', '.join(sorted(eps))})")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must not hide the others
        raise BenchError(f"{kind[:-1]} {name!r} failed to load: {exc}") from exc


def split_list(spec: str) -> list[str]:
    """The top-level entries of a comma-separated list, stripped (empty ones dropped);
    commas inside parentheses or quotes do not split (``blur,chain(blur(3),noise(0.05))``
    is two entries). Unbalanced parentheses or an
    unclosed quote raise BenchError."""
    entries, depth, quote, start = [], 0, "", 0
    opened: list[int] = []
    for i, char in enumerate(spec):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
            opened.append(i)
        elif char == ")":
            if depth == 0:
                raise BenchError(f"unbalanced parentheses in {spec!r}: the ')' at position "
                                 f"{i + 1} closes nothing")
            depth -= 1
            opened.pop()
        elif char == "," and depth == 0:
            entries.append(spec[start:i])
            start = i + 1
    if quote:
        raise BenchError(f"unclosed quote {quote} in {spec!r}")
    if depth:
        raise BenchError(f"unbalanced parentheses in {spec!r}: the '(' at position "
                         f"{opened[-1] + 1} is never closed")
    entries.append(spec[start:])
    return [e.strip() for e in entries if e.strip()]


def family_names(family: str) -> list[str]:
    """Registered attacks whose ``family`` is ``family``, sorted."""
    return [n for n in names("attacks") if getattr(get("attacks", n), "family", "") == family]


def resolve(kind: str, spec: str) -> list[str]:
    """``all`` or ``A,B`` (globs allowed) -> the list of names; unknown names raise.

    For attacks also ``paper`` (the attacks of family ``paper``) and entries ``name(args)``
    or ``chain(...)``, which give their name (their arguments are parsed and checked by
    ``bench.run.attack_spec.attack_groups``, which gives the settings they stand for)."""
    if spec.strip() in ("all", "*"):
        return names(kind)
    out: list[str] = []
    for part in split_list(spec):
        if part == "all":
            matched = names(kind)
        elif kind == "attacks" and part == PAPER_FAMILY:
            matched = family_names(PAPER_FAMILY)
        elif any(c in part for c in "()'\"="):
            if kind != "attacks":
                raise BenchError(f"{kind} take no arguments: {part!r}")
            matched = [part.partition("(")[0].strip()]  # its arguments: bench.run.attack_spec
        elif any(c in part for c in "*?["):
            matched = names(kind, part)
        elif kind == "attacks" and part in COMPOSED_ATTACKS:
            raise BenchError(f"attack {part!r} needs its parts: "
                             f"{COMPOSED_ATTACKS[part][2]}, e.g. chain(blur(3),h264(28))")
        else:
            matched = [part]
        if not matched:
            raise BenchError(f"no {kind} match {part!r}")
        for name in matched:
            get(kind, name)  # validates, with did-you-mean
            if name not in out:
                out.append(name)
    if not out:
        raise BenchError(f"no {kind} given")
    return out


def describe(kind: str, name: str) -> tuple[str, str]:
    """(version, one-line description) of a registered object."""
    obj = get(kind, name)
    spec = getattr(obj, "spec", None)
    version = str(getattr(spec or obj, "version", "?"))
    desc = str(getattr(spec or obj, "description", "") or (obj.__doc__ or "")).strip()
    return version, desc.splitlines()[0] if desc else ""
