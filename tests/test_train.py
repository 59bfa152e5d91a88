"""The shared training loop, driven by a tiny two-conv trainable method defined here.

Most tests replace the clip renderer and the logo renderer with cheap synthetic ones (the
loop's logic does not depend on the pictures); one test renders real training clips.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.api import BenchError, Clip, Method, TrainableMethod
from bench.core.checkpoints import load_checkpoint, load_into
from bench.core.profiles import load_profile
from bench.train.loop import (
    VALIDATION_PROMPT_IDS,
    TrainingData,
    derive_seed,
    lr_factor,
    pace_note,
    state_path,
    train,
    validate,
)

PROFILE = load_profile("tiny")


class TinyMethod(TrainableMethod):
    """Embeds a tanh residual of conv(frame, logo); extracts sigmoid(conv(mean frame))."""

    name = "tiny-trainable"
    version = "1"
    train_defaults = {"lr": 1e-2, "weight_decay": 0.0, "betas": (0.9, 0.999), "batch_size": 2,
                      "steps": 30}
    train_attacks = ("identity", "noise")
    reveal_weight = 1.0
    #: training_losses raises on this call number (simulates a crash); None: never
    crash_at: Optional[int] = None
    calls = 0
    losses: list = []

    def __init__(self, profile, device="cpu", checkpoint="default"):
        self.profile = profile
        self.device = device
        self.net = nn.ModuleDict({"enc": nn.Conv2d(6, 3, 3, padding=1),
                                  "dec": nn.Conv2d(3, 3, 3, padding=1)})
        with torch.no_grad():  # start far from the logos' mean grey: a clear descent
            self.net["dec"].bias.fill_(-2.0)
        load_into(self, checkpoint)

    def network(self) -> nn.Module:
        return self.net

    def _residual(self, frames, logos):
        b, t, _, h, w = frames.shape
        up = F.interpolate(logos, size=(h, w), mode="nearest")
        up = up[:, None].expand(b, t, 3, h, w)
        x = torch.cat([frames, up], dim=2).reshape(b * t, 6, h, w)
        return torch.tanh(self.net["enc"](x)).reshape(b, t, 3, h, w)

    def embed(self, frames, logos, clips=None):
        return (frames + 0.1 * self._residual(frames, logos)).clamp(0, 1)

    def extract(self, frames):
        mean = frames.mean(dim=1)
        out = torch.sigmoid(self.net["dec"](mean))
        return F.adaptive_avg_pool2d(out, self.profile.logo_size)

    def training_losses(self, frames, logos, attack, generator):
        type(self).calls += 1
        if self.crash_at is not None and type(self).calls == self.crash_at:
            raise RuntimeError("simulated crash")
        strength = 0.05 + 0.1 * torch.rand(())  # global RNG: resumption must restore it
        marked = frames + strength * self._residual(frames, logos)
        recovered = self.extract(attack(marked, generator))
        video_mse = F.mse_loss(marked, frames)
        logo_mse = F.mse_loss(recovered, logos)
        loss = video_mse + self.reveal_weight * logo_mse
        type(self).losses.append(float(loss.detach()))
        return {"loss": loss, "video_mse": video_mse, "logo_mse": logo_mse}

    def card(self) -> dict:
        return {"convs": 2}


def _smooth(seed: int, shape: tuple) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed % 2**63)
    low = torch.rand(shape[0], 3, 4, 4, generator=gen)
    return F.interpolate(low, size=shape[-2:], mode="bilinear") * 0.8 + 0.1


@pytest.fixture
def fast_data(monkeypatch):
    """Synthetic clips and logos, a pure function of (index, seed); records clip indices."""
    drawn: list[int] = []

    def fake_clip(self, index, render_seed):
        drawn.append(index)
        frames = _smooth(derive_seed("clip", index, render_seed),
                         (self.profile.frames, 3, self.profile.height, self.profile.width))
        return Clip(id=f"t{index:03d}", prompt="synthetic", frames=frames, fps=8.0)

    def fake_logo(self, index):
        size = self.profile.logo_size
        gen = torch.Generator().manual_seed(index)
        low = torch.rand(1, 3, 4, 4, generator=gen)
        return F.interpolate(low, size=(size, size), mode="nearest")[0]

    monkeypatch.setattr(TrainingData, "_clip", fake_clip)
    monkeypatch.setattr(TrainingData, "_logo", fake_logo)
    TinyMethod.crash_at, TinyMethod.calls, TinyMethod.losses = None, 0, []
    return drawn


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)


def test_lr_schedule_closed_form():
    total = 100  # warm-up W = 2
    assert lr_factor(0, total) == pytest.approx(0.5)
    assert lr_factor(1, total) == pytest.approx(1.0)
    assert lr_factor(2, total) == pytest.approx(1.0)
    assert lr_factor(99, total) == pytest.approx(0.01)
    expected = 0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * (50 - 2) / (99 - 2)))
    assert lr_factor(50, total) == pytest.approx(expected)
    values = [lr_factor(s, total) for s in range(2, total)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))
    assert lr_factor(0, 1) == pytest.approx(1.0)


def test_loss_decreases(tmp_path, fast_data):
    out = train(TinyMethod, profile="tiny", steps=30, out=tmp_path / "m.pt", progress=False,
                workers=0, frames=4)
    losses = TinyMethod.losses
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert out.is_file() and not state_path(out).exists()


def test_pace_note_closed_forms():
    assert pace_note(770.0, 200, 2200) == "3.85 s a step, about 2 h 21 min to go"  # 8,470 s
    assert pace_note(30.0, 10, 5) == "3.00 s a step, about 0 min to go"
    assert pace_note(600.0, 100, 20) == "6.00 s a step, about 2 min to go"
    assert pace_note(12.0, 4, 0) == "3.00 s a step"


def test_quiet_lines_name_the_method_and_give_the_pace(tmp_path, fast_data, capsys):
    """A campaign's runs print into one stream: every line says whose it is."""
    train(TinyMethod, profile="tiny", steps=4, out=tmp_path / "m.pt", progress=False,
          workers=0, validate_every=2)
    lines = capsys.readouterr().err.splitlines()
    validations = [ln for ln in lines if "validation W-PSNR" in ln]
    assert [ln.split(":")[0] for ln in validations] == ["tiny-trainable"] * 2
    assert validations[0].startswith("tiny-trainable: step 2/4: validation W-PSNR ")
    assert "s a step, about " in validations[0] and validations[1].endswith(" s a step")
    assert all(ln.startswith("tiny-trainable: ") for ln in lines)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, fast_data):
    a = train(TinyMethod, profile="tiny", steps=3, out=tmp_path / "a.pt", progress=False, workers=0)
    b = train(TinyMethod, profile="tiny", steps=3, out=tmp_path / "b.pt", progress=False, workers=0)
    c = train(TinyMethod, profile="tiny", steps=3, seed=1, out=tmp_path / "c.pt",
              progress=False, workers=0)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["enc.weight"], wc["enc.weight"])


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, fast_data):
    """The interrupted run renders batches in a worker process, the reference in-process."""
    settings = dict(profile="tiny", steps=6, progress=False, validate_every=2)
    whole = train(TinyMethod, out=tmp_path / "whole.pt", workers=0, **settings)

    TinyMethod.calls, TinyMethod.crash_at = 0, 5
    out = tmp_path / "resumed.pt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TinyMethod, out=out, **settings)
    assert not out.exists()
    state = torch.load(state_path(out), weights_only=True)
    assert state["step"] == 4

    TinyMethod.calls, TinyMethod.crash_at = 0, None
    train(TinyMethod, out=out, **settings)
    assert TinyMethod.calls == 2  # steps 5 and 6 only
    wa, wb = _weights(whole), _weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    _, card_a = load_checkpoint(whole)
    _, card_b = load_checkpoint(out)
    assert card_a["history"] == card_b["history"]


