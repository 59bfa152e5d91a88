"""The report's robustness heat map and per-family curves, on a synthetic results folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.core.results import ROW_COLUMNS, SET_COLUMNS, write_manifest, write_table
from bench.report import build as report
from bench.report import plots

AVAILABLE = [f"m{i}" for i in range(9)]  # more than plots.MAX_LINES: two pages a family
MISSING = "udh"
MISSING_REASON = "checkpoint baselines/checkpoints/udh-tiny.pt is missing: run bench train"
BROKEN = "broken"
VIDEOS = ["v0", "v1", "v2", "v3"]
CHAIN = "chain(blur(kernel=3),noise(sigma=0.05))"
#: (attack, attack_params, strength, bits per pixel)
SETTINGS = [
    ("identity", "identity", math.nan, math.nan),
    ("blur", "blur(kernel=5)", 5.0, math.nan), ("blur", "blur(kernel=3)", 3.0, math.nan),
    ("blur", "blur(kernel=7)", 7.0, math.nan),
    ("h264", "h264(crf=24,preset=medium)", 24.0, 0.30),
    ("h264", "h264(crf=28,preset=medium)", 28.0, 0.18),
    ("h265", "h265(crf=28)", 28.0, 0.12), ("h265", "h265(crf=32)", 32.0, 0.07),
    ("chain", CHAIN, math.nan, math.nan),
]
FAMILIES = {"h265": "codec"}  # an attack of another family, not registered on this branch


def make_rows(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for index, method in enumerate([*AVAILABLE, MISSING, BROKEN]):
        for video in VIDEOS:
            for attack, params, strength, bpp in SETTINGS:
                row = {"video_id": video, "logo_id": "logo0", "method": method,
                       "method_version": "1", "attack": attack, "attack_version": "1",
                       "attack_params": params, "strength": strength, "seed": 1,
                       "attack_bpp": bpp * (1 + 0.1 * rng.random()), "embed_s": 0.1,
                       "extract_s": 0.1, "attack_bytes": None}
                if method == MISSING:
                    row.update(status="unavailable", error=MISSING_REASON)
                elif method == BROKEN or (method == "m1" and params == CHAIN):
                    row.update(status="error", error="RuntimeError: boom")
                else:
                    drop = 0.0 if math.isnan(strength) else strength / 4
                    row.update(w_psnr=40 - drop + index + rng.normal(), w_ssim=0.8,
                               v_psnr=35.0, v_ssim=0.9, tlp=0.01, status="ok", error="")
                out.append(row)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the report once; return (rows, report folder, every Figure plots made)."""
    made = []

    class Recording(plots.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    rows = make_rows()
    folder = tmp_path_factory.mktemp("run")
    write_table(folder / "rows.csv", rows, [*ROW_COLUMNS, "attack_bpp"])
    write_table(folder / "sets.csv", [], SET_COLUMNS)
    write_manifest(folder / "manifest.json", {"profile": {"name": "tiny"}, "git": "abc",
                                              "finished": "2025-01-01T00:00:00",
                                              "rows": len(rows), "clips": len(VIDEOS)})
    out = tmp_path_factory.mktemp("report")
    real_family = report.attack_family
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "Figure", Recording)
        patch.setattr(report, "attack_family", lambda a: FAMILIES.get(a) or real_family(a))
        report.build_report(folder, out)
    return pd.DataFrame(rows), out, made


def test_heatmap_csv_is_the_mean_per_method_and_default_setting(built):
    raw, out, _ = built
    table = pd.read_csv(out / "robustness_heatmap.csv").set_index("method")
    # the default setting of each registered attack, the run's first of another, chains given
    assert list(table.columns) == ["identity", "blur(kernel=5)", "h264(crf=24,preset=medium)",
                                   "h265(crf=28)", CHAIN, "absent"]
    expected = raw[raw["status"] != "error"].groupby(["method", "attack_params"])["w_psnr"]\
        .mean()
    for method in AVAILABLE:
        for params in table.columns[:-1]:
            if method == "m1" and params == CHAIN:
                continue
            assert table.loc[method, params] == pytest.approx(expected[(method, params)],
                                                              abs=1e-9)
    assert list(table.index) == [*AVAILABLE, MISSING, BROKEN]
    assert (out / "robustness_heatmap.png").stat().st_size > 0


