"""``bench run``: stream clips through every (method, attack grid point) and score them.

For each clip and method the clip is embedded once (cover and watermarked video are both 8-bit
videos, as they would be stored), then every grid point of every chosen attack is applied and
the logo extracted and scored. Rows and watermarked videos are cached by content
(bench.core.store), so rerunning recomputes nothing and a killed run loses only the rows in flight;
``rows.csv`` is rewritten atomically after every clip.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from bench import metrics
from bench.core import registry
from bench.core.api import (
    METRIC_ERROR,
    METRIC_OK,
    Attack,
    BenchError,
    Clip,
    ClipError,
    Logo,
    Method,
    MetricInputs,
    MetricValue,
    Profile,
    TrainableMethod,
    check_device,
)
from bench.core.precision import (
    autocast,
    check_run_precision,
    method_precision,
    to_channels_last,
)
from bench.core.profiles import load_profile
from bench.core.results import (
    DERIVED_ROW_COLUMNS,
    SET_COLUMNS,
    STATUSES,
    RowsFile,
    bits_per_pixel,
    metric_status_text,
    row_columns,
    usable_folder,
    write_manifest,
    write_sample,
    write_table,
)
from bench.core.seeding import derive_seed
from bench.core.store import Cache, default_cache_dir, make_key, tensor_digest
from bench.core.timing import StageTimes
from bench.core.video import from_uint8 as _from_8bit
from bench.core.video import to_uint8 as _to_8bit
from bench.run.attack_spec import attack_groups, unique
from bench.sources.logos import evaluation_logo

#: bump when the way rows are computed changes (invalidates cached rows)
RUNNER_VERSION = "2"  # 2: embedded patch positions kept with the watermarked video
I3D_FEATURE_VERSION = "1"  # bump when the FVD preprocessing or network changes
SAMPLE_CLIPS = 1  # clips whose frames are kept as figure samples


@dataclass
class RunConfig:
    methods: str = "all"
    attacks: str = "all"
    profile: str = "default"
    source: str = "generated"
    limit: Optional[int] = None
    out: Path = Path("results/latest")
    seed: int = 0
    device: str = "cpu"
    cache_dir: Optional[Path] = field(default_factory=default_cache_dir)
    progress: bool = True
    fvd: bool = True
    #: ``{method name: checkpoint file}`` loaded instead of the method's shipped checkpoint
    checkpoints: dict = field(default_factory=dict)
    #: the methods' forward passes: ``fp32`` (the reference), ``bf16``, or ``auto``: each
    #: method's declared precision on its shipped checkpoint (bench.core.precision)
    precision: str = "auto"
    #: ``serial`` (this process) or ``ray`` (one Ray actor per method, bench.run.executors)
    executor: str = "serial"
    #: the Ray cluster: ``None`` (a local one), ``auto`` or ``HOST:PORT``
    address: Optional[str] = None


@dataclass
class RunSummary:
    out: Path
    rows: int
    statuses: dict
    clips: int
    computed_rows: int
    wall_s: float
    #: cache entries found unusable (wrong schema, missing keys, damaged) and recomputed
    rejected_cache_entries: int = 0
    #: cache writes that failed (the rows are still in rows.csv; a rerun recomputes them)
    cache_write_errors: int = 0
    #: rows read back from the cache (the others: computed, or rows of methods or clips that
    #: could not run)
    cached_rows: int = 0


def row_seed(seed: int, video_id: str, attack_canonical: str) -> int:
    """The attack seed of a row: the same for every method, so methods meet the same attack."""
    return derive_seed(seed, video_id, attack_canonical)


def build_source(spec: str, profile: Profile, seed: int, limit: Optional[int]):
    """``generated`` or ``folder:PATH`` -> a Source."""
    name, _, arg = spec.partition(":")
    cls = registry.get("sources", name)
    if name == "folder":
        if not arg:
            raise BenchError("the folder source needs a path: --source folder:PATH")
        return cls(profile, arg, seed=seed, limit=limit)
    return cls(profile, seed=seed, limit=limit)


def build_attacks(spec: str) -> list[Attack]:
    """Every setting an attack spec names (bench/run/attack_spec.py: ``all``, ``paper``, names,
    globs, ``name(args)``, ``chain(...)``), as attack instances, repeated settings once."""
    return unique(a for group in attack_groups(spec) for a in group)


def first_settings(spec: str) -> list[Attack]:
    """The setting of each attack entry that every video gets under ``curve_videos``: an
    attack's paper setting (the first point of its grid) for a name, glob, ``all`` or
    ``paper``; the one setting of ``name(args)`` or ``chain(...)``."""
    return unique(group[0] for group in attack_groups(spec) if group)


def is_paper_setting(attack: Attack) -> bool:
    """Whether ``attack`` is its attack's paper setting (the first point of its grid); a
    chain, which has no grid, is its own."""
    grid = type(attack).grid()
    return not grid or attack.params == grid[0]


@dataclass(frozen=True)
class MissingMethod:
    """A registered method that cannot run here (its weights are absent): its rows say why."""

    name: str
    version: str
    reason: str
    #: ``unavailable`` (weights absent) or ``error`` (the method could not be built)
    status: str = "unavailable"


def _build_error(name: str, profile: Profile, exc: Exception,
                 path: Optional[Path] = None) -> str:
    """Why ``name`` could not be built, naming its checkpoint file (``path``, else its
    shipped one) when it has one."""
    from bench.core.weights import method_checkpoint

    text = f"method {name!r} could not be built: {_describe(exc)}"
    if path is None:
        try:
            path = method_checkpoint(name, profile.name)
        except Exception:
            path = None
    if path is not None and str(path) not in text:
        text += f" (checkpoint {path})"
    return text


def _takes_checkpoint(factory) -> bool:
    """Whether a method factory loads a given checkpoint (has its own ``from_checkpoint``)."""
    loader = getattr(factory, "from_checkpoint", None)
    return loader is not None and getattr(loader, "__func__", loader) \
        is not Method.from_checkpoint.__func__


def chosen_checkpoints(checkpoints: dict, names: list[str]) -> dict[str, Path]:
    """``{name: path}`` of the checkpoints given in place of shipped ones, checked: each name
    is among the chosen methods and takes a checkpoint, each path is a file."""
    out = {}
    for name, path in checkpoints.items():
        if name not in names:
            raise BenchError(f"--checkpoint {name}=...: {name!r} is not among the methods "
                             f"of this run ({', '.join(names)})")
        if not _takes_checkpoint(registry.get("methods", name)):
            raise BenchError(f"--checkpoint {name}=...: method {name!r} takes no checkpoint")
        if not Path(path).is_file():
            raise BenchError(f"--checkpoint {name}={path}: no such file")
        out[name] = Path(path)
    return out


def build_methods(spec: str, profile: Profile, device: str,
                  checkpoints: Optional[dict] = None) -> list[Method | MissingMethod]:
    """Instances of the chosen methods. One whose checkpoint is absent becomes a MissingMethod
    (``unavailable``); one that cannot be built (a damaged or mismatched checkpoint, ...) a
    MissingMethod with status ``error`` whose message names the file: the others still run.
    ``checkpoints`` (``{name: path}``) loads those files instead of the shipped ones
    (``from_checkpoint``)."""
    from bench.core.checkpoints import CheckpointMissing

    names = registry.resolve("methods", spec)
    chosen = chosen_checkpoints(dict(checkpoints or {}), names)
    out: list[Method | MissingMethod] = []
    for name in names:
        factory = registry.get("methods", name)
        version = str(getattr(factory, "version", "?"))
        path = chosen.get(name)
        try:
            out.append(factory(profile, device) if path is None
                       else factory.from_checkpoint(path, profile, device))
        except CheckpointMissing as exc:
            out.append(MissingMethod(name, version, str(exc)))
        except Exception as exc:
            out.append(MissingMethod(name, version, _build_error(name, profile, exc, path),
                                     "error"))
    return out


def _runs_shipped_weights(method: Method, profile: Profile) -> bool:
    """Whether ``method`` runs the weights it ships for ``profile`` (a weight-free method
    always does); a checkpoint given with ``--checkpoint``, trained into the user data folder
    or none at all (random weights) is not the shipped one."""
    if isinstance(method, MissingMethod):
        return False
    if not isinstance(method, TrainableMethod):
        return True
    from bench.core.checkpoints import checkpoint_path

    ckpt = getattr(method, "checkpoint", None)
    return ckpt is not None and Path(ckpt).resolve() == \
        checkpoint_path(method, profile.name).resolve()


def _method_fingerprint(method: Method, precision: str = "fp32") -> dict:
    """What identifies a method's outputs: name, version, checkpoint file and hash, and the
    precision of its forward passes when it is not the fp32 reference (so fp32 keys stay
    those of runs made before the precision existed)."""
    ckpt = getattr(method, "checkpoint", None)
    from bench.core.weights import sha256_file

    out = {"name": method.name, "version": method.version,
           "checkpoint": str(ckpt) if ckpt else None,
           "sha256": sha256_file(Path(ckpt)) if ckpt else None}
    if precision != "fp32":
        out["precision"] = precision
    return out


def method_training_info(method: Method) -> dict:
    """What the report's training summary needs about a method: parameters, and from its
    checkpoint card the checkpoint size, steps, training time (totals over a ``--init`` chain
    when the card has them), device, validation scores and the validation curve over the
    chain (``curve``: ``{step, w_psnr, v_psnr}`` in total steps); for a warm start the method and
    total steps of the checkpoint it started from (``init_method``, ``init_steps``).

    Methods without weights give ``{"trainable": False}``."""
    if not isinstance(method, TrainableMethod):
        return {"trainable": False}
    info: dict = {"trainable": True,
                  "parameters": int(sum(p.numel() for p in method.network().parameters()))}
    ckpt = getattr(method, "checkpoint", None)
    if ckpt:
        from bench.core.checkpoints import card_curve, load_card

        card = load_card(Path(ckpt))
        validation = card.get("validation") or {}
        info.update(checkpoint_bytes=card.get("checkpoint_bytes", Path(ckpt).stat().st_size),
                    steps=card.get("total_steps", card.get("steps")),
                    training_seconds=card.get("total_training_seconds",
                                              card.get("training_seconds")),
                    training_device=card.get("device"), seed=card.get("seed"),
                    validation_w_psnr=validation.get("w_psnr"),
                    validation_v_psnr=validation.get("v_psnr"), command=card.get("command"),
                    curve=card_curve(card))
        init = card.get("init") or {}
        if init:
            info.update(init_method=init.get("method") or card.get("method"),
                        init_steps=init.get("total_steps", init.get("steps")))
    return info


def _validate(out: torch.Tensor, shape: tuple, what: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise BenchError(f"{what} returned {type(out).__name__}, expected a tensor")
    if tuple(out.shape) != tuple(shape):
        raise BenchError(f"{what} returned shape {tuple(out.shape)}, expected {tuple(shape)}")
    if not torch.isfinite(out).all():
        raise BenchError(f"{what} returned non-finite values (NaN or inf)")


#: row fields that identify a row: a cached row must carry exactly the expected ones
ROW_ID_KEYS = ("video_id", "logo_id", "method", "method_version", "attack", "attack_version",
               "attack_params", "seed")
#: what an embed's cache entry must hold (its video metrics, ``metrics`` and
#: ``metric_status``, are checked apart: missing ones are computed from the cached video)
EMBED_KEYS = ("embed_s", "positions")
#: bump when the row schema changes (invalidates cached rows, not watermarked videos)
ROW_SCHEMA = "2"  # 2: per-metric status in metric_status; unavailable metrics keep rows ok


def _row_valid(row: dict, base: dict) -> bool:
    """A cached row is usable: a known status, its identity that of ``base``, an int seed."""
    return (row["status"] in STATUSES and all(row[k] == base[k] for k in ROW_ID_KEYS)
            and type(row["seed"]) is int)


def _embed_info_valid(info: dict) -> bool:
    return (isinstance(info["embed_s"], (int, float))
            and (info["positions"] is None or isinstance(info["positions"], list)))


def as_8bit(clip: Clip) -> Clip:
    """The clip as an 8-bit video would hold it: covers and watermarked videos alike are 8-bit."""
    return dataclasses.replace(clip, frames=_from_8bit(_to_8bit(clip.frames)))


def score_metrics(chosen: list, inputs: MetricInputs) -> tuple[dict, dict]:
    """Every metric of ``chosen`` on ``inputs``: ``(values, status)``, ``values`` column ->
    float (NaN when not computed), ``status`` column -> ``{"status", "reason"}`` for each
    metric not computed. A BenchError (bad input) propagates: the row is an error row; any
    other exception of a metric is that metric's ``error`` status."""
    values, status = {}, {}
    for metric in chosen:
        try:
            result = metric.score(inputs)
        except BenchError:
            raise
        except Exception as exc:  # a broken (plugin) metric must not stop the run
            result = MetricValue(math.nan, _describe(exc), METRIC_ERROR)
        values[metric.column] = float(result.value)
        if result.status != METRIC_OK:
            status[metric.column] = {"status": result.status, "reason": result.reason}
    return values, status