def _crashed_run(out, **settings):
    """A 4-step run of TinyMethod that crashes in step 3, leaving its state at step 2."""
    TinyMethod.crash_at = 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
              validate_every=2, **settings)
    TinyMethod.crash_at = None
    return out


def test_resume_refuses_other_settings_unless_told(tmp_path, fast_data):
    out = _crashed_run(tmp_path / "m.pt")
    with pytest.raises(BenchError, match="lr"):
        train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0, lr=0.5)
    TinyMethod.calls = 0
    train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0, lr=0.5,
          resume=False)
    assert TinyMethod.calls == 4


def test_checkpoint_and_card(tmp_path, fast_data):
    out = train(TinyMethod, profile="tiny", steps=3, seed=7, out=tmp_path / "m.pt",
                progress=False, workers=0, batch_size=3)
    weights = torch.load(out, weights_only=True)
    method = TinyMethod(PROFILE, checkpoint=out)
    assert set(weights) == set(method.network().state_dict())
    state, card = load_checkpoint(out)
    for key in ("method", "method_version", "profile", "steps", "seed", "batch_size", "lr",
                "training_seconds", "device", "validation", "parameters", "checkpoint_bytes",
                "sha256", "method_card", "command"):
        assert key in card, key
    assert card["method"] == "tiny-trainable" and card["profile"] == "tiny"
    assert card["steps"] == 3 and card["seed"] == 7 and card["batch_size"] == 3
    assert card["parameters"] == sum(v.numel() for v in state.values())
    assert card["checkpoint_bytes"] == out.stat().st_size
    assert card["method_card"] == {"convs": 2}
    assert card["command"].startswith("python -m bench train --method tiny-trainable "
                                      "--profile tiny --steps 3 --seed 7 --batch-size 3")
    # the card's scores are what validation gives for the saved weights
    items = TrainingData(PROFILE, seed=7).validation()
    scores = validate(method, items)
    assert card["validation"]["w_psnr"] == pytest.approx(scores["w_psnr"], abs=1e-9)
    assert card["validation"]["v_psnr"] == pytest.approx(scores["v_psnr"], abs=1e-9)
    assert card["validation"]["prompts"] == list(VALIDATION_PROMPT_IDS)


