"""bench.report.build on synthetic results folders: files written, values equal independent
means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.core.reference import PAPER_METHOD_NAMES, load_paper_ablation, load_paper_table1
from bench.core.results import (
    ROW_COLUMNS,
    SET_COLUMNS,
    load_results,
    metric_status_text,
    write_manifest,
    write_sample,
    write_table,
)
from bench.report import build as report

METHODS = {"dct-qim": "2", "safe-sora": "1"}
VIDEOS = [f"v{i}" for i in range(5)]
ATTACKS = [("identity", "identity", math.nan), ("blur", "blur(k=3)", 3.0),
           ("blur", "blur(k=5)", 5.0), ("blur", "blur(k=7)", 7.0),
           ("h264", "h264(crf=24)", 24.0)]
LPIPS_REASON = "LPIPS needs torchvision's AlexNet weights"
ERROR_ROW = ("dct-qim", "v3", "blur(k=7)")


def make_rows(seed: int = 0) -> list[dict]:
    """5 videos x 2 methods x 5 attack settings; v_lpips unavailable; one error row."""
    rng = np.random.default_rng(seed)
    records = []
    for m_index, (method, version) in enumerate(METHODS.items()):
        for video in VIDEOS:
            video_metrics = {"v_psnr": 30 + 5 * m_index + rng.normal(),
                             "v_ssim": 0.9 + 0.01 * rng.random(), "v_lpips": math.nan,
                             "tlp": 0.01 + 0.005 * rng.random()}
            for attack, params, strength in ATTACKS:
                row = {"video_id": video, "logo_id": "logo0", "method": method,
                       "method_version": version, "attack": attack, "attack_version": "1",
                       "attack_params": params, "strength": strength, "seed": 7,
                       "embed_s": 0.1, "extract_s": 0.1, "attack_bytes": None}
                if (method, video, params) == ERROR_ROW:
                    row.update(status="error", error="RuntimeError: boom")
                else:
                    drop = 0.0 if math.isnan(strength) else strength
                    row.update(video_metrics, w_psnr=40 - drop + 3 * m_index + rng.normal(),
                               w_ssim=0.85 - drop / 100 + 0.1 * rng.random(),
                               status="ok", error="",
                               metric_status=metric_status_text(
                                   {"v_lpips": {"status": "unavailable",
                                                "reason": LPIPS_REASON}}))
                records.append(row)
    return records


def make_results(folder, rows: list[dict] | None = None, samples: bool = True):
    rows = make_rows() if rows is None else rows
    write_table(folder / "rows.csv", rows, ROW_COLUMNS)
    sets = [{"method": m, "method_version": v, "attack": "identity", "attack_params": "identity",
             "metric": "fvd", "value": math.nan, "n": 5, "status": "unavailable",
             "reason": "FVD needs I3D"} for m, v in METHODS.items()]
    write_table(folder / "sets.csv", sets, SET_COLUMNS)
    write_manifest(folder / "manifest.json", {"profile": {"name": "tiny"}, "git": "abc123",
                                              "started": "2025-01-01T00:00:00",
                                              "finished": "2025-01-01T00:01:00",
                                              "rows": len(rows),
                                              "clips": len({r["video_id"] for r in rows}),
                                              "device": "cpu: test"})
    if samples:
        rng = np.random.default_rng(1)
        frame = rng.random((3, 16, 16)).astype(np.float32)
        logo = rng.random((3, 8, 8)).astype(np.float32)
        for method in METHODS:
            for params in ("identity", "h264(crf=24)"):
                write_sample(folder, method, params, cover=frame, watermarked=frame * 0.9,
                             attacked=frame * 0.8, logo=logo, recovered=logo * 0.5)
    return folder


def independent_per_video(frame: pd.DataFrame, column: str, attack: str | None = None):
    """method -> per-video Series, computed with plain pandas."""
    ok = frame[frame["status"] != "error"]
    if attack is not None:
        ok = ok[ok["attack"] == attack]
    return {m: g.drop_duplicates("video_id").set_index("video_id")[column]
            for m, g in ok.groupby("method")}


def test_report_files_and_table1_values(tmp_path):
    results = make_results(tmp_path / "run")
    out = tmp_path / "report"
    written = report.build_report(results, out)
    names = {p.name for p in written}
    for name in ("table1.csv", "table1.md", "robustness.csv", "robustness.md", "README.md",
                 "robustness_blur.png", "robustness_h264.png", "robustness_grid.png",
                 "robustness_heatmap.png", "robustness_heatmap.csv",
                 "robustness_family_paper.png", "samples_dct-qim.png", "samples_safe-sora.png"):
        assert name in names, name
        assert (out / name).stat().st_size > 0
    assert "robustness_identity.png" not in names  # identity has no numeric strength

    raw = pd.DataFrame(make_rows())
    table = pd.read_csv(out / "table1.csv").set_index("method")
    w_psnr = independent_per_video(raw, "w_psnr", "identity")
    v_psnr = independent_per_video(raw, "v_psnr")
    tlp = independent_per_video(raw, "tlp")
    for method in METHODS:
        assert table.loc[method, "w_psnr"] == pytest.approx(w_psnr[method].mean(), abs=1e-9)
        assert table.loc[method, "v_psnr"] == pytest.approx(v_psnr[method].mean(), abs=1e-9)
        assert table.loc[method, "tlp_x100"] == pytest.approx(100 * tlp[method].mean(), abs=1e-9)
        assert table.loc[method, "w_psnr_lo"] <= table.loc[method, "w_psnr"] \
            <= table.loc[method, "w_psnr_hi"]
        assert table.loc[method, "w_psnr_n"] == 5
        assert table.loc[method, "v_psnr_n"] == 5
        assert math.isnan(table.loc[method, "v_lpips"]) and table.loc[method, "v_lpips_n"] == 0
        assert math.isnan(table.loc[method, "fvd"])
    # paper figures side by side only for methods the paper has
    paper = load_paper_table1().set_index("method")
    assert table.loc["safe-sora", "paper_w_psnr"] == paper.loc["safe-sora", "w_psnr"]
    assert table.loc["safe-sora", "paper_tlp_x100"] == paper.loc["safe-sora", "tlp"]
    assert math.isnan(table.loc["dct-qim", "paper_w_psnr"])

    text = (out / "README.md").read_text()
    assert "unavailable" in text and LPIPS_REASON in text and "FVD needs I3D" in text
    assert "1 error row(s)" in text and "RuntimeError: boom" in text
    assert "tiny" in text and "abc123" in text and "dct-qim (v2)" in text
    assert "x100" in (out / "table1.md").read_text()
    assert "![robustness_blur](robustness_blur.png)" in text


def test_robustness_values_and_error_row(tmp_path):
    out = tmp_path / "report"
    report.build_report(make_results(tmp_path / "run", samples=False), out)
    table = pd.read_csv(out / "robustness.csv")
    raw = pd.DataFrame(make_rows())
    ok = raw[raw["status"] != "error"]
    expected = ok.groupby(["method", "attack_params"])["w_ssim"].mean()
    assert len(table) == len(METHODS) * len(ATTACKS)
    for _, row in table.iterrows():
        key = (row["method"], row["attack_params"])
        assert row["w_ssim"] == pytest.approx(expected[key], abs=1e-12)
    blur = table[(table["method"] == "dct-qim") & (table["attack"] == "blur")]
    assert list(blur["strength"]) == [3.0, 5.0, 7.0]  # sorted by strength
    bad = table[(table["method"] == "dct-qim") & (table["attack_params"] == "blur(k=7)")].iloc[0]
    assert bad["errors"] == 1 and bad["w_psnr_n"] == 4 and bad["n_videos"] == 4


def test_best_marker_needs_a_significant_paired_difference(tmp_path):
    rows = []
    for i in range(12):
        for method, shift in (("a", 0.0), ("b", 3.0)):
            rows.append({"video_id": f"v{i}", "method": method, "method_version": "1",
                         "attack": "identity", "attack_version": "1",
                         "attack_params": "identity", "strength": math.nan, "seed": 0,
                         "w_psnr": 30 + i + shift, "w_ssim": 0.5, "v_psnr": 30 + i % 3,
                         "v_ssim": 0.9, "v_lpips": 0.1, "tlp": 0.01, "status": "ok",
                         "error": ""})
    write_table(tmp_path / "rows.csv", rows, ROW_COLUMNS)
    table = report.quality_table(load_results(tmp_path)).set_index("method")
    assert table.loc["b", "w_psnr_sig"] and table.loc["b", "w_psnr_p"] < 0.01
    assert not table.loc["a", "w_psnr_sig"]
    assert not table["w_ssim_sig"].any()  # a tie: no best method
    assert not table["v_psnr_sig"].any()  # identical values: a tie too
    assert report.MARK in report.table1_markdown(table.reset_index())


@pytest.mark.parametrize("case", ["one_method", "single_point", "all_nan", "all_errors"])
def test_report_degrades_gracefully(tmp_path, case):
    rows = make_rows()
    if case == "one_method":
        rows = [r for r in rows if r["method"] == "safe-sora"]
    elif case == "single_point":
        rows = [r for r in rows if r["attack_params"] in ("identity", "blur(k=5)")]
    elif case == "all_nan":
        for r in rows:
            r.update(w_psnr=math.nan, w_ssim=math.nan, v_psnr=math.nan, v_ssim=math.nan,
                     tlp=math.nan, status="unavailable", error="w_psnr: no logo")
    elif case == "all_errors":
        for r in rows:
            r.update(w_psnr=math.nan, w_ssim=math.nan, v_psnr=math.nan, v_ssim=math.nan,
                     tlp=math.nan, status="error", error="ValueError: broken")
    out = tmp_path / "report"
    written = report.build_report(make_results(tmp_path / "run", rows), out)
    assert (out / "README.md") in written
    table = pd.read_csv(out / "table1.csv")
    assert len(table) == len({r["method"] for r in rows})
    md = (out / "table1.md").read_text()
    if case in ("all_nan", "all_errors"):
        assert table["w_psnr"].isna().all()
        assert "unavailable" in md
    if case == "single_point":
        assert (out / "robustness_blur.png").exists()
    if case == "all_errors":
        assert "every row of this method is an error row" in (out / "README.md").read_text()


def test_metric_reasons_come_from_the_structured_status():
    """Reasons per metric are read from ``metric_status`` JSON, never from error text; the
    reason of a row whose method could not run is filed under ``""``."""
    lpips = {"status": "unavailable", "reason": "no weights; see `bench weights`"}
    rows = pd.DataFrame({
        "status": ["ok", "ok", "unavailable", "error"],
        "error": ["", "", "checkpoint absent", "v_lpips: not a reason"],
        "metric_status": [metric_status_text({"v_lpips": lpips, "tlp": lpips}),
                          metric_status_text({"patch_acc": {"status": "not_applicable",
                                                            "reason": "no positions"}}),
                          "", ""]})
    reasons = report.metric_reasons(rows)
    assert reasons == {"v_lpips": [lpips["reason"]], "tlp": [lpips["reason"]],
                       "patch_acc": ["no positions"], "": ["checkpoint absent"]}
    assert report.not_applicable(rows.iloc[[1]], "patch_acc")
    assert not report.not_applicable(rows, "patch_acc")


def test_format_cell():
    assert report.format_cell(math.nan, math.nan, math.nan, 0) == "unavailable"
    assert report.format_cell(37.712, 36.5, 38.25, 5, 5) == "37.71 [36.50, 38.25]"
    assert report.format_cell(0.5, 0.4, 0.6, 3, 5) == "0.500 [0.400, 0.600] (n=3)"


def test_paper_reference_tables():
    table = load_paper_table1()
    assert list(table["method"]) == list(PAPER_METHOD_NAMES.values())
    row = table.set_index("method").loc["safe-sora"]
    assert (row["paper_method"], row["w_psnr"], row["tlp"], row["fvd"]) == \
        ("Safe-Sora", 37.71, 0.38, 3.77)
    ablation = load_paper_ablation()
    assert list(ablation.columns) == ["variant", "w_psnr", "v_psnr", "fvd"]
    assert len(ablation) == 7


def test_training_summary_values(tmp_path):
    """Card figures come from the manifest, timings are medians of the rows' own timings."""
    rows = make_rows()
    rng = np.random.default_rng(3)
    for row in rows:  # per-video embed time, per-row extract time
        row["embed_s"] = 0.01 * (1 + int(row["video_id"][1:]))
        row["extract_s"] = float(rng.uniform(0.1, 0.3))
    folder = make_results(tmp_path / "run", rows=rows, samples=False)
    manifest = {"profile": {"name": "tiny"}, "git": "abc123", "device": "cpu: test",
                "finished": "2025-01-01T00:01:00", "training": {"dct-qim": {"trainable": False},
                             "safe-sora": {"trainable": True, "parameters": 1234,
                                           "checkpoint_bytes": 2_500_000, "steps": 300,
                                           "training_seconds": 90.0,
                                           "training_device": "cpu (x86_64, 2 threads)",
                                           "validation_w_psnr": 21.5,
                                           "validation_v_psnr": 33.25}}}
    write_manifest(folder / "manifest.json", manifest)
    out = tmp_path / "report"
    report.build_report(folder, out)
    table = pd.read_csv(out / "training.csv").set_index("method")
    raw = pd.DataFrame(rows)
    for method in METHODS:
        mine = raw[(raw["method"] == method) & (raw["status"] != "error")]
        per_video = sorted(mine.groupby("video_id")["embed_s"].first())
        assert table.loc[method, "embed_ms"] == pytest.approx(
            1000 * float(np.median(per_video)))
        clean = mine[mine["attack"] == "identity"]["extract_s"]
        assert table.loc[method, "extract_ms"] == pytest.approx(
            1000 * float(np.median(clean)))
        assert table.loc[method, "n"] == 5
    assert table.loc["safe-sora", "checkpoint_mb"] == pytest.approx(2.5)
    assert table.loc["safe-sora", "training_min"] == pytest.approx(1.5)
    assert table.loc["safe-sora", "parameters"] == 1234
    assert math.isnan(table.loc["dct-qim", "parameters"])
    text = (out / "README.md").read_text()
    assert "## Training summary" in text
    assert "no weights" in text and "21.50 / 33.25" in text and "1,234" in text


