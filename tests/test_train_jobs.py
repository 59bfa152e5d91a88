"""``bench train --method A,B --jobs N``: a campaign's methods trained side by side, each in a
process of its own, exactly as they train one at a time. Real methods at the tiny profile:
the worker processes are spawned, so no monkeypatch (such as test_train's ``fast_data``) could
reach them."""

from __future__ import annotations

import json

import pytest
import torch

from bench.core.api import BenchError
from bench.core.checkpoints import load_checkpoint
from bench.train.campaign import campaign


@pytest.mark.slow
def test_campaign_jobs_train_methods_side_by_side_as_they_would_one_at_a_time(tmp_path):
    recipe = {"steps": 4, "validate_every": 2, "plateau_db": 0.0}
    lines: list[str] = []
    side = campaign("balujanet,udh", None, tmp_path / "side", profile="tiny", seed=2,
                    say=lines.append, recipe=recipe, jobs=2)
    threads = max(1, torch.get_num_threads() // 2)
    assert lines[0] == f"campaign of 2 methods, 2 at a time with {threads} thread(s) each"
    assert sorted(lines[1:]) == sorted(
        f"{e['method']}: 4 steps, validation W-PSNR {e['w_psnr']:.2f} dB, V-PSNR "
        f"{e['v_psnr']:.2f} dB -> {tmp_path / 'side' / e['checkpoint']}" for e in side)
    saved = json.loads((tmp_path / "side" / "campaign.json").read_text())["methods"]
    assert [e["method"] for e in saved] == ["balujanet", "udh"]  # the campaign's order
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # the same campaign one method at a time, with the threads each process had
        alone = campaign("balujanet,udh", None, tmp_path / "alone", profile="tiny", seed=2,
                         progress=False, say=lambda _: None, recipe=recipe)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(side, alone, strict=True):
        state_a, card_a = load_checkpoint(tmp_path / "side" / a["checkpoint"])
        state_b, card_b = load_checkpoint(tmp_path / "alone" / b["checkpoint"])
        assert card_a["device"] == card_b["device"] and f"{threads} threads" in card_a["device"]
        assert card_a["history"] == card_b["history"]
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_b)


def test_bad_jobs_are_a_message(tmp_path, capsys):
    from bench.__main__ import main

    recipe = {"steps": 4}
    with pytest.raises(BenchError, match="at least 1"):
        campaign("udh", None, tmp_path / "d", profile="tiny", recipe=recipe, jobs=0)
    with pytest.raises(BenchError, match="one method at a time"):
        campaign("udh", None, tmp_path / "d", device="cuda", recipe=recipe, jobs=2)

    assert main(["train", "--method", "udh", "--profile", "tiny", "--jobs", "2",
                 "--quiet"]) == 2
    assert "--jobs" in capsys.readouterr().err
