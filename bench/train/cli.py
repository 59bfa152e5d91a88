"""``bench train`` and ``bench fit-proxy`` on the command line: one run, a campaign
(``--method all|A,B --minutes M``, bench/train/campaign.py) or the single-clip check."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from bench.core.api import BenchError
from bench.train.campaign import is_campaign, run_campaign
from bench.train.loop import (
    OVERFIT_STEPS,
    OVERFIT_TARGET_DB,
    PLATEAU_DB,
    PLATEAU_MIN_STEPS,
    PLATEAU_MIN_VALIDATIONS,
    PLATEAU_WINDOW,
    PRECISIONS,
    RENDERS_PER_PROMPT,
    train,
)


def _cmd_train(args) -> int:
    train_attacks = None
    if args.train_attacks is not None:
        train_attacks = tuple(a.strip() for a in args.train_attacks.split(",") if a.strip())
    if is_campaign(args.method):
        if train_attacks is not None:
            raise BenchError("--train-attacks replaces one method's training attacks; a "
                             f"campaign ({args.method!r}) trains each with its own")
        if args.reveal_weight is not None:
            raise BenchError("--reveal-weight changes one method's loss; a campaign "
                             f"({args.method!r}) trains each with its own")
        return run_campaign(args)
    if args.jobs != 1:
        raise BenchError(f"--jobs trains the methods of a campaign side by side (--method "
                         f"all, ablation or A,B); {args.method!r} is one method")
    try:
        path = train(args.method, profile=args.profile, steps=args.steps, seed=args.seed,
                     device=args.device, out=args.out, resume=not args.no_resume,
                     batch_size=args.batch_size, lr=args.lr, progress=not args.quiet,
                     frames=args.frames, workers=args.workers, init=args.init,
                     precision=args.precision, renders=args.renders or None,
                     overfit=args.overfit, plateau_db=args.plateau_db,
                     max_seconds=None if args.minutes is None else 60.0 * args.minutes,
                     stop_after=args.stop_after, resume_from=args.resume,
                     clean_steps=args.clean_steps, ramp_steps=args.ramp_steps,
                     validate_every=args.validate_every, train_attacks=train_attacks,
                     reveal_weight=args.reveal_weight)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last validation",
              file=sys.stderr)
        return 130
    if args.overfit:
        print(f"checkpoint: {path}")
        return _overfit_verdict(path)
    print(written_message(path, args.method, args.profile))
    return 0


def written_message(path: Path, method: str, profile: str) -> str:
    """Where ``bench train`` wrote the checkpoint of ``method`` and how ``bench run`` uses it
    (``profile``: as given on the command line, a name or a TOML path)."""
    from bench.core.checkpoints import card_path, checkpoint_path, load_card

    path = Path(path).resolve()
    lines = [f"checkpoint written to {path}", f"card: {card_path(path)}"]
    try:
        shipped = checkpoint_path(method, str(load_card(path).get("profile")
                                              or Path(profile).stem)).resolve()
    except BenchError:  # a method without a folder of its own: it ships nothing
        shipped = None
    if path == shipped:
        lines.append(f"this is {method}'s shipped checkpoint: bench run loads it by default")
        return "\n".join(lines)
    run = shlex.join(["python", "-m", "bench", "run", "--methods", method, "--profile",
                      profile, "--checkpoint", f"{method}={path}"])
    default = f"{method}'s shipped checkpoint ({shipped})" if shipped else "no checkpoint"
    lines += [f"bench run loads {default} unless --checkpoint names another; to evaluate "
              "this one:", f"  {run}"]
    return "\n".join(lines)


def _overfit_verdict(path: Path) -> int:
    """Print whether the single-clip run reached ``OVERFIT_TARGET_DB``; 0 if it did, else 1."""
    from bench.core.checkpoints import load_checkpoint

    _, card = load_checkpoint(path)
    w, v = card["validation"]["w_psnr"], card["validation"]["v_psnr"]
    passed = w >= OVERFIT_TARGET_DB and v >= OVERFIT_TARGET_DB
    print(f"overfit check {'passed' if passed else 'FAILED'}: W-PSNR {w:.2f} dB, V-PSNR "
          f"{v:.2f} dB on one clip after {card['steps']} steps (target {OVERFIT_TARGET_DB:g} "
          "dB each)" + ("" if passed else "; a method that cannot fit one clip is broken, "
                        "not undertrained"))
    return 0 if passed else 1


def _cmd_fit_proxy(args) -> int:
    from attacks.h264_proxy import fit_proxy

    path = fit_proxy(profile=args.profile, clips=args.clips, epochs=args.epochs,
                     seed=args.seed, out=args.out, heldout=args.heldout,
                     progress=not args.quiet, perturbed=not args.no_perturb)
    print(f"proxy checkpoint: {path}")
    return 0


def add_train_parser(subparsers) -> None:
    """Add the ``train`` and ``fit-proxy`` subcommands to ``bench``'s subparsers."""
    q = subparsers.add_parser("train", help="train a method's network and write its checkpoint")
    q.add_argument("--method", required=True,
                   help="registered name of a trainable method; 'all', 'ablation' "
                        "(Safe-Sora and its six variants) or A,B: a campaign, each in turn")
    q.add_argument("--profile", default="default", help="profile name or TOML path")
    q.add_argument("--steps", type=int, default=None, help="optimiser steps (method default)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    q.add_argument("--out", default=None,
                   help="checkpoint path (default: $SAFESORA_BENCH_DATA, else "
                        "$XDG_DATA_HOME/safesora-bench or ~/.local/share/safesora-bench, "
                        "then checkpoints/METHOD-PROFILE.pt; bench run uses it with "
                        "--checkpoint METHOD=PATH)")
    q.add_argument("--batch-size", type=int, default=None)
    q.add_argument("--lr", type=float, default=None, help="peak learning rate")
    q.add_argument("--frames", type=int, default=None,
                   help="train on random windows of T frames (default: the profile's length)")
    q.add_argument("--workers", type=int, default=1,
                   help="processes rendering training clips ahead (0: none)")
    q.add_argument("--init", default=None, metavar="CKPT",
                   help="start from the weights of this checkpoint of the same method "
                        "(warm start; new optimiser and schedule; the card records the chain)")
    q.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="bf16: autocast forward in channels_last, fp32 weights and loss; "
                        "fp32: the reference path (default: the method's, bf16 only where "
                        "the device computes it natively)")
    q.add_argument("--renders", type=int, default=RENDERS_PER_PROMPT,
                   help="fixed renders per training prompt, rendered once and kept on disk "
                        f"as uint8 (default {RENDERS_PER_PROMPT}; 0: a fresh render per item)")
    q.add_argument("--overfit", action="store_true",
                   help=f"train and validate on one clip; exit 1 unless W-PSNR and V-PSNR "
                        f"reach {OVERFIT_TARGET_DB:g} dB (default {OVERFIT_STEPS} steps at "
                        "the method's lr, or its own single-clip steps and lr; checkpoint "
                        "under the cache folder unless --out)")
    q.add_argument("--no-resume", action="store_true",
                   help="ignore a resumable state left by an interrupted run")
    q.add_argument("--resume", default=None, metavar="STATE",
                   help="continue exactly from this state file (OUT stem + .state.pt); it "
                        "must come from the same method, profile and settings")
    q.add_argument("--plateau-db", type=float, default=PLATEAU_DB,
                   help=f"stop when validation W-PSNR gains less than this over the last "
                        f"{PLATEAU_WINDOW * 100:.0f}%% of the steps "
                        f"(from step {PLATEAU_MIN_STEPS}, with at least "
                        f"{PLATEAU_MIN_VALIDATIONS} validations in that window; "
                        f"default {PLATEAU_DB:g}; 0: run every step)")
    q.add_argument("--clean-steps", type=int, default=None, metavar="N",
                   help="attack curriculum: the first N steps unattacked (default: the "
                        "method's, else 0)")
    q.add_argument("--ramp-steps", type=int, default=None, metavar="N",
                   help="then the chance of an attacked step rises linearly to 1 over N "
                        "steps (default: the method's, else 0)")
    q.add_argument("--validate-every", type=int, default=None, metavar="N",
                   help="steps between validations and resumable states (default: a tenth "
                        "of --steps, at least 50)")
    q.add_argument("--train-attacks", default=None, metavar="A,B",
                   help="training attacks in place of the method's own: registered attacks "
                        "(their training form), h264-proxy (the learned H.264 stand-in) or "
                        "h264-codec (real libx264 forward, the stand-in's gradient)")
    q.add_argument("--reveal-weight", type=float, default=None, metavar="W",
                   help="weight of the logo-recovery term against the video term in the "
                        "method's training loss (default: the method's, e.g. 0.75 for "
                        "safe-sora and udh); lower favours the video's fidelity, higher the "
                        "logo's recovery; recorded in the card")
    q.add_argument("--stop-after", type=int, default=None, metavar="STEP",
                   help="stop at this step of the schedule of --steps")
    q.add_argument("--minutes", type=float, default=None,
                   help="training time budget of this sitting: per run (a run it stops "
                        "keeps its resumable state, so the same command continues), or for a "
                        "campaign (--method all, ablation or A,B) shared equally by its "
                        "methods; a campaign with --steps runs that schedule for each method, "
                        "the budget only capping its share")
    q.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="a campaign on the CPU: train N methods at once, each in a process "
                        "with its share of the threads (default 1: one at a time with all "
                        "of them)")
    q.add_argument("--out-dir", default=None,
                   help="a campaign's folder for checkpoints, cards and campaign.json "
                        "(default: training-campaign-PROFILE in the user data folder, see "
                        "--out)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_train)

    q = subparsers.add_parser("fit-proxy", help="fit the learned H.264 stand-in to libx264")
    q.add_argument("--profile", default="default", help="profile name or TOML path")
    q.add_argument("--clips", type=int, default=None, help="training clips (default 64)")
    q.add_argument("--heldout", type=int, default=None, help="held-out clips (default 8)")
    q.add_argument("--epochs", type=int, default=None, help="passes over the clips")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="checkpoint path "
                   "(default: attacks/checkpoints/h264-proxy-PROFILE.pt)")
    q.add_argument("--no-perturb", action="store_true",
                   help="fit on clean clips only (no perturbed copies)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_fit_proxy)