def test_training_summary_without_manifest_entries(tmp_path):
    """Results from a run that recorded no training info still report timings."""
    out = tmp_path / "report"
    report.build_report(make_results(tmp_path / "run", samples=False), out)
    table = pd.read_csv(out / "training.csv")
    assert set(table["method"]) == set(METHODS)
    assert (table["extract_ms"] > 0).all()
    assert "not recorded" in (out / "README.md").read_text()


def test_ablation_table_from_run_and_paper(tmp_path):
    """The full model's measured cells equal Table 1's; variants not run say so; the paper's
    figures sit beside."""
    folder = make_results(tmp_path / "run", samples=False)
    out = tmp_path / "report"
    report.build_report(folder, out)
    ablation = pd.read_csv(out / "ablation.csv").set_index("method")
    table1 = pd.read_csv(out / "table1.csv").set_index("method")
    assert list(ablation.index)[-1] == "safe-sora"  # the paper's order: full model last
    assert bool(ablation.loc["safe-sora", "in_run"])
    assert ablation.loc["safe-sora", "w_psnr"] == pytest.approx(table1.loc["safe-sora", "w_psnr"])
    assert ablation.loc["safe-sora", "paper_w_psnr"] == 37.71
    assert not bool(ablation.loc["safe-sora/no-msfi", "in_run"])
    assert ablation.loc["safe-sora/no-msfi", "paper_fvd"] == 14.11
    text = (out / "README.md").read_text()
    assert "## Ablation" in text and "not run" in text and "w/o MSFI" in text