def test_train_attacks_replace_the_methods_and_are_part_of_the_resumable_settings(
        tmp_path, fast_data, monkeypatch):
    from bench.train import loop

    picked: list[str] = []
    real_pick = loop.pick_attack

    def recording_pick(attacks, *args):
        name, form = real_pick(attacks, *args)
        picked.append(name)
        return name, form

    monkeypatch.setattr(loop, "pick_attack", recording_pick)
    out = _crashed_run(tmp_path / "m.pt", train_attacks=("blur",))
    assert set(picked) == {"blur"}
    with pytest.raises(BenchError, match="train_attacks"):  # the method's own set differs
        train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
              validate_every=2)
    TinyMethod.calls = 0
    train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
          validate_every=2, train_attacks=("blur",))
    assert TinyMethod.calls == 2
    _, card = load_checkpoint(out)
    assert card["train_attacks"] == ["blur"]
    assert "--train-attacks blur" in card["command"]
    # the method's own set is not named on the command line
    own = train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "own.pt", progress=False,
                workers=0, train_attacks=TinyMethod.train_attacks)
    assert "--train-attacks" not in load_checkpoint(own)[1]["command"]
    with pytest.raises(BenchError, match="at least one"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "n.pt", progress=False,
              workers=0, train_attacks=())
    with pytest.raises(BenchError, match="unknown attack 'no-such'"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "n.pt", progress=False,
              workers=0, train_attacks=("no-such",))


def test_reveal_weight_changes_the_loss_and_is_recorded_and_resumable(tmp_path, fast_data):
    first_loss = {}
    for weight in (1.0, 2.0, 4.0):  # same seed: the same weights and batch at step 0
        TinyMethod.losses = []
        out = train(TinyMethod, profile="tiny", steps=1, out=tmp_path / f"w{weight:g}.pt",
                    progress=False, workers=0, reveal_weight=weight)
        first_loss[weight] = TinyMethod.losses[0]
        card = load_checkpoint(out)[1]
        assert card["reveal_weight"] == weight
        # the method's own weight is not named on the command line
        assert ("--reveal-weight" in card["command"]) == (weight != 1.0)
    # loss = video + w * logo is linear in w: L(4) - L(2) = 2 (L(2) - L(1))
    assert first_loss[4.0] - first_loss[2.0] == pytest.approx(
        2 * (first_loss[2.0] - first_loss[1.0]), rel=1e-5)
    assert first_loss[2.0] > first_loss[1.0]
    assert "--reveal-weight 4.0 " in load_checkpoint(tmp_path / "w4.pt")[1]["command"] + " "
    TinyMethod.calls = 0
    out = _crashed_run(tmp_path / "m.pt", reveal_weight=0.5)
    with pytest.raises(BenchError, match="reveal_weight"):  # the method's own differs
        train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
              validate_every=2)
    TinyMethod.calls = 0
    train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
          validate_every=2, reveal_weight=0.5)
    assert TinyMethod.calls == 2 and load_checkpoint(out)[1]["reveal_weight"] == 0.5