class Runner:
    """Holds the run's state; ``run()`` streams the source and writes the results folder."""

    def __init__(self, config: RunConfig, methods: Optional[list[Method]] = None):
        """``methods`` overrides ``config.methods`` with ready instances (programmatic use)."""
        self.config = config
        self.device = check_device(config.device)
        self.profile = load_profile(config.profile)
        # the attack spec first: a mistyped attack fails before any checkpoint is loaded
        groups = attack_groups(config.attacks)
        self.attacks = unique(a for group in groups for a in group)
        firsts = {group[0].canonical for group in groups if group}
        self.paper_attacks = [a for a in self.attacks if a.canonical in firsts]
        self.precision = check_run_precision(config.precision)
        self.methods = (methods if methods is not None
                        else build_methods(config.methods, self.profile, self.device,
                                           config.checkpoints))
        #: the precision each method runs in (``auto`` resolved per method)
        self.precisions = {
            m.name: method_precision(self.precision, getattr(m, "inference_precision", "fp32"),
                                     _runs_shipped_weights(m, self.profile))
            for m in self.methods}
        for method in self.methods:
            if self.precisions[method.name] == "bf16" and isinstance(method, TrainableMethod):
                to_channels_last(method.network())
        self.source = build_source(config.source, self.profile, config.seed, config.limit)
        self.cache = Cache(config.cache_dir)
        self.cache.check_usable()
        usable_folder(config.out, "results folder")
        registered = metrics.registered()
        self.video_metrics = [m for m in registered if m.level == "row"
                              and m.spec.compares == "video"]
        self.logo_metrics = [m for m in registered if m.level == "row"
                             and m.spec.compares == "logo"]
        self.metric_versions = {m.column: m.version for m in registered}
        self.row_columns = row_columns([m.column for m in registered if m.level == "row"])
        self.fingerprints = {m.name: _method_fingerprint(m, self.precisions[m.name])
                             for m in self.methods if not isinstance(m, MissingMethod)}
        self.computed = 0
        self.times = StageTimes()
        self.fvd = FvdFeatures(self.device, self.cache, self.times) if config.fvd else None
        #: per method: (cover features, watermarked features) of every video embedded
        self.fvd_pairs: dict[str, list[tuple[list, list]]] = {}

    # -- per clip -----------------------------------------------------------------------------
    def _logo_for(self, index: int) -> Logo:
        """The ``index``-th video's logo (rendered when first needed: a short run renders
        only the logos it uses)."""
        return evaluation_logo(index, self.profile.logo_size)

    def _base_row(self, clip_id: str, logo: Logo, method: Method, attack: Attack) -> dict:
        return {"video_id": clip_id, "logo_id": logo.id, "method": method.name,
                "method_version": method.version, "attack": attack.name,
                "attack_version": attack.version, "attack_params": attack.canonical,
                "strength": attack.strength(),
                "seed": row_seed(self.config.seed, clip_id, attack.canonical)}

    def attacks_for(self, index: int) -> list[Attack]:
        """The attack settings of the ``index``-th video: every strength for the first
        ``profile.curve_videos`` videos (all when 0), the first setting of each attack entry
        for the others (``first_settings``: an attack's paper setting, the one setting of
        ``name(args)`` or of a chain)."""
        limit = self.profile.curve_videos
        if limit <= 0 or index < limit:
            return self.attacks
        return self.paper_attacks

    def _error_rows(self, index: int, clip_id: str, logo: Logo, method: Method | MissingMethod,
                    message: str, status: str = "error") -> list[dict]:
        return [{**self._base_row(clip_id, logo, method, a), "status": status, "error": message}
                for a in self.attacks_for(index)]

    def _embed(self, clip: Clip, logo: Logo, method: Method, key: str) -> dict:
        """The 8-bit watermarked video and its video-level metrics (cached). A cached video
        whose metrics were computed for another set of metrics is scored again, not embedded
        again."""
        stored = self._cached_video(key, tuple(clip.frames.shape))
        info = self.cache.get_json("watermarked", key, EMBED_KEYS, _embed_info_valid)
        if stored is not None and info is not None:
            video = _from_8bit(stored["video"])
            if not self._scored(info):
                info = self._score_video(video, clip, info["embed_s"], info["positions"])
                self.cache.put_json("watermarked", key, info)
            return {"video": video, **info}
        frames = clip.frames.to(self.device)[None]
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.precisions[method.name], self.device):
            out = method.embed(frames, logo.image.to(self.device)[None], [clip])
        out = out.float() if isinstance(out, torch.Tensor) else out
        embed_s = time.perf_counter() - start
        self.times.add(f"embed/{method.name}", embed_s)
        _validate(out, frames.shape, f"{method.name}.embed")
        hidden_at = method.embedded_positions()
        video = _from_8bit(_to_8bit(out[0].cpu()))
        info = self._score_video(video, clip, embed_s,
                                 None if hidden_at is None else hidden_at[0].cpu().tolist())
        self.cache.put_tensors("watermarked", key, {"video": _to_8bit(video)})
        self.cache.put_json("watermarked", key, info)
        return {"video": video, **info}

    def _scored(self, info: dict) -> bool:
        """The cached embed info holds this run's video metrics (and their status)."""
        return (isinstance(info.get("metrics"), dict) and isinstance(info.get("metric_status"),
                                                                     dict)
                and set(info["metrics"]) >= {m.column for m in self.video_metrics})

    def _score_video(self, video: torch.Tensor, clip: Clip, embed_s: float,
                     positions: Optional[list]) -> dict:
        with self.times.stage("metrics/video"):
            values, status = score_metrics(self.video_metrics,
                                           metrics.video_inputs(video, clip.frames,
                                                                self.device))
        return {"embed_s": embed_s, "positions": positions, "metrics": values,
                "metric_status": status}

    def _cached_video(self, key: str, shape: tuple) -> Optional[dict]:
        """The cached 8-bit watermarked video of ``key`` if it is one of ``shape``."""
        return self.cache.get_tensors(
            "watermarked", key, ("video",),
            lambda t: t["video"].dtype == torch.uint8 and tuple(t["video"].shape) == shape)

    def _attack_row(self, clip: Clip, logo: Logo, method: Method, attack: Attack,
                    embedded: dict, sample: bool) -> dict:
        row = self._base_row(clip.id, logo, method, attack)
        gen = torch.Generator().manual_seed(row["seed"])
        with self.times.stage(f"attack/{attack.name}"):
            attacked = attack(embedded["video"], gen)
        _validate(attacked, embedded["video"].shape, f"attack {attack.canonical}")
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.precisions[method.name], self.device):
            recovered = method.extract(attacked.to(self.device)[None])
        recovered = recovered.float() if isinstance(recovered, torch.Tensor) else recovered
        extract_s = time.perf_counter() - start
        self.times.add(f"extract/{method.name}", extract_s)
        _validate(recovered, (1, *logo.image.shape), f"{method.name}.extract")
        recovered = recovered[0].cpu().clamp(0, 1)
        metrics.check_logos(recovered, logo.image)
        placed = method.positions()
        inputs = MetricInputs(
            cover=clip.frames, watermarked=embedded["video"], logo=logo.image,
            recovered=recovered, device=self.device,
            placed_positions=None if placed is None else placed[0].cpu(),
            embedded_positions=(None if embedded.get("positions") is None
                                else torch.tensor(embedded["positions"])))
        with self.times.stage("metrics/logo"):
            values, status = score_metrics(self.logo_metrics, inputs)
        row.update({**embedded["metrics"], **values})
        status = {**embedded["metric_status"], **status}
        size = attack.info().get("bytes")
        row.update(embed_s=embedded["embed_s"], extract_s=extract_s, attack_bytes=size,
                   attack_bpp=bits_per_pixel(size, attacked.shape))
        failed = {k: v["reason"] for k, v in status.items() if v["status"] == METRIC_ERROR}
        row["status"] = "error" if failed else "ok"
        row["error"] = "; ".join(f"metric {k} failed: {v}" for k, v in sorted(failed.items()))
        row["metric_status"] = metric_status_text(status)
        if sample:
            mid = clip.frames.shape[0] // 2
            with self.times.stage("io"):
                write_sample(self.config.out, method.name, attack.canonical,
                             cover=clip.frames[mid].numpy(),
                             watermarked=embedded["video"][mid].numpy(),
                             attacked=attacked[mid].numpy(), logo=logo.image.numpy(),
                             recovered=recovered.numpy())
        return row

    def _process(self, index: int, clip: Clip, method: Method) -> list[dict]:
        logo = self._logo_for(index)
        fp = self.fingerprints[method.name]
        wm_key = make_key("wm", RUNNER_VERSION, tensor_digest(clip.frames),
                          tensor_digest(logo.image), fp, self.profile.name)
        sample = index < SAMPLE_CLIPS
        attacks = self.attacks_for(index)
        row_keys = [make_key("row", wm_key, a.name, a.version, a.canonical,
                             row_seed(self.config.seed, clip.id, a.canonical),
                             ROW_SCHEMA, self.metric_versions, clip.id, logo.id)
                    for a in attacks]
        bases = [self._base_row(clip.id, logo, method, a) for a in attacks]
        stored = tuple(c for c in self.row_columns if c not in DERIVED_ROW_COLUMNS)
        with self.times.stage("cache"):
            cached = [self.cache.get_json("rows", k, stored, lambda r, b=b: _row_valid(r, b))
                      for k, b in zip(row_keys, bases, strict=True)]
        for row in cached:  # rows cached before attack_bpp existed
            if row is not None and "attack_bpp" not in row:
                row["attack_bpp"] = bits_per_pixel(row.get("attack_bytes"), clip.frames.shape)
        if (all(r is not None for r in cached) and not (sample and self._samples_missing(method))
                and self._collect_cached_fvd(clip, method, wm_key)):
            self.times.count("rows_cached", len(cached))
            return cached
        # some row, a sample or the FVD features of the pair are missing: embed (or take the
        # watermarked video from the cache) and compute what is missing
        try:
            embedded = self._embed(clip, logo, method, wm_key)
        except Exception as exc:  # a broken method must not stop the run
            return self._error_rows(index, clip.id, logo, method, _describe(exc))
        self._collect_fvd(clip, method, wm_key, embedded["video"])
        out = []
        for attack, key, row in zip(attacks, row_keys, cached, strict=True):
            if row is None or sample:
                try:
                    row = self._attack_row(clip, logo, method, attack, embedded, sample)
                    self.cache.put_json("rows", key, row)
                    self.computed += 1
                    self.times.count("rows_computed")
                except Exception as exc:
                    row = {**self._base_row(clip.id, logo, method, attack), "status": "error",
                           "error": _describe(exc)}
            else:
                self.times.count("rows_cached")
            out.append(row)
        return out

    def _collect_cached_fvd(self, clip: Clip, method: Method, wm_key: str) -> bool:
        """Collect the pair's FVD features from the cache (features, else the cached video);
        False when neither is there, so the video must be embedded again."""
        if self._collect_fvd(clip, method, wm_key, None):
            return True
        stored = self._cached_video(wm_key, tuple(clip.frames.shape))
        return stored is not None and self._collect_fvd(clip, method, wm_key,
                                                        _from_8bit(stored["video"]))

    def _collect_fvd(self, clip: Clip, method: Method, wm_key: str,
                     video: Optional[torch.Tensor]) -> bool:
        """Keep the I3D features of this (cover, watermarked) pair for the method's FVD.

        ``video=None`` only looks in the cache; returns whether the pair was collected.
        """
        if self.fvd is None or not self.fvd.available:
            return True
        cover = self.fvd.features(clip.frames)
        marked = self.fvd.features(video, key=wm_key) if video is not None else \
            self.fvd.cached(wm_key)
        if cover is None or marked is None:
            return False
        self.fvd_pairs.setdefault(method.name, []).append((cover, marked))
        return True

    def _samples_missing(self, method: Method) -> bool:
        from bench.core.results import sample_path

        return any(not sample_path(self.config.out, method.name, a.canonical).exists()
                   for a in self.attacks)

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> RunSummary:
        start = time.perf_counter()
        out = self.config.out
        out.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest(started=datetime.now(timezone.utc).isoformat())
        _write_out(write_manifest, out / "manifest.json", manifest)
        total = len(self.source) * len(self.methods)
        # the bar counts computed (clip, method) units; a unit found whole in the cache leaves
        # the total instead, so the rate and the ETA are those of computing
        bar = tqdm(total=total, desc="bench run", unit="video", disable=not self.config.progress,
                   file=sys.stderr)
        clips = cached_units = 0
        ok_videos: dict[str, int] = {m.name: 0 for m in self.methods}
        statuses = {s: 0 for s in STATUSES}
        rows_file = _write_out(RowsFile, out / "rows.csv", self.row_columns)
        for index, clip in self._timed_source():
            clips += 1
            clip_rows: list[dict] = []
            for method, rows, computed in self._clip_units(index, clip):
                if not isinstance(method, MissingMethod) and any(
                        r["status"] != "error" for r in rows):
                    ok_videos[method.name] += 1
                for row in rows:
                    statuses[row["status"]] = statuses.get(row["status"], 0) + 1
                clip_rows.extend(rows)
                if computed == 0 and not isinstance(method, MissingMethod):
                    cached_units += 1
                    bar.total -= 1
                    bar.refresh()
                else:
                    bar.update(1)
                bar.set_postfix(clip=getattr(clip, "id", "?"), method=method.name,
                                cached=cached_units)
            with self.times.stage("io"):
                _write_out(rows_file.append, clip_rows)
        bar.close()
        with self.times.stage("fvd"):
            set_rows = self._set_rows(ok_videos)
        _write_out(write_table, out / "sets.csv", set_rows, SET_COLUMNS)
        wall = time.perf_counter() - start
        rejected = sum(self.cache.rejected.values())
        self.times.count("units_cached", cached_units)
        manifest.update(finished=datetime.now(timezone.utc).isoformat(), wall_s=wall,
                        clips=clips, rows=rows_file.count, statuses=statuses,
                        computed_rows=self.computed, timings=self.times.as_dict(),
                        peak_rss_mb=peak_rss_mb(),
                        cache={"rejected": dict(self.cache.rejected),
                               "write_errors": self.cache.write_errors})
        _write_out(write_manifest, out / "manifest.json", manifest)
        return RunSummary(out, rows_file.count, statuses, clips, self.computed, wall,
                          rejected, self.cache.write_errors,
                          self.times.counts.get("rows_cached", 0))

    def _unit(self, index: int, clip, method) -> list[dict]:
        """The rows of one (clip, method) unit: computed, from the cache, or error rows."""
        if isinstance(method, MissingMethod):
            return self._error_rows(index, getattr(clip, "id", "?"), self._logo_for(index),
                                    method, method.reason, status=method.status)
        if isinstance(clip, ClipError):
            return self._error_rows(index, clip.id, self._logo_for(index), method, clip.error)
        return self._process(index, as_8bit(clip), method)

    def _clip_units(self, index: int, clip) -> list[tuple]:
        """``(method, rows, rows computed)`` for every method on this clip, in order (the
        serial executor; ``bench.run.executors`` spreads them over workers)."""
        out = []
        for method in self.methods:
            before = self.computed
            rows = self._unit(index, clip, method)
            out.append((method, rows, self.computed - before))
        return out

    def _timed_source(self):
        """``(index, clip)`` of the source, the time spent producing each clip under the
        ``source`` stage."""
        clips = iter(self.source)
        index = 0
        while True:
            with self.times.stage("source"):
                clip = next(clips, None)
            if clip is None:
                return
            yield index, clip
            index += 1

    def _set_rows(self, ok_videos: dict[str, int]) -> list[dict]:
        """FVD per method: the set of watermarked videos vs the set of their covers.

        Recorded under the ``identity`` attack (no attack: the watermarked set itself), with a
        95% bootstrap interval over videos (pairs resampled together).
        """
        from bench.metrics.fvd import bootstrap_fvd, fvd_from_features

        rows = []
        for method in self.methods:
            row = {"method": method.name, "method_version": method.version,
                   "attack": "identity", "attack_params": "identity", "metric": "fvd",
                   "value": math.nan, "ci_lo": math.nan, "ci_hi": math.nan,
                   "n": 0, "status": "unavailable"}
            pairs = self.fvd_pairs.get(method.name, [])
            if isinstance(method, MissingMethod):
                row.update(reason=method.reason, status=method.status)
            elif self.fvd is None:
                row["reason"] = "not computed: the run was made with --no-fvd"
            elif not self.fvd.available:
                row["reason"] = self.fvd.reason
            else:
                covers = [c for c, _ in pairs]
                marked = [m for _, m in pairs]
                value = fvd_from_features(marked, covers)
                row.update(value=value.value, n=len(pairs), reason=value.reason)
                if value.available:
                    lo, hi = bootstrap_fvd(marked, covers, seed=self.config.seed)
                    row.update(ci_lo=lo, ci_hi=hi, status="ok")
            rows.append(row)
        return rows

    def _manifest(self, started: str) -> dict:
        config = asdict(self.config)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.items()}
        config["checkpoints"] = {k: str(v) for k, v in self.config.checkpoints.items()}
        from bench.core.weights import list_weights

        return {
            "config": config, "profile": asdict(self.profile), "started": started,
            "git": git_hash(), "device": device_description(self.device),
            "packages": package_versions(), "runner_version": RUNNER_VERSION,
            "methods": self.fingerprints,
            "training": {m.name: method_training_info(m) for m in self.methods
                         if not isinstance(m, MissingMethod)},
            "methods_unavailable": {m.name: m.reason for m in self.methods
                                    if isinstance(m, MissingMethod) and m.status != "error"},
            "methods_failed": {m.name: m.reason for m in self.methods
                               if isinstance(m, MissingMethod) and m.status == "error"},
            "attacks": {a.canonical: a.version for a in self.attacks},
            "metrics": self.metric_versions,
            "weights": {w.name: w.sha256 for w in list_weights() if w.present},
            "source": {"spec": self.config.source, "name": self.source.name,
                       "version": self.source.version},
        }


