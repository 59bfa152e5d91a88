"""The paper's published figures (Safe-Sora, arXiv 2505.12667), for side-by-side columns.

See README.md in this folder for the source and setting. Values are as printed in the paper;
in particular ``tlp`` is on the paper's scale (which appears to be x100 of the raw value).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.api import BenchError

REFERENCE_DIR = Path(__file__).resolve().parent

#: method name as printed in the paper -> registry name
PAPER_METHOD_NAMES = {
    "Balujanet": "balujanet",
    "UDH": "udh",
    "PUSNet": "pusnet",
    "Safe-SD": "safe-sd",
    "WengNet": "wengnet",
    "Safe-Sora": "safe-sora",
}

#: registry name of each Safe-Sora ablation variant -> its row label in the paper's table
PAPER_ABLATION_NAMES = {
    "safe-sora/no-cfapm": "w/o CFAPM (no adaptive patch matching)",
    "safe-sora/no-rtl": "w/o RtL (no latent-based routing)",
    "safe-sora/no-fine": "w/o FS (no fine, region-level stage)",
    "safe-sora/no-sls": "w/o SLS (vanilla 3D scan instead of spatiotemporal local scanning)",
    "safe-sora/time-first": "w/o SFS (time-first instead of space-first scanning)",
    "safe-sora/no-msfi": "w/o MSFI (no multi-scale feature injection)",
    "safe-sora": "full model",
}

#: metric columns of Table 1, in the paper's order
TABLE1_METRICS = ["w_psnr", "w_ssim", "v_psnr", "v_ssim", "v_lpips", "tlp", "fvd"]


def _read(name: str) -> pd.DataFrame:
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise BenchError(f"paper reference file {path} is missing (reinstall safesora-bench)")
    return pd.read_csv(path)


def load_paper_table1() -> pd.DataFrame:
    """Table 1 of the paper: one row per method.

    Columns: ``method`` (registry name), ``paper_method`` (as printed), then ``w_psnr``,
    ``w_ssim``, ``v_psnr``, ``v_ssim``, ``v_lpips``, ``tlp`` (paper scale, about x100 of raw)
    and ``fvd``, as floats.
    """
    table = _read("paper_table1.csv")
    unknown = sorted(set(table["method"]) - set(PAPER_METHOD_NAMES))
    if unknown:
        raise BenchError(f"paper_table1.csv names methods without a registry name: {unknown}")
    table = table.rename(columns={"method": "paper_method"})
    table.insert(0, "method", table["paper_method"].map(PAPER_METHOD_NAMES))
    for column in TABLE1_METRICS:
        table[column] = table[column].astype(float)
    return table


def load_paper_ablation() -> pd.DataFrame:
    """The paper's ablation table: ``variant`` (str), ``w_psnr``, ``v_psnr``, ``fvd`` (float).

    Variant names contain unquoted commas in the file, so each line is split at its last
    three commas rather than read as plain CSV.
    """
    path = REFERENCE_DIR / "paper_ablation.csv"
    if not path.is_file():
        raise BenchError(f"paper reference file {path} is missing (reinstall safesora-bench)")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    header = lines[0].split(",")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.rsplit(",", len(header) - 1)
        if len(parts) != len(header):
            raise BenchError(f"{path}:{number}: expected {len(header)} fields, got {line!r}")
        try:
            records.append([parts[0], *(float(p) for p in parts[1:])])
        except ValueError as exc:
            raise BenchError(f"{path}:{number}: {exc}") from exc
    return pd.DataFrame.from_records(records, columns=header)


__all__ = ["PAPER_ABLATION_NAMES", "PAPER_METHOD_NAMES", "REFERENCE_DIR", "TABLE1_METRICS",
           "load_paper_ablation", "load_paper_table1"]
