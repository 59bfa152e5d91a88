"""``bench train --method all --minutes M``: every trainable method in turn under one time budget.

For a user with a GPU (``--device cuda``) or a long CPU sitting. The budget is shared equally
by the methods. For each method, in registry order:

1. a short probe (``PROBE_STEPS`` steps, no validation but the last) measures its samples per
   second on this device;
2. the run is planned to fill the method's share: ``steps = share * samples/s / batch``, less
   ``PLAN_MARGIN`` for validations, so the cosine schedule ends inside the budget; the budget
   also stops it (``max_seconds``), and the plateau rule may stop it earlier;
3. its checkpoint and card go to ``OUT_DIR/<method>-<profile>.pt`` (the probe's are deleted;
   ``OUT_DIR`` defaults to ``training-campaign-<profile>`` in the user data folder).

``OUT_DIR/campaign.json`` is rewritten after each method (method, planned and done steps,
minutes, validation W-PSNR / V-PSNR, why it stopped, or the error that stopped it): a killed
campaign rerun with the same command skips the methods whose checkpoint is there and resumes
the interrupted one from its state file. One method's failure is recorded and the next runs.
``bench run --checkpoint METHOD=PATH`` evaluates one; copying it with its ``.card.json`` into
the folder its method declares (``baselines/checkpoints``, ``methods/checkpoints``) makes it
the default.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from bench.core.api import BenchError, TrainableMethod
from bench.train.loop import train

__all__ = ["PLAN_MARGIN", "PROBE_STEPS", "campaign", "campaign_methods", "is_campaign",
           "planned_steps", "run_campaign"]

PROBE_STEPS = 4
#: fraction of a method's share kept for validations and the end-of-run checkpoint
PLAN_MARGIN = 0.15


def is_campaign(spec: str) -> bool:
    """``all`` or a comma-separated list of names."""
    return spec == "all" or "," in spec


def campaign_methods(spec: str) -> list[str]:
    """The trainable registered methods ``spec`` names (``all``: every one), in order.

    Raises BenchError for an unknown name or one without weights to train."""
    from bench.core import registry

    names = registry.names("methods") if spec == "all" else \
        [n.strip() for n in spec.split(",") if n.strip()]
    chosen = []
    for name in names:
        factory = registry.get("methods", name)  # BenchError for an unknown name
        if isinstance(factory, type) and issubclass(factory, TrainableMethod):
            chosen.append(name)
        elif spec != "all":
            raise BenchError(f"method {name!r} has no weights to train")
    if not chosen:
        raise BenchError(f"no trainable method in {spec!r}")
    return chosen


def planned_steps(seconds: float, samples_per_second: float, batch_size: int) -> int:
    """Optimiser steps that fit in ``seconds`` at the measured rate, less ``PLAN_MARGIN``."""
    if not samples_per_second > 0:
        return 1
    return max(1, int(seconds * (1.0 - PLAN_MARGIN) * samples_per_second / batch_size))


def _write_summary(path: Path, entries: list[dict]) -> None:
    from bench.core.results import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps({"methods": entries}, indent=2) + "\n").encode())


def campaign(spec: str, minutes: float, out_dir: Path | str, profile: str = "default",
             device: str = "cpu", seed: int = 0, precision: Optional[str] = None,
             progress: bool = True, say=print) -> list[dict]:
    """Train every method of ``spec`` in turn within ``minutes`` in all; returns the entries
    written to ``out_dir/campaign.json``."""
    from bench.core.checkpoints import card_path, load_card

    if not minutes > 0:
        raise BenchError(f"--minutes must be positive, got {minutes}")
    names = campaign_methods(spec)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the campaign folder {out}: {exc.strerror}") from exc
    share = 60.0 * minutes / len(names)
    entries: list[dict] = []
    for name in names:
        ckpt = out / f"{name.replace('/', '--')}-{profile}.pt"
        entry: dict = {"method": name, "checkpoint": ckpt.name, "budget_minutes": share / 60}
        began = time.perf_counter()
        try:
            if not ckpt.is_file():
                probe = out / f".probe-{ckpt.name}"
                probe_path = train(name, profile=profile, steps=PROBE_STEPS, seed=seed,
                                   device=device, out=probe, resume=False, progress=False,
                                   precision=precision, validate_every=PROBE_STEPS,
                                   plateau_db=None)
                probe_card = load_card(probe_path)
                probe_path.unlink(missing_ok=True)
                card_path(probe_path).unlink(missing_ok=True)
                steps = planned_steps(share - (time.perf_counter() - began),
                                      float(probe_card.get("samples_per_second") or 0),
                                      int(probe_card["batch_size"]))
                say(f"{name}: {probe_card.get('samples_per_second')} samples/s, {steps} steps "
                    f"planned in {share / 60:.1f} min")
                train(name, profile=profile, steps=steps, seed=seed, device=device, out=ckpt,
                      progress=progress, precision=precision,
                      max_seconds=share - (time.perf_counter() - began))
            card = load_card(ckpt)
            validation = card.get("validation") or {}
            entry.update(steps=card.get("steps"), planned_steps=card.get("planned_steps"),
                         stopped=(card.get("stopped") or {}).get("reason"),
                         minutes=round(float(card.get("training_seconds") or 0) / 60, 2),
                         samples_per_second=card.get("samples_per_second"),
                         w_psnr=validation.get("w_psnr"), v_psnr=validation.get("v_psnr"))
            say(f"{name}: {entry['steps']} steps, validation W-PSNR "
                f"{_db(entry['w_psnr'])}, V-PSNR {_db(entry['v_psnr'])} -> {ckpt}")
        except BenchError as exc:
            entry["error"] = str(exc)
            say(f"{name}: failed: {exc}")
        entries.append(entry)
        _write_summary(out / "campaign.json", entries)
    return entries


def _db(value) -> str:
    return "n/a" if value is None else f"{float(value):.2f} dB"


def run_campaign(args) -> int:
    """The CLI of a campaign; exit 0 when every method trained, 1 when one failed."""
    if args.minutes is None:
        raise BenchError("a campaign (--method all or A,B) needs --minutes, its time budget")
    if args.out is not None or args.init is not None or args.resume is not None:
        raise BenchError("--out, --init and --resume name one method's files; a campaign "
                         "writes into --out-dir")
    from bench.core.checkpoints import default_data_dir

    out_dir = Path(args.out_dir) if args.out_dir else (
        default_data_dir() / f"training-campaign-{Path(args.profile).stem}")
    try:
        entries = campaign(args.method, args.minutes, out_dir, profile=args.profile,
                           device=args.device, seed=args.seed, precision=args.precision,
                           progress=not args.quiet)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue the campaign",
              file=sys.stderr)
        return 130
    print(f"campaign: {out_dir.resolve() / 'campaign.json'}; evaluate a checkpoint of it with "
          f"`python -m bench run --methods NAME --profile {args.profile} --checkpoint "
          f"NAME={out_dir.resolve()}/FILE.pt`")
    return 1 if any("error" in e for e in entries) else 0
