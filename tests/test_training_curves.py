"""The report's training curves: table from the manifest's curves, one figure, axes capped."""

from __future__ import annotations

import math

import pandas as pd
from test_report import make_results, write_manifest

from bench.report import build as report
from bench.report.training_curves import MAX_CURVES_PER_AXES, curves_figure, curves_table


def _curve(n: int, start: float) -> list[dict]:
    return [{"step": 100 * (i + 1), "w_psnr": start + i, "v_psnr": 30.0 - i} for i in range(n)]


def test_curves_table_keeps_every_point_and_skips_untrained_methods():
    training = {"b": {"trainable": True, "curve": _curve(3, 10.0)},
                "a": {"trainable": True, "curve": [{"step": 5, "w_psnr": None,
                                                   "v_psnr": 20.0}]},
                "identity": {"trainable": False}, "old": {"trainable": True}}
    table = curves_table(training)
    assert list(table["method"]) == ["a", "b", "b", "b"]
    assert list(table["step"]) == [5, 100, 200, 300]
    assert math.isnan(table.loc[0, "w_psnr"])
    assert list(table["w_psnr"][1:]) == [10.0, 11.0, 12.0]
    assert curves_table(None).empty and curves_table({}).empty


def test_curves_figure_rows_of_at_most_the_cap(tmp_path):
    many = {f"m{i}": {"curve": _curve(2, float(i))} for i in range(MAX_CURVES_PER_AXES + 2)}
    path = curves_figure(curves_table(many), tmp_path / "c.png")
    assert path.is_file() and path.stat().st_size > 1000
    import matplotlib.image as mpimg

    height, width = mpimg.imread(path).shape[:2]
    one = curves_figure(curves_table({"m": {"curve": _curve(2, 1.0)}}), tmp_path / "one.png")
    assert mpimg.imread(one).shape[0] * 2 == height  # two rows of panels for 9 methods
    assert curves_figure(pd.DataFrame(columns=["method", "step", "w_psnr", "v_psnr"]),
                         tmp_path / "none.png") is None


def test_report_writes_the_curves_from_the_manifest(tmp_path):
    folder = make_results(tmp_path / "run", samples=False)
    manifest = {"profile": {"name": "tiny"}, "git": "abc123", "device": "cpu: test",
                "finished": "2025-01-01T00:01:00",
                "training": {"safe-sora": {"trainable": True, "steps": 300,
                                           "curve": _curve(3, 12.0)}}}
    write_manifest(folder / "manifest.json", manifest)
    out = tmp_path / "report"
    report.build_report(folder, out)
    table = pd.read_csv(out / "training_curves.csv")
    assert list(table["step"]) == [100, 200, 300] and list(table["v_psnr"]) == [30, 29, 28]
    assert (out / "training_curves.png").is_file()
    assert "![training curves](training_curves.png)" in (out / "README.md").read_text()
