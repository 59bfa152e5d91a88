"""``bench run --precision``: bf16 autocast of the methods' forward passes against the fp32
reference, on the tiny profile with a randomly initialised network."""

from __future__ import annotations

import pytest
import torch

from bench.core.api import BenchError
from bench.core.precision import autocast, check_precision
from bench.core.profiles import load_profile
from bench.core.results import load_results
from bench.run.runner import RunConfig, Runner

TINY = load_profile("tiny")


def _run(tmp_path, precision: str, out: str):
    from baselines.udh import UDH

    torch.manual_seed(0)
    method = UDH(TINY, "cpu", checkpoint=None)
    config = RunConfig(methods="udh", attacks="identity,blur", profile="tiny", limit=2,
                       out=tmp_path / out, cache_dir=tmp_path / "cache", progress=False,
                       fvd=False, precision=precision)
    summary = Runner(config, methods=[method]).run()
    return summary, load_results(tmp_path / out)


def test_bf16_rows_are_their_own_and_close_to_fp32(tmp_path):
    fp32, ref = _run(tmp_path, "fp32", "fp32")
    bf16, fast = _run(tmp_path, "bf16", "bf16")
    assert bf16.computed_rows == fp32.computed_rows > 0  # not taken from the fp32 cache
    assert fast.manifest["config"]["precision"] == "bf16"
    assert fast.manifest["methods"]["udh"]["precision"] == "bf16"
    assert "precision" not in ref.manifest["methods"]["udh"]
    keys = ["video_id", "attack_params"]
    a = ref.rows.set_index(keys).sort_index()
    b = fast.rows.set_index(keys).sort_index()
    for column in ("w_psnr", "v_psnr"):
        assert (a[column] - b[column]).abs().max() < 0.5, column
    # fp32 again: exactly the reference, from the cache (only the first clip's rows are
    # recomputed, for the new folder's figure samples)
    again, rerun = _run(tmp_path, "fp32", "fp32-again")
    assert again.computed_rows == fp32.computed_rows // 2
    assert (rerun.rows.set_index(keys).sort_index()["w_psnr"] == a["w_psnr"]).all()


def test_precision_is_checked():
    assert check_precision("bf16") == "bf16"
    with pytest.raises(BenchError, match="precision must be one of fp32, bf16"):
        check_precision("fp16")
    with autocast("bf16"):
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype == torch.bfloat16
    with autocast("fp32"):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == \
            torch.float32
