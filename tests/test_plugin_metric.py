"""A metric from another package, declared only through the ``bench.metrics`` entry point,
is computed for every row and shows up in rows.csv, the report and the gate."""

from __future__ import annotations

import sys
import textwrap

import pandas as pd
import pytest
import torch

from bench import metrics
from bench.core import registry
from bench.core.results import load_results
from bench.gate import run_gate
from bench.report import build as report
from bench.run.runner import RunConfig, run

PLUGIN = textwrap.dedent('''
    """A test plugin: the mean absolute difference of watermarked and cover video, in
    8-bit levels (lower is better)."""
    from bench.core.api import Metric, MetricSpec, MetricValue


    class MeanAbsLevels(Metric):
        spec = MetricSpec(name="mean-abs-levels", higher_is_better=False, unit="levels",
                          level="row", description="mean |watermarked - cover| x 255",
                          compares="video")
        column = "mean_abs_levels"

        def score(self, inputs):
            diff = (inputs.watermarked - inputs.cover).abs().double().mean()
            return MetricValue(float(diff) * 255)
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The package ``abs_levels_plugin`` and its dist-info with the entry point, on sys.path."""
    site = tmp_path / "site"
    (site / "abs_levels_plugin").mkdir(parents=True)
    (site / "abs_levels_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "abs_levels_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: abs-levels-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[bench.metrics]\nmean-abs-levels = abs_levels_plugin:MeanAbsLevels\n")
    monkeypatch.syspath_prepend(str(site))
    registry._entry_points.cache_clear()
    registry.get.cache_clear()
    yield
    sys.modules.pop("abs_levels_plugin", None)
    registry._entry_points.cache_clear()
    registry.get.cache_clear()


def test_plugin_metric_in_rows_report_and_gate(plugin, tmp_path):
    assert "mean-abs-levels" in registry.names("metrics")
    assert metrics.by_column("mean_abs_levels").higher_is_better is False
    config = RunConfig(methods="identity,dct-qim", attacks="identity,blur", profile="tiny",
                       limit=2, out=tmp_path / "run", cache_dir=tmp_path / "cache",
                       progress=False, fvd=False)
    run(config)
    results = load_results(tmp_path / "run")
    rows = results.rows
    assert "mean_abs_levels" in rows.columns
    assert rows.columns.get_loc("mean_abs_levels") > rows.columns.get_loc("tlp")
    assert rows["mean_abs_levels"].notna().all() and set(rows["status"]) == {"ok"}
    # the identity method embeds nothing: its watermarked video is the cover
    assert (rows.loc[rows.method == "identity", "mean_abs_levels"] == 0).all()
    # an independent reference: dct-qim's mean 8-bit level change from its V-PSNR is at most
    # the RMS change (mean |d| <= sqrt(mean d^2)), and more than zero
    qim = rows[rows.method == "dct-qim"]
    rms_levels = 255 * 10 ** (-qim["v_psnr"] / 20)
    assert (qim["mean_abs_levels"] > 0).all()
    assert (qim["mean_abs_levels"] <= rms_levels + 1e-6).all()
    assert results.manifest["metrics"]["mean_abs_levels"] == "1"

    out = report.build_report(tmp_path / "run", tmp_path / "report")
    assert out
    table = pd.read_csv(tmp_path / "report" / "table1.csv").set_index("method")
    assert table.loc["dct-qim", "mean_abs_levels"] == pytest.approx(
        qim.drop_duplicates("video_id")["mean_abs_levels"].mean())
    assert "MEAN-ABS-LEVELS ↓ (levels)" in (tmp_path / "report" / "table1.md").read_text()

    thresholds = tmp_path / "gate.toml"
    ceiling = float(qim["mean_abs_levels"].mean())
    thresholds.write_text(f'[[check]]\nmethod = "dct-qim"\nattack = "identity"\n'
                          f'metric = "mean_abs_levels"\nfloor = {ceiling + 1:.6f}\n')
    assert run_gate(tmp_path / "run", thresholds, out=lambda _: None) == 0
    # lower is better: a ceiling under the measured value fails
    thresholds.write_text(f'[[check]]\nmethod = "dct-qim"\nattack = "identity"\n'
                          f'metric = "mean_abs_levels"\nfloor = {ceiling / 2:.6f}\n')
    assert run_gate(tmp_path / "run", thresholds, out=lambda _: None) == 1


def test_a_metric_that_breaks_the_contract_is_named(plugin, monkeypatch):
    import abs_levels_plugin

    monkeypatch.setattr(abs_levels_plugin.MeanAbsLevels, "column", 7)
    with pytest.raises(Exception, match="mean-abs-levels.*metric contract"):
        metrics.registered()


def test_a_crashing_plugin_metric_makes_error_rows_not_a_crashed_run(plugin, tmp_path,
                                                                    monkeypatch):
    import abs_levels_plugin

    def boom(self, inputs):
        raise ZeroDivisionError("plugin bug")

    monkeypatch.setattr(abs_levels_plugin.MeanAbsLevels, "score", boom)
    config = RunConfig(methods="dct-qim", attacks="identity", profile="tiny", limit=1,
                       out=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False,
                       fvd=False)
    run(config)
    rows = load_results(tmp_path / "run").rows
    assert set(rows["status"]) == {"error"}
    assert rows["error"].str.contains("metric mean_abs_levels failed: ZeroDivisionError").all()
    assert rows["w_psnr"].notna().all()  # the other metrics were still computed
    assert torch.isfinite(torch.tensor(rows["v_psnr"].to_numpy())).all()
