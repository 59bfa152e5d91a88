"""Name -> factory registries filled from entry points (built-ins are declared there too).

Groups: ``bench.methods``, ``bench.attacks``, ``bench.metrics``, ``bench.sources``. A plugin is a
pip-installable package that declares entry points in these groups; nothing else is needed.
Entry points load lazily; unknown names fail with a did-you-mean list.
"""

from __future__ import annotations

import difflib
import fnmatch
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from bench.api import BenchError

KINDS = ("methods", "attacks", "metrics", "sources")


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
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise BenchError(f"unknown {kind[:-1]} {name!r}{hint} (known: {', '.join(sorted(eps))})")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must not hide the others
        raise BenchError(f"{kind[:-1]} {name!r} failed to load: {exc}") from exc


def resolve(kind: str, spec: str) -> list[str]:
    """``all`` or ``A,B`` (globs allowed) -> the list of names; unknown names raise."""
    if spec.strip() in ("all", "*"):
        return names(kind)
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matched = names(kind, part) if any(c in part for c in "*?[") else [part]
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
