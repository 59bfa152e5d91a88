"""Command line: ``python -m bench {run,report,gate,compare,list,weights,train,fit-proxy}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.core.api import BenchError


def _cmd_list(args) -> int:
    from tabulate import tabulate

    from bench.core import registry

    if args.kind == "profiles":
        from bench.core.profiles import available, load_profile

        rows = [(n, load_profile(n).description) for n in available()]
        print(tabulate(rows, headers=["profile", "description"]))
        return 0
    if args.kind == "attacks":
        return _list_attacks(args.pattern)
    rows = []
    for name in registry.names(args.kind, args.pattern):
        version, desc = registry.describe(args.kind, name)
        checkpoint = [_checkpoint_cell(name, args.profile)] if args.kind == "methods" else []
        rows.append((name, version, *checkpoint, desc))
    checkpoint_header = [f"checkpoint ({args.profile})"] if args.kind == "methods" else []
    print(tabulate(rows, headers=[args.kind[:-1], "version", *checkpoint_header,
                                  "description"]))
    return 0


def _list_attacks(pattern: str) -> int:
    """Registered attacks with their family and number of grid points, then the composed
    ones (``chain``) under the syntax that gives them."""
    import fnmatch

    from tabulate import tabulate

    from bench.core import registry

    rows = []
    for name in registry.names("attacks", pattern):
        version, desc = registry.describe("attacks", name)
        cls = registry.get("attacks", name)
        rows.append((name, version, getattr(cls, "family", "other"), len(cls.grid()), desc))
    for name, (_, _, syntax) in registry.COMPOSED_ATTACKS.items():
        if fnmatch.fnmatchcase(name, pattern):
            version, desc = registry.describe("attacks", name)
            family = getattr(registry.get("attacks", name), "family", "other")
            rows.append((syntax, version, family, "-", desc))
    print(tabulate(rows, headers=["attack", "version", "family", "grid", "description"]))
    print("\n--attacks takes all, paper (the paper's six), names and globs (every grid point), "
          "name(args) (one setting, e.g. h264(crf=28)) and chain(...), comma-separated.")
    return 0


def _checkpoint_cell(name: str, profile: str) -> str:
    """The checkpoint a trainable method loads on ``profile`` (``display_path``: relative to
    the repository inside it; marked when missing), or ``- (no weights)``."""
    from bench.core.weights import display_path, method_checkpoint

    path = method_checkpoint(name, profile)
    if path is None:
        return "- (no weights)"
    shown = display_path(path)
    return shown if path.is_file() else f"{shown} (missing: bench train)"


def _checkpoint_args(values: list[str] | None) -> dict[str, str]:
    """``--checkpoint NAME=PATH`` options -> ``{NAME: PATH}``."""
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise BenchError(f"--checkpoint takes NAME=PATH, got {value!r}")
        if name.strip() in out:
            raise BenchError(f"--checkpoint names {name.strip()!r} twice")
        out[name.strip()] = path.strip()
    return out


def _cmd_run(args) -> int:
    from bench.run.executors import execute
    from bench.run.runner import RunConfig

    if args.limit is not None and args.limit <= 0:
        raise BenchError("--limit must be a positive number of prompts")
    if args.address is not None and args.executor != "ray":
        raise BenchError("--address is for --executor ray")
    config = RunConfig(methods=args.methods, attacks=args.attacks, profile=args.profile,
                       source=args.source, limit=args.limit, out=Path(args.out), seed=args.seed,
                       device=args.device, cache_dir=None if args.no_cache else
                       (Path(args.cache) if args.cache else RunConfig().cache_dir),
                       progress=not args.quiet, fvd=not args.no_fvd,
                       checkpoints=_checkpoint_args(args.checkpoint), precision=args.precision,
                       executor=args.executor, address=args.address)
    if args.dry_run:
        from bench.run.plan import format_plan, plan

        print(format_plan(plan(config)))
        return 0
    summary = execute(config)
    cache = f"{summary.computed_rows} computed, {summary.cached_rows} from the cache"
    if summary.rejected_cache_entries:
        cache += (f"; {summary.rejected_cache_entries} unusable cache entr"
                  f"{'y' if summary.rejected_cache_entries == 1 else 'ies'} recomputed")
    if summary.cache_write_errors:
        cache += f"; {summary.cache_write_errors} cache write(s) failed"
    print(f"{summary.rows} rows over {summary.clips} clips in {summary.wall_s:.1f} s "
          f"({cache}); status: {summary.statuses}; results in {summary.out}")
    return 0


def _cmd_report(args) -> int:
    from bench.report.build import build_report

    paths = build_report(Path(args.results), Path(args.out), allow_partial=args.allow_partial)
    print(f"report written to {args.out} ({len(paths)} files)")
    return 0


def _cmd_gate(args) -> int:
    from bench.gate import run_gate

    return run_gate(Path(args.results), Path(args.thresholds), allow_partial=args.allow_partial)


def _cmd_compare(args) -> int:
    from bench.compare import compare_folders, format_compare
    from bench.core.results import atomic_write_bytes, usable_file

    if args.json:
        usable_file(args.json, "--json file")
    result = compare_folders(Path(args.reference), Path(args.candidate), device=args.device)
    print(format_compare(result))
    if args.json:
        try:
            atomic_write_bytes(Path(args.json), json.dumps(result, indent=2).encode())
        except OSError as exc:
            raise BenchError(f"cannot write {args.json}: {exc.strerror or exc}") from exc
    if not result["n"]:
        raise BenchError("no video was compared (see the skipped files above)")
    return 0


def _cmd_weights(args) -> int:
    from bench.core.checkpoints import default_data_dir
    from bench.core.weights import format_weights_table, list_weights

    print(format_weights_table(list_weights(trained_dir=default_data_dir() / "checkpoints")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("list", help="registered methods, attacks, metrics, sources, profiles")
    q.add_argument("kind", choices=["methods", "attacks", "metrics", "sources", "profiles"])
    q.add_argument("pattern", nargs="?", default="*", help="glob on names, e.g. 'safe-sora*'")
    q.add_argument("--profile", default="default",
                   help="profile whose checkpoints `list methods` shows")
    q.set_defaults(func=_cmd_list)

    q = sub.add_parser("run", help="embed, attack, extract and score")
    q.add_argument("--methods", default="all", help="all, or comma-separated names/globs")
    q.add_argument("--attacks", default="all",
                   help="all, paper, or comma-separated names/globs (every grid point), "
                        "name(args) (one setting: h264(crf=28)) and chain(A(...),B(...))")
    q.add_argument("--profile", default="default", help="profile name or TOML path")
    q.add_argument("--source", default="generated", help="generated, or folder:PATH")
    q.add_argument("--limit", type=int, default=None, help="first N prompts only")
    q.add_argument("--out", default="results/latest", help="results folder")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    q.add_argument("--cache", default=None, help="cache folder (default: "
                   "$SAFESORA_BENCH_CACHE or ~/.cache/safesora-bench)")
    q.add_argument("--no-cache", action="store_true", help="compute everything afresh")
    q.add_argument("--checkpoint", action="append", metavar="NAME=PATH",
                   help="load this checkpoint for method NAME instead of its shipped one "
                        "(e.g. one `bench train` wrote); repeatable")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="the methods' forward passes: fp32 (the reference), bf16 autocast "
                        "with channels_last, or auto (default): bf16 for the methods whose "
                        "shipped checkpoints were measured within 0.05 dB of fp32, fp32 for "
                        "the others (part of each row's cache key)")
    q.add_argument("--executor", default="serial", choices=["serial", "ray"],
                   help="serial (this process) or ray (one Ray actor per method; "
                        "pip install -e '.[ray]')")
    q.add_argument("--address", default=None,
                   help="with --executor ray: auto or HOST:PORT of a running Ray cluster "
                        "(default: start a local one)")
    q.add_argument("--dry-run", action="store_true",
                   help="print the matrix's size and a time estimate from one clip; run nothing")
    q.add_argument("--no-fvd", action="store_true",
                   help="skip FVD (I3D features take ~2 s per video on a CPU)")
    q.set_defaults(func=_cmd_run)

    q = sub.add_parser("report", help="tables and figures from a results folder")
    q.add_argument("--results", default="results/latest")
    q.add_argument("--out", default="reports/latest")
    q.add_argument("--allow-partial", action="store_true",
                   help="report an unfinished or inconsistent results folder (marked partial)")
    q.set_defaults(func=_cmd_report)

    q = sub.add_parser("gate", help="fail on a regression against a reference run")
    q.add_argument("--results", required=True)
    q.add_argument("--thresholds", required=True, help="TOML file of floors and tolerances")
    q.add_argument("--allow-partial", action="store_true",
                   help="gate an unfinished or inconsistent run, over the videos both hold")
    q.set_defaults(func=_cmd_gate)

    q = sub.add_parser("compare", help="video metrics between two folders of mp4 files")
    q.add_argument("--reference", required=True)
    q.add_argument("--candidate", required=True)
    q.add_argument("--json", default=None, help="also write the result as one JSON object")
    q.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    q.set_defaults(func=_cmd_compare)

    q = sub.add_parser("weights", help="every weight file the benchmark uses, and its state")
    q.set_defaults(func=_cmd_weights)

    from bench.train.cli import add_train_parser

    add_train_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command was given cannot be used
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished rows are in the cache; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