def test_unavailable_methods_have_reasons_not_numbers(built):
    _, out, made = built
    table = pd.read_csv(out / "robustness_heatmap.csv").set_index("method")
    settings = list(table.columns[:-1])
    assert table.loc[[MISSING, BROKEN], settings].isna().all().all()
    assert table.loc[MISSING, "absent"] == MISSING_REASON
    assert table.loc[BROKEN, "absent"] == "error: RuntimeError: boom"
    assert math.isnan(table.loc["m1", CHAIN])
    assert table.loc["m1", "absent"] == f"{CHAIN}: error: RuntimeError: boom"
    assert pd.isna(table.loc[AVAILABLE[0], "absent"])  # every cell has a value

    heat = [f for f in made if "per method and attack" in f.axes[0].get_title()]
    assert len(heat) == 1
    ax = heat[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-2:] == [f"{MISSING} *", f"{BROKEN} *"]
    for text in ax.texts:
        x, y = text.get_position()
        method, params = table.index[int(round(y))], settings[int(round(x))]
        value = table.loc[method, params]
        assert text.get_text() == (plots.ABSENT if math.isnan(value) else f"{value:.1f}")
    notes = " ".join(t.get_text() for t in heat[0].texts)
    assert MISSING in notes and "boom" in notes

    readme = (out / "README.md").read_text()
    assert "![robustness_heatmap](robustness_heatmap.png)" in readme
    assert f"**{MISSING}** absent: {MISSING_REASON}" in readme


def _family_figures(made) -> dict[str, list]:
    out: dict[str, list] = {}
    for fig in made:
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        if " attacks" in title and "W-PSNR" in title:
            out.setdefault(title.split(", ")[1].split(" attacks")[0], []).append(fig)
    return out


def _lines(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_family_curves_at_most_seven_lines_and_absent_methods_named(built):
    raw, out, made = built
    families = _family_figures(made)
    assert sorted(families) == ["codec", "paper"]  # chains have no strength axis
    names = {p.name for p in out.glob("robustness_family_*.png")}
    assert names == {"robustness_family_paper.png", "robustness_family_paper_2.png",
                     "robustness_family_codec.png", "robustness_family_codec_2.png"}
    for family, figures in families.items():
        assert len(figures) == 2
        drawn = set()
        for fig in figures:
            axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
            titles = [ax.get_title() for ax in axes]
            assert titles == (["blur", "h264"] if family == "paper" else ["h265"])
            for ax in axes:
                lines = _lines(ax)
                assert len(lines) <= plots.MAX_LINES
                assert MISSING not in lines and BROKEN not in lines
                drawn.update(lines)
            legend = [t.get_text() for t in fig.legends[0].get_texts()]
            assert any(t.startswith(f"{MISSING}: absent (checkpoint") for t in legend)
            assert any(t.startswith(f"{BROKEN}: absent (error") for t in legend)
        assert drawn == set(AVAILABLE)
        assert "page 1 of 2" in figures[0]._suptitle.get_text()
        assert "methods 8-9 of 9" in figures[1]._suptitle.get_text()


def test_codec_curves_use_bits_per_pixel(built):
    raw, _, made = built
    (codec, _), (paper, _) = _family_figures(made)["codec"], _family_figures(made)["paper"]
    (ax,) = [a for a in codec.axes if a.axison]
    assert ax.get_xlabel() == "bits per pixel"
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "m0")
    mine = raw[(raw["method"] == "m0") & (raw["attack"] == "h265")]
    expected = sorted(mine.groupby("attack_params")["attack_bpp"].mean())
    np.testing.assert_allclose(line.get_xdata(), expected)
    h264 = next(a for a in paper.axes if a.get_title() == "h264")
    assert h264.get_xlabel() == "strength"  # a paper-family codec keeps its crf axis