def test_reveal_weight_is_refused_where_the_loss_has_none_or_it_is_not_positive(
        tmp_path, fast_data):
    with pytest.raises(BenchError, match="no single weight"):
        train(_ConstantShift, profile="tiny", steps=1, out=tmp_path / "s.pt",
              progress=False, workers=0, reveal_weight=0.5)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BenchError, match="positive"):
            train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "t.pt",
                  progress=False, workers=0, reveal_weight=bad)
    assert not (tmp_path / "t.pt").exists()


def test_a_state_without_recorded_attacks_resumes_with_the_methods_own(tmp_path, fast_data):
    out = _crashed_run(tmp_path / "m.pt")
    state = torch.load(state_path(out), weights_only=True)
    del state["settings"]["train_attacks"]  # as written before the set was recorded
    torch.save(state, state_path(out))
    TinyMethod.calls = 0
    with pytest.raises(BenchError, match="train_attacks"):
        train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
              validate_every=2, train_attacks=("blur",))
    train(TinyMethod, profile="tiny", steps=4, out=out, progress=False, workers=0,
          validate_every=2)
    assert TinyMethod.calls == 2


class _ConstantShift(TrainableMethod):
    """Adds 2/255 to every pixel; extracts a grey logo (closed-form PSNRs)."""

    name = "shift"
    version = "1"

    def __init__(self, profile, device="cpu", checkpoint=None):
        self.profile = profile
        self.net = nn.Identity()

    def network(self):
        return self.net

    def embed(self, frames, logos, clips=None):
        return frames + 2 / 255

    def extract(self, frames):
        size = self.profile.logo_size
        return torch.full((frames.shape[0], 3, size, size), 0.5)

    def training_losses(self, frames, logos, attack, generator):  # pragma: no cover
        raise AssertionError


def test_validation_scores_against_closed_forms(fast_data):
    items = TrainingData(PROFILE, seed=0).validation()
    assert len(items) == 4
    scores = validate(_ConstantShift(PROFILE), items)
    assert scores["v_psnr"] == pytest.approx(20 * math.log10(255 / 2), abs=1e-6)
    expected = np.mean([10 * np.log10(1 / np.mean((0.5 - logo.numpy().astype(np.float64)) ** 2))
                        for _, logo in items])
    assert scores["w_psnr"] == pytest.approx(expected, abs=1e-6)


def test_validation_clips_are_the_same_whatever_the_run_seed(fast_data):
    """A --init chain changes seed between runs; its validation curve must score one set."""
    first, second = (TrainingData(PROFILE, seed=s).validation() for s in (5, 11))
    for (clip_a, logo_a), (clip_b, logo_b) in zip(first, second, strict=True):
        assert clip_a.id == clip_b.id and torch.equal(clip_a.frames, clip_b.frames)
        assert torch.equal(logo_a, logo_b)
    # the training renders do follow the seed
    assert not torch.equal(TrainingData(PROFILE, seed=5, renders=1).batch(0, 1)[0],
                           TrainingData(PROFILE, seed=11, renders=1).batch(0, 1)[0])


def test_batches_vary_by_step_and_never_use_validation_prompts(fast_data, monkeypatch):
    data = TrainingData(PROFILE, seed=3, frames=4)
    held = set(data.validation_indices)
    assert len(held) == 4 and not held & set(data.train_indices)
    frames0, logos0, ids0 = data.batch(0, 2)
    again, _, ids_again = data.batch(0, 2)
    frames1, _, ids1 = data.batch(1, 2)
    assert frames0.shape == (2, 4, 3, 64, 64) and logos0.shape == (2, 3, 32, 32)
    assert torch.equal(frames0, again) and ids0 == ids_again
    assert ids0 != ids1 and not torch.equal(frames0, frames1)
    assert torch.equal(frames0, (frames0 * 255).round() / 255)  # 8-bit covers
    drawn = []
    blank = torch.zeros(16, 3, 2, 2)

    def record(self, index, render_seed):
        drawn.append(index)
        return Clip(id=f"t{index:03d}", prompt="blank", frames=blank)

    monkeypatch.setattr(TrainingData, "_clip", record)
    fresh = TrainingData(PROFILE, seed=3, frames=4, renders=None)  # renders every item
    for step in range(300):
        fresh.batch(step, 2)
    assert not held & set(drawn)
    assert len(set(drawn)) > 150


