"""Content-addressed cache of watermarked videos and per-row results, outside the package.

Layout: ``ROOT/KIND/ab/abcdef....{json,pt}``; keys are SHA-256 hashes of everything that
determines the value (input content hashes, method/attack/metric versions, seeds), so a killed
run resumes where it stopped and a changed version recomputes only its own entries. Writes are
atomic (temp file + rename): a reader never sees a half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from bench.results import atomic_write_bytes

ENV_VAR = "SAFESORA_BENCH_CACHE"


def default_cache_dir() -> Path:
    """``$SAFESORA_BENCH_CACHE``, else ``$XDG_CACHE_HOME/safesora-bench`` (``~/.cache``)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "safesora-bench"


def make_key(*parts: Any) -> str:
    """A stable SHA-256 hex key of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tensor_digest(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (content address of a clip or logo)."""
    h = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Cache:
    """A directory of JSON and tensor entries addressed by key; ``root=None`` disables it."""

    def __init__(self, root: Optional[Path]):
        self.root = Path(root) if root is not None else None

    def _path(self, kind: str, key: str, suffix: str) -> Optional[Path]:
        if self.root is None:
            return None
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def get_json(self, kind: str, key: str) -> Optional[dict]:
        path = self._path(kind, key, ".json")
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is recomputed

    def put_json(self, kind: str, key: str, value: dict) -> None:
        path = self._path(kind, key, ".json")
        if path is not None:
            atomic_write_bytes(path, json.dumps(value, allow_nan=True).encode())

    def get_tensors(self, kind: str, key: str) -> Optional[dict[str, torch.Tensor]]:
        path = self._path(kind, key, ".pt")
        if path is None or not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None

    def put_tensors(self, kind: str, key: str, value: dict[str, torch.Tensor]) -> None:
        path = self._path(kind, key, ".pt")
        if path is not None:
            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in value.items()}, buf)
            atomic_write_bytes(path, buf.getvalue())