VARIANTS = ["safe-sora/no-rtl", "safe-sora/no-fine", "safe-sora/no-sls"]
CURVE_METHODS = [f"c{i}" for i in range(10)] + ["safe-sora", *VARIANTS]


def robustness_frame() -> pd.DataFrame:
    """A robustness table (``report.robustness_table``'s columns) for 10 methods, the full
    Safe-Sora model and three of its variants, under blur (3 kernels) and h264 (2 CRFs)."""
    records = []
    for index, method in enumerate(CURVE_METHODS):
        for attack, strengths in (("blur", (3.0, 5.0, 7.0)), ("h264", (24.0, 28.0))):
            for strength in strengths:
                w_psnr = 40.0 - strength / 2 + index
                records.append({"method": method, "attack": attack,
                                "attack_params": f"{attack}({strength:g})",
                                "strength": strength, "w_psnr": w_psnr,
                                "w_psnr_lo": w_psnr - 1, "w_psnr_hi": w_psnr + 1,
                                "w_ssim": 0.8, "w_ssim_lo": 0.75, "w_ssim_hi": 0.85})
    return pd.DataFrame.from_records(records)


@pytest.fixture(scope="module")
def curve_figures(tmp_path_factory):
    """{file name: Figure} of ``report.robustness_figures`` on ``robustness_frame``."""
    saved = {}

    class Recording(plots.Figure):
        def savefig(self, path, *args, **kwargs):
            super().savefig(path, *args, **kwargs)
            saved[Path(path).name] = self

    out = tmp_path_factory.mktemp("curves")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "Figure", Recording)
        pngs, ablation = report.robustness_figures(robustness_frame(), out)
    assert [p.name for p in pngs] == ["robustness_blur.png", "robustness_h264.png",
                                      "robustness_grid.png"]
    assert ablation is not None and ablation.name == "robustness_ablation.png"
    assert all((out / name).stat().st_size > 0 for name in saved)
    return saved


def _box(artist, fig):
    return artist.get_window_extent().transformed(fig.transFigure.inverted())


@pytest.mark.parametrize("name", ["robustness_blur.png", "robustness_h264.png",
                                  "robustness_grid.png", "robustness_ablation.png"])
def test_curve_figures_legends_outside_and_at_most_seven_lines(curve_figures, name):
    fig = curve_figures[name]
    fig.draw_without_rendering()  # the constrained layout places axes and legends
    axes = [ax for ax in fig.axes if ax.axison]
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = _box(legend, fig)
        assert box.x0 >= 0 and box.x1 <= 1 + 1e-6 and box.y0 >= 0 and box.y1 <= 1 + 1e-6
        for ax in axes:
            assert not box.overlaps(_box(ax, fig)), (name, ax.get_title())
    for ax in axes:
        assert 0 < len(_lines(ax)) <= plots.MAX_LINES


def test_ablation_variants_have_their_own_figure(curve_figures):
    drawn = {name: {label for ax in fig.axes for label in _lines(ax)}
             for name, fig in curve_figures.items()}
    others = [m for m in CURVE_METHODS if m not in VARIANTS]
    for name in ("robustness_blur.png", "robustness_h264.png", "robustness_grid.png"):
        assert drawn[name] == set(others)  # 11 methods: two rows of axes, no variant
    assert drawn["robustness_ablation.png"] == {"safe-sora", *VARIANTS}
    blur = [ax for ax in curve_figures["robustness_blur.png"].axes if ax.axison]
    assert [len(_lines(ax)) for ax in blur] == [7, 4]