def test_clip_bank_renders_each_clip_once_with_the_same_bytes(fast_data, monkeypatch):
    """Banked covers equal fresh renders of the same seeds; a second run renders nothing,
    and every prompt is drawn from at most ``renders`` seeds."""
    data = TrainingData(PROFILE, seed=5, frames=16, renders=2)
    frames, _, ids = data.batch(0, 3)
    for item, name in zip(frames, ids, strict=True):
        prompt_id, render_seed = name.split("@")
        index = data._ids.index(prompt_id)
        expected = data._clip(index, int(render_seed)).frames
        assert torch.equal(item, (expected.clamp(0, 1) * 255).round() / 255)
    rendered = len(fast_data)
    again, _, _ = TrainingData(PROFILE, seed=5, frames=16, renders=2).batch(0, 3)
    assert torch.equal(again, frames) and len(fast_data) == rendered
    seeds: dict[str, set] = {}
    for step in range(200):
        for name in data.batch(step, 2)[2]:
            prompt_id, render_seed = name.split("@")
            seeds.setdefault(prompt_id, set()).add(render_seed)
    assert max(len(v) for v in seeds.values()) == 2
    with pytest.raises(BenchError, match="renders"):
        TrainingData(PROFILE, renders=0)


def test_overfit_data_repeat_one_training_clip(fast_data):
    data = TrainingData(PROFILE, seed=0, frames=4, overfit=True)
    (clip, logo), = data.validation()
    assert clip.id not in VALIDATION_PROMPT_IDS
    a, la, _ = data.batch(0, 2)
    b, lb, _ = data.batch(7, 2)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert torch.equal(a[0], clip.frames) and torch.equal(la[1], logo)
    assert clip.frames.shape[0] == 4  # validated on exactly the window it trains on


def test_frame_windows_are_contiguous_and_move(monkeypatch):
    def ramp_clip(self, index, render_seed):
        t = torch.arange(self.profile.frames, dtype=torch.float32) / 255
        frames = t.view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone()
        return Clip(id=f"t{index:03d}", prompt="ramp", frames=frames)

    monkeypatch.setattr(TrainingData, "_clip", ramp_clip)
    monkeypatch.setattr(TrainingData, "_logo", lambda self, i: torch.zeros(3, 32, 32))
    data = TrainingData(PROFILE, seed=0, frames=5)
    starts = set()
    for step in range(40):
        frames, _, _ = data.batch(step, 1)
        index = (frames[0, :, 0, 0, 0] * 255).round().long()
        assert torch.equal(index, index[0] + torch.arange(5))
        starts.add(int(index[0]))
    assert starts <= set(range(12)) and len(starts) > 5
    with pytest.raises(BenchError, match="frames"):
        TrainingData(PROFILE, frames=17)


def test_real_training_clips_and_logos():
    data = TrainingData(PROFILE, seed=0, frames=2)
    frames, logos, ids = data.batch(0, 1)
    assert frames.shape == (1, 2, 3, 64, 64) and logos.shape == (1, 3, 32, 32)
    assert ids[0].split("@")[0] not in VALIDATION_PROMPT_IDS and ids[0].startswith("t")
    assert torch.equal(frames, (frames * 255).round() / 255)
    assert float(frames.std()) > 0.01 and float(logos.std()) > 0.01


def test_untrainable_methods_and_bad_settings_are_refused(tmp_path, fast_data):
    class Plain(Method):
        name, version = "plain", "1"

        def __init__(self, profile, device="cpu", checkpoint=None):
            pass

        def embed(self, frames, logos, clips=None):
            return frames

        def extract(self, frames):
            return frames[:, 0]

    with pytest.raises(BenchError, match="not a TrainableMethod"):
        train(Plain, profile="tiny", steps=1, out=tmp_path / "p.pt", progress=False, workers=0)
    with pytest.raises(BenchError, match="positive"):
        train(TinyMethod, profile="tiny", steps=0, out=tmp_path / "p.pt", progress=False, workers=0)
    with pytest.raises(BenchError, match="cuda|device"):
        train(TinyMethod, profile="tiny", steps=1, device="tpu", progress=False, workers=0)