class FvdFeatures:
    """I3D (Kinetics-400) logits of videos, cached by content; unavailable with a reason."""

    def __init__(self, device: str, cache: Cache, times: Optional[StageTimes] = None):
        self.cache = cache
        self.device = device
        self.times = times or StageTimes()
        self.reason = ""
        self._extractor = None
        try:
            from bench.metrics.i3d import I3DFeatures, load_i3d

            self._extractor = I3DFeatures(device=device, model=load_i3d(device))
        except BenchError as exc:
            self.reason = str(exc)

    @property
    def available(self) -> bool:
        return self._extractor is not None

    def cached(self, key: str) -> Optional[list]:
        entry = self.cache.get_json("i3d", make_key("i3d", I3D_FEATURE_VERSION, key),
                                    ("features",), _features_valid)
        return entry["features"] if entry else None

    def features(self, video: torch.Tensor, key: Optional[str] = None) -> list:
        """(T, 3, H, W) in [0, 1] -> 400 floats; ``key`` defaults to the video's digest."""
        key = key or tensor_digest(video)
        found = self.cached(key)
        if found is None:
            with self.times.stage("i3d"):
                found = [float(v) for v in self._extractor(video)]
            self.cache.put_json("i3d", make_key("i3d", I3D_FEATURE_VERSION, key),
                                {"features": found})
        return found