def test_ablation_table_pairs_variants_with_the_full_model_and_shows_their_budget(tmp_path):
    """A variant's ΔW-PSNR is the mean per-video difference to the full model over the
    videos both have (checked against the offsets put in, scipy's Wilcoxon for p); steps and
    warm-start origin come from the manifest's training entries."""
    from scipy.stats import wilcoxon

    rows = make_rows()
    offsets = {"v0": -1.0, "v1": -0.5, "v2": -2.0, "v3": 0.5}  # v4 not run for the variant
    variant = []
    for row in rows:
        if row["method"] == "safe-sora" and row["video_id"] in offsets \
                and row["status"] != "error":
            variant.append({**row, "method": "safe-sora/no-msfi",
                            "w_psnr": row["w_psnr"] + offsets[row["video_id"]]})
    folder = make_results(tmp_path / "run", rows=rows + variant, samples=False)
    training = {"safe-sora": {"trainable": True, "steps": 1000, "init_method": "safe-sora",
                              "init_steps": 800},
                "safe-sora/no-msfi": {"trainable": True, "steps": 1000,
                                      "init_method": "safe-sora", "init_steps": 800}}
    write_manifest(folder / "manifest.json", {"profile": {"name": "tiny"}, "git": "abc123",
                                              "started": "2025-01-01T00:00:00",
                                              "finished": "2025-01-01T00:01:00",
                                              "device": "cpu: test", "training": training})
    out = tmp_path / "report"
    report.build_report(folder, out)
    ablation = pd.read_csv(out / "ablation.csv").set_index("method")
    row = ablation.loc["safe-sora/no-msfi"]
    diffs = list(offsets.values())
    assert row["d_w_psnr"] == pytest.approx(np.mean(diffs), abs=1e-9)
    assert row["d_w_psnr_n"] == 4
    assert row["d_w_psnr_lo"] <= row["d_w_psnr"] <= row["d_w_psnr_hi"]
    assert row["d_w_psnr_p"] == pytest.approx(wilcoxon(diffs).pvalue)
    assert row["steps"] == 1000 and row["origin"] == "from safe-sora at 800 steps"
    assert math.isnan(ablation.loc["safe-sora", "d_w_psnr"])
    assert ablation.loc["safe-sora/no-sls", "d_w_psnr_n"] == 0  # not in the run
    text = (out / "README.md").read_text()
    assert "1,000 (from safe-sora at 800 steps)" in text and "reference" in text