def test_cli_reports_an_untrainable_method(capsys):
    from bench.__main__ import build_parser, main

    assert main(["train", "--method", "identity", "--profile", "tiny", "--steps", "1",
                 "--quiet"]) == 2
    assert "not a TrainableMethod" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "--method", "udh", "--steps", "5", "--frames",
                                      "4", "--no-resume", "--batch-size", "3", "--lr", "1e-3"])
    assert (args.steps, args.frames, args.no_resume, args.batch_size, args.lr) == \
        (5, 4, True, 3, 1e-3)
    assert main(["train", "--method", "all", "--profile", "tiny", "--train-attacks", "blur",
                 "--quiet"]) == 2
    assert "--train-attacks replaces one method's" in capsys.readouterr().err
    assert main(["train", "--method", "udh,pusnet", "--profile", "tiny", "--reveal-weight",
                 "0.5", "--quiet"]) == 2
    assert "--reveal-weight changes one method's loss" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "--method", "safe-sora", "--reveal-weight",
                                      "0.19"])
    assert args.reveal_weight == pytest.approx(0.19)
    args = build_parser().parse_args(["fit-proxy", "--profile", "tiny", "--clips", "4",
                                      "--epochs", "2"])
    assert (args.profile, args.clips, args.epochs) == ("tiny", 4, 2)


def test_warm_start_continues_from_a_checkpoint_and_records_the_chain(tmp_path, fast_data):
    """--init: the second run starts from the first run's weights (not a fresh init), so
    3 + 3 warm-started steps land elsewhere than 3 fresh steps; the card chains both."""
    first = train(TinyMethod, profile="tiny", steps=3, out=tmp_path / "a.pt", progress=False,
                  workers=0)
    fresh = train(TinyMethod, profile="tiny", steps=3, seed=1, out=tmp_path / "b.pt",
                  progress=False, workers=0)
    warm = train(TinyMethod, profile="tiny", steps=3, seed=1, out=tmp_path / "c.pt",
                 progress=False, workers=0, init=first)
    assert not torch.equal(_weights(fresh)["enc.weight"], _weights(warm)["enc.weight"])
    # zero learning rate: the warm-started weights are exactly the initial checkpoint's
    still = train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "d.pt", progress=False,
                  workers=0, init=first, lr=1e-30)
    assert all(torch.allclose(_weights(still)[k], _weights(first)[k]) for k in _weights(first))
    _, card = load_checkpoint(warm)
    _, first_card = load_checkpoint(first)
    assert card["init"]["sha256"] == first_card["sha256"]
    assert card["init"]["command"] == first_card["command"]
    assert card["total_steps"] == 6 and card["steps"] == 3
    assert card["total_training_seconds"] == pytest.approx(
        card["training_seconds"] + first_card["training_seconds"], abs=1e-2)
    assert "--init" in card["command"]


def test_warm_start_refuses_another_methods_weights(tmp_path, fast_data):
    from bench.core.checkpoints import save_checkpoint

    other = save_checkpoint(tmp_path / "o.pt", {"w": torch.zeros(1)}, {"method": "udh"})
    with pytest.raises(BenchError, match="udh"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "x.pt", progress=False,
              workers=0, init=other)
    mine = save_checkpoint(tmp_path / "m.pt", {"w": torch.zeros(1)}, {})
    with pytest.raises(BenchError, match="does not fit"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "y.pt", progress=False,
              workers=0, init=mine)


class TinyVariant(TinyMethod):
    """TinyMethod without its decoder bias: an "ablation variant" of a smaller network that
    may start from TinyMethod's checkpoints (``warm_start_from``)."""

    name = "tiny-trainable/no-dec-bias"
    warm_start_from = (TinyMethod.name,)

    def __init__(self, profile, device="cpu", checkpoint="default"):
        super().__init__(profile, device, checkpoint=None)
        self.net["dec"] = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        load_into(self, checkpoint)


def test_warm_start_from_a_relative_loads_the_shared_tensors_and_lists_the_rest(
        tmp_path, fast_data):
    """A variant starts from its full model's checkpoint: every tensor it has comes from
    there (zero lr: equal to the full model's), the unused one is named in the card; the
    full model may not start from the variant (its decoder bias would be missing)."""
    full = train(TinyMethod, profile="tiny", steps=2, out=tmp_path / "full.pt", progress=False,
                 workers=0)
    variant = train(TinyVariant, profile="tiny", steps=1, out=tmp_path / "v.pt",
                    progress=False, workers=0, init=full, lr=1e-30)
    weights, full_weights = _weights(variant), _weights(full)
    assert set(weights) == set(full_weights) - {"dec.bias"}
    assert all(torch.allclose(weights[k], full_weights[k]) for k in weights)
    _, card = load_checkpoint(variant)
    assert card["method"] == TinyVariant.name
    assert card["init"]["method"] == TinyMethod.name
    assert card["init"]["unused_tensors"] == ["dec.bias"]
    with pytest.raises(BenchError, match="no-dec-bias"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "x.pt", progress=False,
              workers=0, init=variant)


