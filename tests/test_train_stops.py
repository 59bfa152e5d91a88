"""Early stops, the attack curriculum, the whole validation curve, explicit --resume and the
training campaign.

Driven by the tiny trainable method and synthetic data of tests/test_train.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_train import TinyMethod, fast_data  # noqa: F401  (fixture)

from bench.core.api import BenchError
from bench.core.checkpoints import card_curve, load_checkpoint, shift_curve
from bench.core.seeding import derive_seed
from bench.train.campaign import campaign, campaign_methods, planned_steps
from bench.train.loop import (
    CLEAN,
    attack_probability,
    pick_attack,
    plateau_stop,
    state_path,
    train,
)

SETTINGS = dict(profile="tiny", progress=False, workers=0)
pytestmark = pytest.mark.usefixtures("fast_data")


def _history(*points):
    return [{"step": s, "w_psnr": w, "v_psnr": 30.0} for s, w in points]


def test_plateau_rule_against_hand_computed_windows():
    # last step 1000: the window is (800, 1000]; best before 20.0 (step 600), after 20.1
    flat = _history((200, 15.0), (600, 20.0), (800, 19.0), (900, 20.05), (1000, 20.1))
    assert plateau_stop(flat, 0.2, min_steps=0, min_validations=2)
    assert not plateau_stop(flat, 0.05, min_steps=0, min_validations=2)  # 0.1 dB beats 0.05
    rising = _history((200, 15.0), (800, 19.0), (1000, 19.5))
    assert not plateau_stop(rising, 0.2, min_steps=0, min_validations=1)
    assert not plateau_stop(flat, 0.2, min_steps=2000, min_validations=2)  # too early
    assert not plateau_stop(_history((1000, 20.0)), 0.2, min_steps=0)  # nothing before
    assert not plateau_stop([], 0.2, min_steps=0)


def test_plateau_rule_waits_for_enough_validations_in_its_window():
    # validation every 600 steps: at 1,200 the window (960, 1200] holds one dip
    dip = _history((600, 14.38), (1200, 13.28))
    assert plateau_stop(dip, 0.2, min_steps=1000, min_validations=1)
    assert not plateau_stop(dip, 0.2, min_steps=1000)  # the default asks for 3
    # at 15,000 the window (12000, 15000] holds 12,600 ... 15,000: 5 validations, flat
    long = _history(*[(s, 25.0 + min(s, 12000) / 12000) for s in range(600, 15001, 600)])
    assert plateau_stop(long, 0.2, min_steps=1000)
    # the same window with one of them 0.3 dB above the best before it: still improving
    better = long[:-1] + [{**long[-1], "w_psnr": 26.3}]
    assert not plateau_stop(better, 0.2, min_steps=1000)


def test_plateau_stop_ends_the_run_and_its_command_reproduces_it(tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr("bench.train.loop.PLATEAU_MIN_STEPS", 0)
    monkeypatch.setattr("bench.train.loop.PLATEAU_MIN_VALIDATIONS", 1)
    # 100 dB of gain is never reached: the first validation with one before the window stops
    out = train(TinyMethod, steps=20, out=tmp_path / "a.pt", validate_every=2,
                plateau_db=100.0, **SETTINGS)
    _, card = load_checkpoint(out)
    assert (card["steps"], card["planned_steps"]) == (4, 20)
    assert card["stopped"]["reason"].startswith("plateau")
    assert "--plateau-db 100" in card["command"] and "--stop-after" not in card["command"]
    assert [h["step"] for h in card["history"]] == [2, 4]
    assert not state_path(out).exists()
    again = train(TinyMethod, steps=20, out=tmp_path / "b.pt", validate_every=2,
                  plateau_db=100.0, **SETTINGS)
    wa, wb = torch.load(out, weights_only=True), torch.load(again, weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # off: every step runs
    whole = train(TinyMethod, steps=6, out=tmp_path / "c.pt", validate_every=2,
                  plateau_db=0, **SETTINGS)
    assert load_checkpoint(whole)[1]["steps"] == 6


def test_attack_probability_closed_form():
    assert [attack_probability(s, 3, 0) for s in range(5)] == [0, 0, 0, 1, 1]
    assert [attack_probability(s, 2, 4) for s in range(8)] == [0, 0, .25, .5, .75, 1, 1, 1]
    assert attack_probability(0, 0, 0) == 1.0


def test_pick_attack_without_curriculum_is_the_uniform_draw_it_always_was():
    attacks = [(f"a{i}", None) for i in range(6)]
    for step in range(50):
        g = torch.Generator().manual_seed(derive_seed(7, "attack-choice", step))
        expected = attacks[int(torch.randint(6, (1,), generator=g))]
        assert pick_attack(attacks, 7, step) == expected
    # the clean share inside a ramp follows 1 - p (2,000 draws at p = 0.25: 3 sigma ~ 0.03)
    ramp = [pick_attack(attacks, 7, step, clean_steps=0, ramp_steps=10**9) for step in
            range(250_000_000, 250_002_000)]
    clean = sum(a is CLEAN for a in ramp) / len(ramp)
    assert abs(clean - 0.75) < 0.03
    assert all(pick_attack(attacks, 7, s, clean_steps=10) is CLEAN for s in range(10))


def test_curriculum_steps_are_clean_recorded_and_resumable(tmp_path, monkeypatch):
    seen = []
    original = TinyMethod.training_losses

    def spy(self, frames, logos, attack, generator):
        seen.append(attack is CLEAN[1])
        return original(self, frames, logos, attack, generator)

    monkeypatch.setattr(TinyMethod, "training_losses", spy)
    out = train(TinyMethod, steps=8, out=tmp_path / "c.pt", clean_steps=5, ramp_steps=0,
                validate_every=4, **SETTINGS)
    assert seen == [True] * 5 + [False] * 3
    _, card = load_checkpoint(out)
    assert "--clean-steps 5 --ramp-steps 0" in card["command"]
    assert "--validate-every 4" in card["command"]  # the plateau rule reads those points
    assert [h["step"] for h in card["history"]] == [4, 8]
    assert card["curriculum"].startswith("clean for 5 steps")
    seen.clear()
    train(TinyMethod, steps=8, out=tmp_path / "o.pt", overfit=True, **SETTINGS)
    assert seen == [True] * 8  # the single-clip check trains clean
    with pytest.raises(BenchError, match="validate-every"):
        train(TinyMethod, steps=8, out=tmp_path / "x.pt", validate_every=0, **SETTINGS)
    with pytest.raises(BenchError, match="clean-steps"):
        train(TinyMethod, steps=8, out=tmp_path / "x.pt", clean_steps=-1, **SETTINGS)


def test_time_budget_stops_and_names_the_step_to_reproduce(tmp_path):
    out = train(TinyMethod, steps=30, out=tmp_path / "budget.pt", max_seconds=0.0,
                **SETTINGS)
    _, card = load_checkpoint(out)
    assert card["steps"] == 1 and card["planned_steps"] == 30
    assert card["stopped"] == {"reason": "time budget of 0 s", "step": 1}
    assert "--steps 30" in card["command"] and "--stop-after 1" in card["command"]
    replay = train(TinyMethod, steps=30, out=tmp_path / "replay.pt", stop_after=1, **SETTINGS)
    wa, wb = torch.load(out, weights_only=True), torch.load(replay, weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(BenchError, match="stop-after"):
        train(TinyMethod, steps=3, out=tmp_path / "x.pt", stop_after=4, **SETTINGS)


def test_a_time_budget_stop_keeps_its_state_and_the_same_call_continues(tmp_path):
    out = train(TinyMethod, steps=6, out=tmp_path / "sit.pt", max_seconds=0.0, **SETTINGS)
    assert state_path(out).is_file() and load_checkpoint(out)[1]["steps"] == 1
    TinyMethod.calls = 0
    train(TinyMethod, steps=6, out=out, max_seconds=0.0, **SETTINGS)  # a fresh budget
    assert TinyMethod.calls == 1 and load_checkpoint(out)[1]["steps"] == 2
    train(TinyMethod, steps=6, out=out, **SETTINGS)  # the last sitting, no budget
    assert not state_path(out).exists()
    _, card = load_checkpoint(out)
    assert card["steps"] == 6 and card["stopped"]["reason"] == "steps"
    assert [h["step"] for h in card["history"]][:2] == [1, 2]
    straight = train(TinyMethod, steps=6, out=tmp_path / "straight.pt", **SETTINGS)
    wa, wb = torch.load(out, weights_only=True), torch.load(straight, weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # sittings change nothing


def test_the_curve_accumulates_over_a_warm_start_chain(tmp_path):
    first = train(TinyMethod, steps=4, out=tmp_path / "first.pt", validate_every=2,
                  **SETTINGS)
    second = train(TinyMethod, steps=6, out=tmp_path / "second.pt", validate_every=3,
                   init=first, **SETTINGS)
    _, card1 = load_checkpoint(first)
    _, card2 = load_checkpoint(second)
    assert [p["step"] for p in card2["curve"]] == [2, 4, 7, 10]
    assert card2["curve"][:2] == card1["curve"]
    assert card2["curve"][2]["w_psnr"] == card2["history"][0]["w_psnr"]
    assert card2["total_steps"] == 10
    # an older card without "curve": its own history, shifted by the chain before it
    legacy = {"history": card2["history"], "init": {"total_steps": 4}}
    assert [p["step"] for p in card_curve(legacy)] == [7, 10]
    assert shift_curve([{"step": 1, "w_psnr": 2.0, "v_psnr": 3.0, "loss": 9}], 5) == \
        [{"step": 6, "w_psnr": 2.0, "v_psnr": 3.0}]


def test_explicit_resume_refuses_missing_foreign_and_corrupt_states(tmp_path):
    good = train(TinyMethod, steps=2, out=tmp_path / "good.pt", **SETTINGS)
    before = good.read_bytes()
    with pytest.raises(BenchError, match="no such state file"):
        train(TinyMethod, steps=2, out=good, resume_from=tmp_path / "none.state.pt",
              **SETTINGS)
    TinyMethod.calls, TinyMethod.crash_at = 0, 3  # a state at step 2, of other settings
    with pytest.raises(RuntimeError):
        train(TinyMethod, steps=4, out=tmp_path / "other.pt", validate_every=2, **SETTINGS)
    TinyMethod.crash_at = None
    foreign = state_path(tmp_path / "other.pt")
    with pytest.raises(BenchError, match="other settings.*steps"):
        train(TinyMethod, steps=2, out=good, resume_from=foreign, **SETTINGS)
    corrupt = tmp_path / "corrupt.state.pt"
    corrupt.write_bytes(b"not a state")
    with pytest.raises(BenchError, match="cannot be read"):
        train(TinyMethod, steps=2, out=good, resume_from=corrupt, **SETTINGS)
    assert good.read_bytes() == before  # the last good checkpoint is untouched
    # the matching state continues exactly: only steps 3 and 4 run
    TinyMethod.calls = 0
    train(TinyMethod, steps=4, out=tmp_path / "other.pt", validate_every=2,
          resume_from=foreign, **SETTINGS)
    assert TinyMethod.calls == 2


def test_a_state_from_before_the_fixed_validation_seed_resumes_only_where_clips_agree(
        tmp_path):
    """States written before validation clips had a fixed render seed scored them with the
    run's seed: one of seed 3 would mix two clip sets in one curve and is refused; one of
    seed 0 validated on the very clips a resumed run uses and continues."""
    for seed, resumes in ((3, False), (0, True)):
        out = tmp_path / f"seed{seed}.pt"
        TinyMethod.calls, TinyMethod.crash_at = 0, 3  # a state at step 2
        with pytest.raises(RuntimeError):
            train(TinyMethod, steps=4, out=out, validate_every=2, seed=seed, **SETTINGS)
        TinyMethod.crash_at = None
        state_file = state_path(out)
        state = torch.load(state_file, weights_only=True)
        assert state["settings"]["validation_render_seed"] == 0
        del state["settings"]["validation_render_seed"]  # as written before the fix
        torch.save(state, state_file)
        TinyMethod.calls = 0
        if resumes:
            train(TinyMethod, steps=4, out=out, validate_every=2, seed=seed, **SETTINGS)
            assert TinyMethod.calls == 2
        else:
            with pytest.raises(BenchError, match="validation_render_seed: saved 3, now 0"):
                train(TinyMethod, steps=4, out=out, validate_every=2, seed=seed, **SETTINGS)


def test_campaign_methods_are_the_trainable_ones():
    every = campaign_methods("all")
    assert {"balujanet", "udh", "pusnet", "safe-sd", "wengnet", "safe-sora"} <= set(every)
    assert "identity" not in every and "dct-qim" not in every
    assert campaign_methods("udh,wengnet") == ["udh", "wengnet"]
    with pytest.raises(BenchError, match="no weights"):
        campaign_methods("udh,identity")
    with pytest.raises(BenchError, match="nope"):
        campaign_methods("udh,nope")


def test_planned_steps_closed_form():
    # 60 s, 15% kept back, 10 samples/s, batch 4: 60 * 0.85 * 10 / 4 = 127.5
    assert planned_steps(60.0, 10.0, 4) == 127
    assert planned_steps(60.0, 0.0, 4) == 1


def test_campaign_trains_each_in_turn_records_failures_and_resumes(tmp_path,
                                                                   monkeypatch):
    import bench.core.registry as registry

    class Broken(TinyMethod):
        name = "tiny-broken"

        def training_losses(self, frames, logos, attack, generator):
            raise BenchError("this method cannot train")

    real_get, real_names = registry.get, registry.names
    fakes = {"tiny-trainable": TinyMethod, "tiny-broken": Broken}
    monkeypatch.setattr(registry, "get", lambda kind, name: fakes.get(name)
                        or real_get(kind, name))
    lines: list[str] = []
    # a fixed schedule with room to spare: a budget-planned one can be stopped by its budget
    # on a slow or busy machine, which leaves a resumable state and makes the test flaky
    recipe = {"steps": 3}
    entries = campaign("tiny-broken,tiny-trainable", minutes=5, out_dir=tmp_path / "c",
                       profile="tiny", progress=False, say=lines.append, recipe=recipe)
    assert [e["method"] for e in entries] == ["tiny-broken", "tiny-trainable"]
    assert "cannot train" in entries[0]["error"]
    done = entries[1]
    assert done["steps"] == 3 and done["w_psnr"] is not None
    assert (tmp_path / "c" / "tiny-trainable-tiny.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == \
        ["campaign.json", "tiny-trainable-tiny.card.json", "tiny-trainable-tiny.pt"]
    saved = json.loads((tmp_path / "c" / "campaign.json").read_text())["methods"]
    assert saved == json.loads(json.dumps(entries))
    # a rerun skips what is there
    TinyMethod.calls = 0
    campaign("tiny-trainable", minutes=5, out_dir=tmp_path / "c", profile="tiny",
             progress=False, say=lines.append, recipe=recipe)
    assert TinyMethod.calls == 0
    with pytest.raises(BenchError, match="positive"):
        campaign("tiny-trainable", minutes=0, out_dir=tmp_path / "d", profile="tiny")
    assert real_names("methods")  # the real registry was left alone


@pytest.mark.slow
def test_campaign_cli_trains_real_methods_at_the_tiny_profile(tmp_path, capsys):
    from bench.__main__ import main

    out = tmp_path / "campaign"
    code = main(["train", "--method", "balujanet,udh", "--profile", "tiny", "--minutes", "0.3",
                 "--out-dir", str(out), "--quiet"])
    assert code == 0, capsys.readouterr()
    entries = json.loads((out / "campaign.json").read_text())["methods"]
    assert [e["method"] for e in entries] == ["balujanet", "udh"]
    for entry in entries:
        _, card = load_checkpoint(out / entry["checkpoint"])
        assert card["profile"] == "tiny" and card["steps"] == entry["steps"] >= 1
        assert 1 <= card["steps"] <= card["planned_steps"]
        assert card["stopped"]["reason"] == "steps" \
            or card["stopped"]["reason"].startswith("time budget")
    assert main(["train", "--method", "all", "--profile", "tiny", "--quiet"]) == 2
    assert "--minutes" in capsys.readouterr().err


def test_cli_bad_input_is_a_message_and_keeps_the_checkpoint(tmp_path, capsys):
    from bench.__main__ import main

    assert main(["train", "--method", "no-such-method", "--quiet"]) == 2
    assert "no-such-method" in capsys.readouterr().err
    out = train(TinyMethod, steps=2, out=tmp_path / "keep.pt", **SETTINGS)
    before = out.read_bytes()
    bad = tmp_path / "bad.state.pt"
    bad.write_bytes(b"\x00" * 10)
    assert main(["train", "--method", "udh", "--profile", "tiny", "--steps", "2", "--out",
                 str(out), "--resume", str(bad), "--quiet"]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_campaign_with_steps_gives_every_method_the_same_schedule_and_resumes(
        tmp_path, monkeypatch):
    import bench.core.registry as registry

    class Other(TinyMethod):
        name = "tiny-other"

    real_get = registry.get
    fakes = {"tiny-trainable": TinyMethod, "tiny-other": Other}
    monkeypatch.setattr(registry, "get", lambda kind, name: fakes.get(name)
                        or real_get(kind, name))
    out = tmp_path / "c"
    recipe = {"steps": 6, "validate_every": 2, "clean_steps": 2, "ramp_steps": 2,
              "plateau_db": 0.0, "batch_size": None}
    entries = campaign("tiny-trainable,tiny-other", None, out, profile="tiny", seed=3,
                       progress=False, say=lambda _: None, recipe=recipe)
    cards = [load_checkpoint(out / e["checkpoint"])[1] for e in entries]
    for card in cards:  # no probe: exactly the schedule asked, same seed and curriculum
        assert (card["steps"], card["planned_steps"], card["seed"]) == (6, 6, 3)
        assert [h["step"] for h in card["history"]] == [2, 4, 6]
        assert "--clean-steps 2" in card["command"] and "--ramp-steps 2" in card["command"]
    # a method the budget stopped keeps its state; the campaign's next sitting continues it
    stopped = out / "tiny-other-tiny.pt"
    stopped.unlink()
    train(Other, steps=6, seed=3, out=stopped, validate_every=2, clean_steps=2, ramp_steps=2,
          plateau_db=0.0, max_seconds=1e-9, **SETTINGS)  # budget spent after step 1
    assert state_path(stopped).is_file()
    TinyMethod.calls = 0
    entries = campaign("tiny-trainable,tiny-other", None, out, profile="tiny", seed=3,
                       progress=False, say=lambda _: None, recipe=recipe)
    assert entries[1]["steps"] == 6 and not state_path(stopped).is_file()
    resumed = load_checkpoint(stopped)[0]
    for key, value in load_checkpoint(out / "tiny-trainable-tiny.pt")[0].items():
        assert key in resumed and resumed[key].shape == value.shape
    with pytest.raises(BenchError, match="--minutes, its time budget, or --steps"):
        campaign("tiny-trainable", None, tmp_path / "d", profile="tiny")
    with pytest.raises(BenchError, match="not warmup"):
        campaign("tiny-trainable", 1.0, tmp_path / "d", profile="tiny",
                 recipe={"warmup": 3})


def test_the_ablation_campaign_is_the_full_model_then_its_six_variants():
    from bench.core.reference import PAPER_ABLATION_NAMES

    names = campaign_methods("ablation")
    assert names[0] == "safe-sora" and sorted(names) == sorted(PAPER_ABLATION_NAMES)
    assert len(names) == 7
