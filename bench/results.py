"""The results schema of a run folder: ``rows.csv``, ``sets.csv``, ``manifest.json``, ``samples/``.

``rows.csv``: one long row per (video, method, attack with params). Floats are raw (tLP is
*not* scaled by 100). ``status`` is ``ok``, ``unavailable`` (some metric could not be
computed; ``error`` holds the reasons, the metric is NaN) or ``error`` (the pipeline failed for
that row; ``error`` holds the message).
``sets.csv``: set-level metrics (FVD) per method and attack, with ``n`` videos and a 95%
bootstrap interval over videos (``ci_lo``, ``ci_hi``).
``samples/``: per method and attack one ``.npz`` (arrays ``cover``, ``watermarked``,
``attacked`` (3, H, W) and ``logo``, ``recovered`` (3, h, w), float32 in [0, 1]) for figures.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.api import BenchError

ROW_COLUMNS = [
    "video_id", "logo_id", "method", "method_version", "attack", "attack_version",
    "attack_params", "strength", "seed", "w_psnr", "w_ssim", "patch_acc", "v_psnr", "v_ssim",
    "v_lpips", "tlp", "embed_s", "extract_s", "attack_bytes", "status", "error",
]
SET_COLUMNS = [
    "method", "method_version", "attack", "attack_params", "metric", "value", "ci_lo", "ci_hi",
    "n", "status", "reason",
]
STATUSES = ("ok", "unavailable", "error")
TEXT_COLUMNS = ["video_id", "logo_id", "method", "method_version", "attack", "attack_version",
                "attack_params", "status", "error"]


@dataclass
class Results:
    """A run folder read back. ``rows``/``sets``: DataFrames with the columns above."""

    path: Path
    rows: pd.DataFrame
    sets: pd.DataFrame
    manifest: dict

    def samples(self) -> list[Path]:
        return sorted((self.path / "samples").glob("*.npz"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table(path: Path, records: list[dict], columns: list[str]) -> None:
    frame = pd.DataFrame.from_records(records, columns=columns)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True).encode())


def sample_path(folder: Path, method: str, attack_canonical: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{method}__{attack_canonical}")
    return folder / "samples" / f"{safe}.npz"


def write_sample(folder: Path, method: str, attack_canonical: str, **arrays: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, method=np.array(method), attack=np.array(attack_canonical),
                        **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    atomic_write_bytes(sample_path(folder, method, attack_canonical), buf.getvalue())


def load_results(folder: str | Path) -> Results:
    """Read a run folder; a missing or malformed file raises BenchError naming it."""
    folder = Path(folder)
    rows_path = folder / "rows.csv"
    if not rows_path.exists():
        raise BenchError(f"{rows_path} not found: is {folder} a results folder of `bench run`?")
    try:
        rows = pd.read_csv(rows_path, dtype={c: str for c in TEXT_COLUMNS})
    except Exception as exc:
        raise BenchError(f"cannot read {rows_path}: {exc}") from exc
    if "patch_acc" not in rows.columns:  # results written before the metric existed
        rows["patch_acc"] = np.nan
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise BenchError(f"{rows_path} lacks columns {missing}")
    sets_path = folder / "sets.csv"
    sets = (pd.read_csv(sets_path, dtype={"method_version": str, "reason": str})
            if sets_path.exists() else pd.DataFrame(columns=SET_COLUMNS))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    rows["error"] = rows["error"].fillna("")
    return Results(folder, rows, sets, manifest)