def _features_valid(entry: dict) -> bool:
    """An I3D entry holds the network's 400 logits as finite numbers."""
    from bench.metrics.i3d import NUM_CLASSES

    values = entry["features"]
    return (isinstance(values, list) and len(values) == NUM_CLASSES
            and all(type(v) in (int, float) and math.isfinite(v) for v in values))


def _write_out(write, *args):
    """``write(*args)`` for a file of the results folder (a path, or a ``RowsFile``'s
    append); OSError -> BenchError."""
    try:
        return write(*args)
    except OSError as exc:
        where = getattr(getattr(write, "__self__", None), "path", args[0] if args else "?")
        raise BenchError(f"cannot write {where}: {exc.strerror or exc}; finished rows are in "
                         "the cache: rerun the same command to resume") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, BenchError) else f"{type(exc).__name__}: {text}"


def git_hash(root: Optional[Path] = None) -> str:
    """The commit of ``root`` (default: this checkout), ``-dirty`` when tracked files differ
    from it; ``unknown`` without git or outside a repository.

    Read-only: optional locks are off, so git never takes ``.git/index.lock`` nor rewrites the
    index (a plain ``git status`` does, and then breaks a concurrent commit)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return "unknown"
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = status.returncode != 0 or bool(status.stdout.strip())
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("safesora-bench", "torch", "torchvision", "numpy", "av", "lpips",
                 "scikit-image", "pandas", "pytorch-wavelets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB (``ru_maxrss``: KiB on Linux)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def device_description(device: str) -> str:
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def run(config: RunConfig) -> RunSummary:
    """Run ``config`` in this process (``bench.run.executors.execute`` picks the executor)."""
    if config.executor != "serial":
        raise BenchError(f"Runner runs the serial executor; executor {config.executor!r} goes "
                         "through bench.run.executors.execute")
    return Runner(config).run()


__all__ = ["RunConfig", "RunSummary", "Runner", "run", "row_seed"]
