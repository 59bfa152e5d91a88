"""The results schema of a run folder: ``rows.csv``, ``sets.csv``, ``manifest.json``, ``samples/``.

``rows.csv``: one long row per (video, method, attack with params). Floats are raw (tLP is
*not* scaled by 100). ``status`` is ``ok`` (every metric that applies was computed, or cannot
be computed on this machine), ``unavailable`` (the method could not run here, e.g. its
checkpoint is absent; ``error`` holds the reason) or ``error`` (the method, the attack, the
input or a metric failed; ``error`` holds the message). ``metric_status`` is JSON
``{column: {"status": "unavailable" | "not_applicable" | "error", "reason": ...}}`` for each
metric the row lacks (NaN in its column), empty when it lacks none. ``attack_bytes`` is the
size of the attack's bitstream (a codec's packets, JPEG files) and ``attack_bpp`` its bits per
pixel, ``bytes * 8 / (T * H * W)``; both are empty for attacks without one. A plugin metric
adds its column after the built-in ones.
``sets.csv``: set-level metrics (FVD) per method and attack, with ``n`` videos and a 95%
bootstrap interval over videos (``ci_lo``, ``ci_hi``).
``samples/``: per method and attack one ``.npz`` (arrays ``cover``, ``watermarked``,
``attacked`` (3, H, W) and ``logo``, ``recovered`` (3, h, w), float32 in [0, 1]) for figures.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from bench.core.api import BenchError

ID_COLUMNS = ["video_id", "logo_id", "method", "method_version", "attack", "attack_version",
              "attack_params", "strength", "seed"]
#: the built-in row metrics (bench.metrics); a plugin metric's column follows them
METRIC_COLUMNS = ["w_psnr", "w_ssim", "patch_acc", "v_psnr", "v_ssim", "v_lpips", "tlp"]
TAIL_COLUMNS = ["embed_s", "extract_s", "attack_bytes", "attack_bpp", "status", "error",
                "metric_status"]
ROW_COLUMNS = [*ID_COLUMNS, *METRIC_COLUMNS, *TAIL_COLUMNS]
#: row columns derived from others (filled in for rows stored before they existed)
DERIVED_ROW_COLUMNS = ("attack_bpp",)
SET_COLUMNS = [
    "method", "method_version", "attack", "attack_params", "metric", "value", "ci_lo", "ci_hi",
    "n", "status", "reason",
]
STATUSES = ("ok", "unavailable", "error")
TEXT_COLUMNS = ["video_id", "logo_id", "method", "method_version", "attack", "attack_version",
                "attack_params", "status", "error", "metric_status"]


@dataclass
class Results:
    """A run folder read back. ``rows``/``sets``: DataFrames with the columns above."""

    path: Path
    rows: pd.DataFrame
    sets: pd.DataFrame
    manifest: dict
    #: rows.csv ended in a cut line, which was left out
    truncated: bool = False

    def samples(self) -> list[Path]:
        return sorted((self.path / "samples").glob("*.npz"))


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file.

    The file gets the mode a plain ``open()`` would give it (0666 less the umask), not the
    0600 of the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def bits_per_pixel(size_bytes, shape) -> Optional[float]:
    """An attack's bitstream in bits per pixel, ``bytes * 8 / (T * H * W)`` for frames of
    ``shape`` (T, 3, H, W); None when there is no bitstream (``size_bytes`` None or NaN)."""
    if size_bytes is None or (isinstance(size_bytes, float) and math.isnan(size_bytes)):
        return None
    time, _, height, width = shape
    return float(size_bytes) * 8.0 / (time * height * width)


def row_columns(metric_columns: list[str]) -> list[str]:
    """The rows.csv columns of a run whose row metrics write ``metric_columns``."""
    return [*ID_COLUMNS, *metric_columns, *TAIL_COLUMNS]


def metric_status_text(status: dict[str, dict]) -> str:
    """The ``metric_status`` cell: JSON ``{column: {"status": ..., "reason": ...}}`` of the
    metrics a row lacks (``""`` when every metric was computed)."""
    return json.dumps(status, sort_keys=True) if status else ""


def metric_status(cell) -> dict[str, dict]:
    """A ``metric_status`` cell read back (empty, NaN or unreadable -> ``{}``)."""
    if not isinstance(cell, str) or not cell.strip():
        return {}
    try:
        value = json.loads(cell)
    except json.JSONDecodeError:
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) \
        else {}


def write_table(path: Path, records: list[dict], columns: list[str]) -> None:
    frame = pd.DataFrame.from_records(records, columns=columns)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


class RowsFile:
    """``rows.csv`` written as a run goes: the header when it is created, then each clip's
    rows appended and flushed to disk. A run's memory then stays flat in the number of
    videos, and a killed run leaves every finished clip's rows on disk (a cut last line is
    dropped by ``load_results``). The file equals ``write_table`` of all the rows."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = Path(path), list(columns)
        self.count = 0
        atomic_write_bytes(self.path, pd.DataFrame(columns=self.columns).to_csv(
            index=False).encode())

    def append(self, records: list[dict]) -> None:
        """Add ``records`` (dicts keyed by column; absent keys are empty) at the end."""
        if not records:
            return
        text = pd.DataFrame.from_records(records, columns=self.columns).to_csv(
            index=False, header=False)
        with open(self.path, "ab") as f:
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        self.count += len(records)


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
        data = rows_path.read_bytes()
    except OSError as exc:
        raise BenchError(f"cannot read {rows_path}: {exc.strerror or exc}") from exc
    truncated = bool(data) and not data.endswith(b"\n")
    if truncated:  # a killed writer or a cut copy: keep the whole lines only
        data = data[: data.rfind(b"\n") + 1]
    try:
        rows = pd.read_csv(io.BytesIO(data), dtype={c: str for c in TEXT_COLUMNS})
    except Exception as exc:
        raise BenchError(f"cannot read {rows_path}: {exc}") from exc
    if "patch_acc" not in rows.columns:  # results written before the metric existed
        rows["patch_acc"] = np.nan
    if "attack_bpp" not in rows.columns:  # results written before the column existed
        rows["attack_bpp"] = np.nan
    if "metric_status" not in rows.columns:  # results written before per-metric status
        rows["metric_status"] = ""
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise BenchError(f"{rows_path} lacks columns {missing}")
    sets_path = folder / "sets.csv"
    sets = (pd.read_csv(sets_path, dtype={"method_version": str, "reason": str})
            if sets_path.exists() else pd.DataFrame(columns=SET_COLUMNS))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    rows["error"] = rows["error"].fillna("")
    rows["metric_status"] = rows["metric_status"].fillna("")
    return Results(folder, rows, sets, manifest, truncated)