def test_channels_last_keeps_values_and_conv_outputs():
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv3d(8, 4, 1))
    x = torch.rand(2, 3, 9, 9, generator=gen)
    ref = net[1](net[0](x)).detach()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    from bench.core.precision import to_channels_last
    from bench.train.loop import _contiguous

    to_channels_last(net)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[2].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    torch.testing.assert_close(net[1](net[0](x)).detach(), ref, rtol=1e-5, atol=1e-6)
    _contiguous(net)
    assert all(v.is_contiguous() for v in net.state_dict().values())


def test_bf16_path_trains_records_precision_and_speed(tmp_path, fast_data):
    out = train(TinyMethod, profile="tiny", steps=30, out=tmp_path / "m.pt", progress=False,
                workers=0, frames=4, precision="bf16")
    losses = TinyMethod.losses
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    weights, card = load_checkpoint(out)
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in weights.values())
    assert card["precision"].startswith("bf16 autocast")
    assert card["samples_per_second"] > 0
    assert "--precision bf16" in card["command"]
    again = train(TinyMethod, profile="tiny", steps=30, out=tmp_path / "n.pt",
                  progress=False, workers=0, frames=4, precision="bf16")
    wa, wb = _weights(out), _weights(again)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bf16 on the CPU is deterministic
    with pytest.raises(BenchError, match="precision"):
        train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "x.pt", progress=False,
              workers=0, precision="fp16")


def test_overfit_mode_writes_under_the_cache_and_gives_a_verdict(tmp_path, fast_data,
                                                                   monkeypatch, capsys):
    from bench.__main__ import main
    from bench.train.cli import _overfit_verdict

    out = train(TinyMethod, profile="tiny", steps=4, progress=False, overfit=True, frames=4)
    assert str(out).startswith(str(tmp_path / "cache"))
    _, card = load_checkpoint(out)
    assert card["overfit"]["clip"] not in VALIDATION_PROMPT_IDS
    assert "--overfit" in card["command"]
    # the verdict compares the card's validation with the 35 dB targets
    assert _overfit_verdict(out) == (0 if min(card["validation"]["w_psnr"],
                                              card["validation"]["v_psnr"]) >= 35 else 1)
    assert "overfit check" in capsys.readouterr().out
    monkeypatch.setattr("bench.train.cli._overfit_verdict", lambda path: 1)
    real_get = __import__("bench.core.registry", fromlist=["get"]).get
    monkeypatch.setattr("bench.core.registry.get", lambda kind, name: TinyMethod
                        if name == "tiny-trainable" else real_get(kind, name))
    assert main(["train", "--method", "tiny-trainable", "--profile", "tiny", "--steps", "2",
                 "--overfit", "--quiet", "--frames", "4"]) == 1


def test_overfit_takes_the_methods_single_clip_steps_and_lr(tmp_path, fast_data):
    class OwnCheck(TinyMethod):
        train_defaults = {**TinyMethod.train_defaults, "overfit_steps": 3, "overfit_lr": 0.05}

    _, card = load_checkpoint(train(OwnCheck, profile="tiny", progress=False, overfit=True,
                                    frames=4, out=tmp_path / "own.pt"))
    assert (card["steps"], card["lr"]) == (3, 0.05)
    _, card = load_checkpoint(train(OwnCheck, profile="tiny", steps=2, lr=0.02,
                                    progress=False, overfit=True, frames=4,
                                    out=tmp_path / "given.pt"))
    assert (card["steps"], card["lr"]) == (2, 0.02)  # the command line wins
    _, card = load_checkpoint(train(OwnCheck, profile="tiny", steps=2, progress=False,
                                    frames=4, out=tmp_path / "plain.pt"))
    assert card["lr"] == TinyMethod.train_defaults["lr"]  # a normal run keeps the method's lr


def test_warm_renders_what_the_steps_draw_once(fast_data):
    data = TrainingData(PROFILE, seed=6, frames=4, renders=2)
    needed = data.missing_renders(0, 30, 4)
    assert len(needed) == len(set(needed)) > 0
    data.warm(needed, 1)
    assert len(fast_data) == len(needed)
    assert data.missing_renders(0, 30, 4) == []
    for step in range(30):
        data.batch(step, 4)
    assert len(fast_data) == len(needed)  # every cover of those steps came from the bank
    assert TrainingData(PROFILE, seed=6, overfit=True).missing_renders(0, 30, 4) == []


