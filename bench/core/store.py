"""Content-addressed cache of watermarked videos and per-row results, outside the package.

Layout: ``ROOT/KIND/ab/abcdef....{json,pt}``; keys are SHA-256 hashes of everything that
determines the value (input content hashes, method/attack/metric versions, seeds), so a killed
run resumes where it stopped and a changed version recomputes only its own entries. Writes are
atomic (temp file + rename): a reader never sees a half-written entry.

Every entry carries ``SCHEMA`` (JSON: ``{"schema": N, "value": {...}}``; tensors: a ``_schema``
entry beside the tensors) and is validated on read: an entry of another schema, without the
keys its reader needs, or failing the reader's check is *rejected* (counted in ``rejected``,
read as absent, so it is recomputed). A failed write is counted in ``write_errors`` and the run
goes on without that entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from bench.core.results import atomic_write_bytes, usable_folder

ENV_VAR = "SAFESORA_BENCH_CACHE"
#: bump when the layout of an entry changes: entries of another schema are recomputed
SCHEMA = 1
SCHEMA_KEY = "_schema"


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
    """A directory of JSON and tensor entries addressed by key; ``root=None`` disables it.

    ``rejected``: entries found but unusable, per kind; ``write_errors``: failed writes."""

    def __init__(self, root: Optional[Path]):
        self.root = Path(root) if root is not None else None
        self._rejected: set[tuple[str, str]] = set()
        self.write_errors = 0
        self.last_write_error = ""

    def check_usable(self) -> None:
        """Create the cache folder if needed and prove it writable; BenchError if not."""
        if self.root is not None:
            usable_folder(self.root, "cache folder")

    def _path(self, kind: str, key: str, suffix: str) -> Optional[Path]:
        if self.root is None:
            return None
        return self.root / kind / key[:2] / f"{key}{suffix}"

    @property
    def rejected(self) -> Counter:
        """Distinct entries rejected on read, per kind."""
        return Counter(kind for kind, _ in self._rejected)

    def _reject(self, kind: str, key: str) -> None:
        self._rejected.add((kind, key))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:  # disk full, folder removed, ...: the value is still good
            self.write_errors += 1
            self.last_write_error = f"{path}: {exc.strerror or exc}"

    def get_json(self, kind: str, key: str, required: tuple[str, ...] = (),
                 valid: Optional[Callable[[dict], bool]] = None) -> Optional[dict]:
        """The entry's value, or None when absent or rejected (another schema, a key of
        ``required`` missing, or ``valid(value)`` false)."""
        path = self._path(kind, key, ".json")
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            entry = None  # a damaged entry is recomputed
        value = entry.get("value") if isinstance(entry, dict) else None
        if (not isinstance(entry, dict) or entry.get("schema") != SCHEMA
                or not isinstance(value, dict) or any(k not in value for k in required)
                or (valid is not None and not _checked(valid, value))):
            self._reject(kind, key)
            return None
        return value

    def put_json(self, kind: str, key: str, value: dict) -> None:
        path = self._path(kind, key, ".json")
        if path is not None:
            self._write(path, json.dumps({"schema": SCHEMA, "value": value},
                                         allow_nan=True).encode())

    def get_tensors(self, kind: str, key: str, required: tuple[str, ...] = (),
                    valid: Optional[Callable[[dict], bool]] = None
                    ) -> Optional[dict[str, torch.Tensor]]:
        """The entry's tensors, or None when absent or rejected (unreadable, not weights-only,
        another schema, a tensor of ``required`` missing, or ``valid(tensors)`` false)."""
        path = self._path(kind, key, ".pt")
        if path is None or not path.exists():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            entry = None
        if (not isinstance(entry, dict) or entry.get(SCHEMA_KEY) != SCHEMA
                or any(not isinstance(entry.get(k), torch.Tensor) for k in required)):
            self._reject(kind, key)
            return None
        tensors = {k: v for k, v in entry.items() if k != SCHEMA_KEY}
        if valid is not None and not _checked(valid, tensors):
            self._reject(kind, key)
            return None
        return tensors

    def put_tensors(self, kind: str, key: str, value: dict[str, torch.Tensor]) -> None:
        path = self._path(kind, key, ".pt")
        if path is not None:
            buf = io.BytesIO()
            torch.save({**{k: v.detach().cpu() for k, v in value.items()}, SCHEMA_KEY: SCHEMA},
                       buf)
            self._write(path, buf.getvalue())


def _checked(valid: Callable[[dict], bool], value: dict) -> bool:
    """``valid(value)``, with any exception of the check counting as invalid."""
    try:
        return bool(valid(value))
    except Exception:
        return False


__all__ = ["Cache", "SCHEMA", "default_cache_dir", "make_key", "tensor_digest"]