def usable_folder(path: str | Path, what: str) -> Path:
    """Create the folder ``path`` if needed and prove that a file can be written in it.

    ``what`` names it in the message (``results folder``); any failure raises BenchError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"{what} {path} cannot be written: {exc.strerror or exc}") from exc
    return path


def usable_file(path: str | Path, what: str) -> Path:
    """Check that the file ``path`` can be written (its folder is made if needed)."""
    path = Path(path)
    if path.is_dir():
        raise BenchError(f"{what} {path} is a folder, not a file")
    usable_folder(path.parent, f"the folder of {what}")
    return path


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def incomplete(results: Results) -> list[str]:
    """What keeps ``results`` from being one finished run, in words (``[]``: complete).

    Checked: the manifest exists and has ``finished``; ``sets.csv`` exists; ``rows.csv`` ends
    with a whole line, every row has a known status, and the row and video counts are the
    manifest's."""
    problems = []
    manifest = results.manifest or {}
    rows_path = results.path / "rows.csv"
    if not (results.path / "manifest.json").exists():
        problems.append("manifest.json is missing")
    elif not manifest.get("finished"):
        problems.append("the run did not finish (manifest.json has no 'finished': killed, or "
                        "still running)")
    if not (results.path / "sets.csv").exists():
        problems.append("sets.csv is missing")
    if results.truncated or (rows_path.exists() and not _ends_with_newline(rows_path)):
        problems.append("rows.csv ends in a cut line (truncated)")
    bad = int((~results.rows["status"].isin(STATUSES)).sum())
    if bad:
        problems.append(f"{bad} row(s) of rows.csv are malformed (status not one of "
                        f"{', '.join(STATUSES)})")
    if "rows" in manifest and int(manifest["rows"]) != len(results.rows):
        problems.append(f"rows.csv holds {len(results.rows)} rows, the manifest says "
                        f"{manifest['rows']}")
    videos = results.rows["video_id"].nunique()
    if "clips" in manifest and int(manifest["clips"]) != videos:
        problems.append(f"rows.csv covers {videos} videos, the manifest says {manifest['clips']}")
    return problems


def require_complete(results: Results, allow_partial: bool = False) -> list[str]:
    """``incomplete(results)``; raises BenchError listing it unless ``allow_partial``."""
    problems = incomplete(results)
    if problems and not allow_partial:
        raise BenchError(f"{results.path} is not a complete results folder: "
                         f"{'; '.join(problems)}. Rerun the same `bench run` command to finish "
                         "it (finished rows come from the cache), or pass --allow-partial")
    return problems


def usable_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with a known status (a cut last line of a truncated file is left out)."""
    return rows[rows["status"].isin(STATUSES)]


def version_text(value) -> str:
    """A version cell as text: ``1`` and ``1.0`` (a CSV column pandas read as float because
    of a blank cell) are the same version; a blank cell is ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
