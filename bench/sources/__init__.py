"""Cover sources: the prompt lists, the offline clip generator, a folder source and logos.

``prompts.txt`` holds the 100 evaluation prompts (ids ``p000``..``p099``) and
``training_prompts.txt`` 200 disjoint training prompts (``t000``..``t199``), one per line as
``id<TAB>prompt``. Ids are stable: results are keyed by them. The subpackage imports
``bench.core`` only (tests/test_architecture.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bench.core.api import BenchError

PROMPT_FILES = {"eval": "prompts.txt", "train": "training_prompts.txt"}

__all__ = ["PROMPT_FILES", "load_prompts"]


def load_prompts(split: str = "eval") -> list[tuple[str, str]]:
    """The prompts of a split (``eval`` or ``train``) as a list of ``(id, prompt)``."""
    if split not in PROMPT_FILES:
        raise BenchError(f"unknown prompt split {split!r}; choose 'eval' or 'train'")
    return list(_read_prompt_file(PROMPT_FILES[split]))


@lru_cache(maxsize=None)
def _read_prompt_file(filename: str) -> tuple[tuple[str, str], ...]:
    path = Path(__file__).parent / filename
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        prompt_id, sep, prompt = line.partition("\t")
        if not sep or not prompt_id.strip() or not prompt.strip():
            raise BenchError(f"{path}:{number}: expected 'id<TAB>prompt', got {line!r}")
        if prompt_id in seen:
            raise BenchError(f"{path}:{number}: duplicate prompt id {prompt_id!r}")
        seen.add(prompt_id)
        rows.append((prompt_id.strip(), prompt.strip()))
    return tuple(rows)