@pytest.mark.slow
def test_warm_in_processes_writes_what_one_process_renders():
    data = TrainingData(PROFILE, seed=8, renders=1)
    jobs = data.missing_renders(0, 1, 3)
    data.warm(jobs, 2)
    assert data.missing_renders(0, 1, 3) == []
    for index, render_seed in jobs:
        banked = data._cover(index, render_seed)  # read back from the bank
        fresh = data._clip(index, render_seed).frames
        assert torch.equal(banked, (fresh.clamp(0, 1) * 255).round().to(torch.uint8))


def test_bf16_is_the_default_only_where_it_is_native(monkeypatch):
    import bench.train.loop as train_module

    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)
    precision, note = train_module.default_precision({"precision": "bf16"}, "cpu")
    assert precision == "fp32" and "no native bf16" in note
    assert train_module.default_precision({"precision": "fp32"}, "cpu") == ("fp32", None)
    monkeypatch.setattr(train_module, "native_bf16", lambda device: True)
    assert train_module.default_precision({"precision": "bf16"}, "cpu") == ("bf16", None)


def test_an_emulated_bf16_default_trains_in_fp32_and_the_card_says_so(tmp_path, fast_data,
                                                                     monkeypatch):
    import bench.train.loop as train_module

    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)
    monkeypatch.setitem(TinyMethod.train_defaults, "precision", "bf16")
    out = train(TinyMethod, profile="tiny", steps=2, seed=0, out=tmp_path / "m.pt",
                progress=False, workers=0)
    _, card = load_checkpoint(out)
    assert card["precision"].startswith("fp32")
    assert "--precision fp32" in card["command"]


def test_bench_train_writes_into_the_user_data_folder_not_the_packages(tmp_path, fast_data,
                                                                      monkeypatch, capsys):
    """`bench train` without --out: ``$SAFESORA_BENCH_DATA/checkpoints``; the final message
    names the file and the `bench run --checkpoint` that uses it."""
    from bench.__main__ import main
    from bench.core import checkpoints

    data = tmp_path / "user-data"
    monkeypatch.setenv("SAFESORA_BENCH_DATA", str(data))
    real_get = __import__("bench.core.registry", fromlist=["get"]).get
    monkeypatch.setattr("bench.core.registry.get", lambda kind, name: TinyMethod
                        if name == "tiny-trainable" else real_get(kind, name))
    shipped = checkpoints.checkpoint_path(TinyMethod, "tiny")
    assert main(["train", "--method", "tiny-trainable", "--profile", "tiny", "--steps", "2",
                 "--quiet", "--workers", "0", "--frames", "4"]) == 0
    out = data / "checkpoints" / "tiny-trainable-tiny.pt"
    assert out.is_file() and (data / "checkpoints" / "tiny-trainable-tiny.card.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "tiny-trainable-tiny.card.json", "tiny-trainable-tiny.pt"]  # no state left behind
    assert not shipped.exists()
    for package in ("baselines", "methods", "attacks", "tests"):
        assert not list((checkpoints.REPO_ROOT / package).rglob("tiny-trainable-*")), package
    _, card = load_checkpoint(out)
    assert "--out" not in card["command"] and card["steps"] == 2
    printed = capsys.readouterr().out
    assert f"checkpoint written to {out.resolve()}" in printed
    assert (f"python -m bench run --methods tiny-trainable --profile tiny --checkpoint "
            f"tiny-trainable={out.resolve()}") in printed
    assert str(shipped) in printed  # what bench run loads otherwise


def test_warm_start_from_a_checkpoint_without_its_card_warns(tmp_path, fast_data):
    """A copy of a checkpoint without its card still warm-starts, but the chain before it is
    lost from the new card, so the user is told; with the card beside it, no warning."""
    import shutil
    import warnings

    first = train(TinyMethod, profile="tiny", steps=2, out=tmp_path / "a.pt", progress=False,
                  workers=0)
    bare = tmp_path / "copy" / "a.pt"
    bare.parent.mkdir()
    shutil.copy(first, bare)
    with pytest.warns(UserWarning, match="no card beside it"):
        warm = train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "b.pt",
                     progress=False, workers=0, init=bare)
    _, card = load_checkpoint(warm)
    assert card["total_steps"] == 1 and card["init"]["total_steps"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chained = train(TinyMethod, profile="tiny", steps=1, out=tmp_path / "c.pt",
                        progress=False, workers=0, init=first)
    assert load_checkpoint(chained)[1]["total_steps"] == 3
