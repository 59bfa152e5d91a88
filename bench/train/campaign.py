"""``bench train --method all --minutes M``: every trainable method in turn under one time budget.

For a user with a GPU (``--device cuda``) or a long CPU sitting. The budget is shared equally
by the methods. ``--method ablation`` names Safe-Sora's full model and its six ablation
variants; with ``--steps N`` every method trains exactly N steps with the same seed and
recipe (the paper's from-scratch ablation: equal budgets in steps, not in minutes), and
``--minutes``, if given, only caps each method's share of the sitting. For each method, in
order:

1. a short probe (``PROBE_STEPS`` steps, no validation but the last) measures its samples per
   second on this device;
   (skipped when ``--steps`` fixes the schedule);
2. the run is planned to fill the method's share: ``steps = share * samples/s / batch``, less
   ``PLAN_MARGIN`` for validations, so the cosine schedule ends inside the budget; the budget
   also stops it (``max_seconds``), and the plateau rule may stop it earlier;
3. its checkpoint and card go to ``OUT_DIR/<method>-<profile>.pt`` (the probe's are deleted;
   ``OUT_DIR`` defaults to ``training-campaign-<profile>`` in the user data folder).

``OUT_DIR/campaign.json`` is rewritten after each method (method, planned and done steps,
minutes, validation W-PSNR / V-PSNR, why it stopped, or the error that stopped it): a killed
campaign rerun with the same command skips the methods that finished and resumes the
interrupted one from its state file (a method the budget stopped keeps its state file too,
so the next sitting continues its schedule). One method's failure is recorded and the next runs.
With ``--jobs N`` (CPU only) N methods train at once, each in a spawned process with its share
of the threads, and each round of N methods shares ``--minutes`` equally; the parent alone
writes ``campaign.json``, in the campaign's order. ``bench run --checkpoint METHOD=PATH``
evaluates one; copying it with its ``.card.json`` into
the folder its method declares (``baselines/checkpoints``, ``methods/checkpoints``) makes it
the default.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

import torch

from bench.core.api import BenchError, TrainableMethod
from bench.core.reference import PAPER_ABLATION_NAMES
from bench.train.loop import state_path, train

__all__ = ["ABLATION", "PLAN_MARGIN", "PROBE_STEPS", "RECIPE_FLAGS", "campaign",
           "campaign_methods", "is_campaign", "planned_steps", "run_campaign"]

#: the campaign of Safe-Sora's full model and its ablation variants, full model first
ABLATION = "ablation"
#: ``bench train`` options a campaign passes to every method's run (``train`` keywords)
RECIPE_FLAGS = ("steps", "batch_size", "lr", "frames", "clean_steps", "ramp_steps",
                "validate_every", "plateau_db")

PROBE_STEPS = 4
#: fraction of a method's share kept for validations and the end-of-run checkpoint
PLAN_MARGIN = 0.15


def is_campaign(spec: str) -> bool:
    """``all``, ``ablation`` or a comma-separated list of names."""
    return spec in ("all", ABLATION) or "," in spec


def campaign_methods(spec: str) -> list[str]:
    """The trainable registered methods ``spec`` names (``all``: every one), in order.

    Raises BenchError for an unknown name or one without weights to train."""
    from bench.core import registry

    if spec == ABLATION:
        full = [n for n, v in PAPER_ABLATION_NAMES.items() if v == "full model"]
        names = full + [n for n in PAPER_ABLATION_NAMES if n not in full]
    else:
        names = registry.names("methods") if spec == "all" else \
            [n.strip() for n in spec.split(",") if n.strip()]
    chosen = []
    for name in names:
        factory = registry.get("methods", name)  # BenchError for an unknown name
        if isinstance(factory, type) and issubclass(factory, TrainableMethod):
            chosen.append(name)
        elif spec not in ("all", ABLATION):
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


def campaign(spec: str, minutes: Optional[float], out_dir: Path | str,
             profile: str = "default", device: str = "cpu", seed: int = 0,
             precision: Optional[str] = None, progress: bool = True, say=print,
             recipe: Optional[dict] = None, jobs: int = 1) -> list[dict]:
    """Train every method of ``spec`` within ``minutes`` in all; returns the entries written
    to ``out_dir/campaign.json``, in the order of ``spec``.

    ``recipe``: ``train`` keywords of ``RECIPE_FLAGS`` given to every method (None: the
    method's default). With ``recipe["steps"]`` each method runs that schedule and
    ``minutes`` (then optional) only caps its share; without it ``minutes`` is required and
    each schedule is planned from a probe to fill the share. ``jobs``: methods trained at
    once on the CPU, each in a process of its own with ``torch.get_num_threads() // jobs``
    threads; the budget is shared by the rounds of ``jobs`` methods."""
    recipe = {k: v for k, v in (recipe or {}).items() if v is not None}
    unknown = sorted(set(recipe) - set(RECIPE_FLAGS))
    if unknown:
        raise BenchError(f"a campaign passes {', '.join(RECIPE_FLAGS)} to its runs, not "
                         f"{', '.join(unknown)}")
    fixed_steps = recipe.get("steps")
    if minutes is None and fixed_steps is None:
        raise BenchError("a campaign (--method all, ablation or A,B) needs --minutes, its "
                         "time budget, or --steps, every method's schedule")
    if minutes is not None and not minutes > 0:
        raise BenchError(f"--minutes must be positive, got {minutes}")
    if fixed_steps is not None and not fixed_steps > 0:
        raise BenchError(f"--steps must be positive, got {fixed_steps}")
    if not jobs >= 1:
        raise BenchError(f"--jobs must be at least 1, got {jobs}")
    if jobs > 1 and device != "cpu":
        raise BenchError(f"--jobs {jobs} shares the CPU's cores between methods; on {device} "
                         "a campaign trains one method at a time")
    names = campaign_methods(spec)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the campaign folder {out}: {exc.strerror}") from exc
    rounds = math.ceil(len(names) / jobs)
    task = dict(profile=profile, device=device, seed=seed, precision=precision,
                recipe=recipe, share=None if minutes is None else 60.0 * minutes / rounds)
    if jobs == 1:
        entries: list[dict] = []
        for name in names:
            entries.append(_train_method(name, out, progress=progress, say=say, **task))
            say(_summary_line(entries[-1], out))
            _write_summary(out / "campaign.json", entries)
        return entries
    threads = max(1, torch.get_num_threads() // jobs)
    say(f"campaign of {len(names)} methods, {jobs} at a time with {threads} thread(s) each")
    done: dict[int, dict] = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_method_in_process, threads, name, out, **task): i
                   for i, name in enumerate(names)}
        for future in as_completed(futures):
            entry = future.result()
            done[futures[future]] = entry
            say(_summary_line(entry, out))
            _write_summary(out / "campaign.json", [done[i] for i in sorted(done)])
    return [done[i] for i in range(len(names))]


def _train_method(name: str, out: Path, profile: str, device: str, seed: int,
                  precision: Optional[str], recipe: dict, share: Optional[float],
                  progress: bool, say) -> dict:
    """One method of a campaign: its run (planned from a probe when ``recipe`` has no
    steps), skipped when its checkpoint is finished; returns its campaign.json entry, with
    the error when a BenchError stopped it (``_summary_line`` says how it ended)."""
    from bench.core.checkpoints import card_path, load_card

    ckpt = out / f"{name.replace('/', '--')}-{profile}.pt"
    entry: dict = {"method": name, "checkpoint": ckpt.name,
                   "budget_minutes": None if share is None else share / 60}
    fixed_steps = recipe.get("steps")
    began = time.perf_counter()
    try:
        if fixed_steps is not None and not _finished(ckpt):
            say(f"{name}: {fixed_steps} steps")
            train(name, profile=profile, seed=seed, device=device, out=ckpt,
                  progress=progress, precision=precision, max_seconds=share, **recipe)
        elif not _finished(ckpt):
            probe = out / f".probe-{ckpt.name}"
            probe_path = train(name, profile=profile, steps=PROBE_STEPS, seed=seed,
                               device=device, out=probe, resume=False, progress=False,
                               precision=precision, validate_every=PROBE_STEPS,
                               plateau_db=None, **{k: recipe[k] for k in
                                                   ("batch_size", "frames") if k in recipe})
            probe_card = load_card(probe_path)
            probe_path.unlink(missing_ok=True)
            card_path(probe_path).unlink(missing_ok=True)
            steps = planned_steps(share - (time.perf_counter() - began),
                                  float(probe_card.get("samples_per_second") or 0),
                                  int(probe_card["batch_size"]))
            say(f"{name}: {probe_card.get('samples_per_second')} samples/s, {steps} steps "
                f"planned in {share / 60:.1f} min")
            train(name, profile=profile, seed=seed, device=device, out=ckpt,
                  progress=progress, precision=precision,
                  max_seconds=share - (time.perf_counter() - began),
                  **{**recipe, "steps": steps})
        card = load_card(ckpt)
        validation = card.get("validation") or {}
        entry.update(steps=card.get("steps"), planned_steps=card.get("planned_steps"),
                     stopped=(card.get("stopped") or {}).get("reason"),
                     minutes=round(float(card.get("training_seconds") or 0) / 60, 2),
                     samples_per_second=card.get("samples_per_second"),
                     w_psnr=validation.get("w_psnr"), v_psnr=validation.get("v_psnr"))
    except BenchError as exc:
        entry["error"] = str(exc)
    return entry


def _train_method_in_process(threads: int, name: str, out: Path, **task) -> dict:
    """``_train_method`` in a worker process of ``threads`` threads; its lines (each opens
    with the method's name) go to stdout, without a progress bar."""
    torch.set_num_threads(threads)
    return _train_method(name, out, progress=False,
                         say=lambda line: print(line, flush=True), **task)


def _summary_line(entry: dict, out: Path) -> str:
    if "error" in entry:
        return f"{entry['method']}: failed: {entry['error']}"
    return (f"{entry['method']}: {entry['steps']} steps, validation W-PSNR "
            f"{_db(entry['w_psnr'])}, V-PSNR {_db(entry['v_psnr'])} -> "
            f"{out / entry['checkpoint']}")


def _finished(ckpt: Path) -> bool:
    """A campaign's method is done when its checkpoint is there without a resumable state
    (a time budget that stopped it leaves both: the next sitting continues it)."""
    return ckpt.is_file() and not state_path(ckpt).is_file()


def _db(value) -> str:
    return "n/a" if value is None else f"{float(value):.2f} dB"


def run_campaign(args) -> int:
    """The CLI of a campaign; exit 0 when every method trained, 1 when one failed."""
    if args.out is not None or args.init is not None or args.resume is not None:
        raise BenchError("--out, --init and --resume name one method's files; a campaign "
                         "writes into --out-dir")
    from bench.core.checkpoints import default_data_dir

    out_dir = Path(args.out_dir) if args.out_dir else (
        default_data_dir() / f"training-campaign-{Path(args.profile).stem}")
    try:
        entries = campaign(args.method, args.minutes, out_dir, profile=args.profile,
                           device=args.device, seed=args.seed, precision=args.precision,
                           progress=not args.quiet,
                           recipe={k: getattr(args, k) for k in RECIPE_FLAGS},
                           jobs=args.jobs)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue the campaign",
              file=sys.stderr)
        return 130
    print(f"campaign: {out_dir.resolve() / 'campaign.json'}; evaluate a checkpoint of it with "
          f"`python -m bench run --methods NAME --profile {args.profile} --checkpoint "
          f"NAME={out_dir.resolve()}/FILE.pt`")
    return 1 if any("error" in e for e in entries) else 0
