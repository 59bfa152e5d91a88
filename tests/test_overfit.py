"""The single-clip check of every trained method (``bench train --overfit``).

A method that cannot reach OVERFIT_TARGET_DB (35 dB W-PSNR and V-PSNR) on one training clip
in its single-clip schedule (``overfit_defaults``: OVERFIT_STEPS steps at its lr unless it sets
its own) is broken, not undertrained. Minutes per method on 2 CPU cores, so
these tests carry the ``overfit`` marker and run only when asked: ``pytest -m overfit``.
"""

from __future__ import annotations

import pytest

from bench.core import registry
from bench.core.checkpoints import load_checkpoint
from bench.train.loop import OVERFIT_TARGET_DB, overfit_defaults, train

METHODS = ["balujanet", "udh", "pusnet", "safe-sd", "wengnet", "safe-sora"]


@pytest.mark.slow
@pytest.mark.overfit
@pytest.mark.parametrize("method", METHODS)
def test_method_fits_one_clip(method, tmp_path):
    out = train(method, profile="default", overfit=True, out=tmp_path / f"{method}.pt",
                progress=False, resume=False)
    _, card = load_checkpoint(out)
    cls = registry.get("methods", method)
    steps, lr = overfit_defaults(cls.resolved_train_defaults())
    assert (card["steps"], card["lr"]) == (steps, lr)
    w, v = card["validation"]["w_psnr"], card["validation"]["v_psnr"]
    assert w >= OVERFIT_TARGET_DB and v >= OVERFIT_TARGET_DB, \
        f"{method}: W-PSNR {w:.2f} dB, V-PSNR {v:.2f} dB on its one clip"
