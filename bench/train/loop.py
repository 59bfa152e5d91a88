"""``bench train``: the shared training loop of every trainable method.

The loop owns data, optimiser, schedule, seeding, validation, checkpoints and resumption; the
method owns its network, its losses and its noise layers (``TrainableMethod`` in bench/core/api.py).

* **Data.** Cover clips come from the offline generator's 200 *training* prompts
  (``GeneratedSource(profile, split="train")``), logos from ``training_logo`` (ids disjoint
  from the evaluation logos): nothing of the evaluation set is ever seen. Four training prompts
  (``VALIDATION_PROMPT_IDS``) and four logos are held aside for validation and never trained
  on. Each batch item draws a prompt, a render seed, a logo and (with ``frames``) a window of
  T consecutive frames from a generator seeded by ``(seed, step)``, so the data vary from
  step to step and a step's batch does not depend on the steps before it. Covers are
  quantised to 8 bits, as stored videos are.
* **Noise layers.** One of the method's ``train_attacks`` is drawn uniformly per step; each
  name is an attack of the registry (its ``train_form()``), ``h264-proxy`` (the learned
  H.264 stand-in of attacks/h264_proxy.py, fitted for the profile) or ``h264-codec`` (the
  real codec forward, that stand-in's gradient backward). ``train_attacks`` (``bench train
  --train-attacks``) replaces the method's set for one run.
* **Optimiser.** AdamW with the method's ``train_defaults`` (``lr`` and ``batch_size``
  overridable); the learning rate rises linearly from ``lr / W`` to ``lr`` over the first
  ``W = max(1, round(0.02 * steps))`` steps, then follows a cosine from ``lr`` down to
  ``lr * 1e-2`` at the last step (``lr_factor``). Gradients are clipped to norm 1.0.
* **Validation** every ``max(50, steps // 10)`` steps and at the end: eval-mode ``embed``,
  8-bit quantisation (as the runner stores videos), ``extract``; W-PSNR and V-PSNR (dB)
  averaged over the held-aside clips, no attack. The held-aside clips are rendered with
  ``VALIDATION_RENDER_SEED`` whatever the run's seed, so the runs of a ``--init`` chain are
  scored on the same clips.
* **Checkpoints.** At every validation the resumable state (model, optimiser, scheduler,
  step, RNG states, history) is written atomically to ``{out stem}.state.pt``; a new run with
  the same settings resumes from it. ``init`` (``--init CKPT``) starts from the weights of an
  earlier checkpoint of the same method instead of a fresh initialisation (a new optimiser
  and schedule): training budgets that do not fit one sitting accumulate, and the card
  records the chain (``init``: that checkpoint's sha256, steps and command; ``total_steps``,
  ``total_training_seconds``). At the end the weights go to ``out`` with a card
  (bench/core/checkpoints.py; ``training_seconds`` is the loop's wall time, validations included,
  summed over resumed runs) and the state file is removed, unless a time budget stopped the
  run before its last step: then it stays, and the same command continues from it. On the
  CPU a seed gives the same weights bit for bit, whether or not the run was interrupted and resumed.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from bench.core.api import BenchError, Clip, Profile, TrainableMethod, check_device
from bench.core.checkpoints import card_curve, save_checkpoint, shift_curve, user_checkpoint_path
from bench.core.precision import to_channels_last
from bench.core.seeding import derive_seed
from bench.core.video import from_uint8, quantise, to_uint8
from bench.core.weights import display_path
from bench.metrics import psnr_from_mse

__all__ = ["GRAD_CLIP_NORM", "VALIDATION_PROMPT_IDS", "TrainingData",
           "derive_seed", "lr_factor", "plateau_stop", "state_path", "train", "validate",
           "validation_interval"]

#: training prompts held aside for validation (never trained on)
VALIDATION_PROMPT_IDS = ("t196", "t197", "t198", "t199")
#: training-logo indices held aside for validation; training draws logos from [0, TRAIN_LOGOS)
VALIDATION_LOGO_INDICES = (99996, 99997, 99998, 99999)
#: render seed of the held-aside clips, the same for every run, so the validation figures of
#: runs with different seeds (a ``--init`` chain) score the same clips
VALIDATION_RENDER_SEED = 0
TRAIN_LOGOS = 1000
#: renders of each training prompt the default data draw from (kept on disk as uint8)
RENDERS_PER_PROMPT = 2
PRECISIONS = ("bf16", "fp32")
#: W-PSNR and V-PSNR (dB) that ``--overfit`` must reach on its one clip
OVERFIT_TARGET_DB = 35.0
OVERFIT_STEPS = 400
#: a run stops when its best validation W-PSNR of the last ``PLATEAU_WINDOW`` of its steps
#: beats the best before by less than this many dB (``--plateau-db``; 0 turns it off) ...
PLATEAU_DB = 0.2
PLATEAU_WINDOW = 0.2
#: ... checked from this many steps on (short runs always run to the end) ...
PLATEAU_MIN_STEPS = 1000
#: ... and only once the window holds this many validations: one noisy validation after a
#: single earlier one stopped a 12,000-step run at step 1,200 (validation every 600 steps)
PLATEAU_MIN_VALIDATIONS = 3
PRECISION_TEXT = {"bf16": "bf16 autocast forward, channels_last; fp32 weights, optimiser "
                          "and loss",
                  "fp32": "fp32, contiguous (NCHW) tensors"}
WARMUP_FRACTION = 0.02
FINAL_LR_FACTOR = 1e-2
GRAD_CLIP_NORM = 1.0
STATE_FORMAT = 1


# ------------------------------------------------------------------------------ helpers


def lr_factor(step: int, total: int) -> float:
    """Multiplier of the base learning rate for optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up ``(step + 1) / W`` over ``W = max(1, round(0.02 total))`` steps, then a
    cosine from 1 at step ``W`` to ``FINAL_LR_FACTOR`` at step ``total - 1``.
    """
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    return FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX. Elsewhere bf16 is emulated: on an AVX2-only CPU one UDH step at the
    ``default`` profile took 39 s under bf16 autocast against 6.2 s in fp32."""
    if device == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = torch.cpu
    return any(bool(getattr(cpu, check, lambda: False)())
               for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def default_precision(defaults: dict, device: str) -> tuple[str, Optional[str]]:
    """The precision a run uses when none is given, and why it differs from the method's
    ``train_defaults`` (None when it does not): bf16 only where the device computes it
    natively. The card then names ``--precision`` explicitly, so its command reproduces it."""
    wanted = str(defaults.get("precision", "fp32"))
    if wanted == "bf16" and not native_bf16(device):
        return "fp32", (f"training in fp32: this {device.upper()} has no native bf16 "
                        f"(capability {torch.backends.cpu.get_cpu_capability()}), where bf16 "
                        "autocast is several times slower" if device == "cpu" else
                        f"training in fp32: this {device.upper()} has no native bf16")
    return wanted, None


def validation_interval(steps: int) -> int:
    """Steps between validations (and resumable states): ``max(50, steps // 10)``."""
    return max(50, steps // 10)


def state_path(out: Path | str) -> Path:
    """The resumable state beside a checkpoint: ``x-default.pt`` -> ``x-default.state.pt``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.state.pt")


def _contiguous(module: torch.nn.Module) -> None:
    """Every parameter and buffer back in the default contiguous layout, in place."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if not tensor.data.is_contiguous():
            tensor.data = tensor.data.contiguous()


def _generator_version() -> str:
    from bench.sources.generator import GeneratedSource

    return str(GeneratedSource.version)


def _scalar(value) -> float:
    """A loss entry as a float (NaN when absent)."""
    if value is None:
        return math.nan
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _resolve_method(method) -> Callable:
    """A registry name, or a factory/class (programmatic use and tests)."""
    if isinstance(method, str):
        from bench.core import registry

        return registry.get("methods", method)
    if callable(method):
        return method
    raise BenchError(f"method must be a registered name or a class, got {type(method).__name__}")


def _build_method(factory: Callable, profile: Profile, device: str) -> TrainableMethod:
    name = getattr(factory, "name", getattr(factory, "__name__", str(factory)))
    if isinstance(factory, type) and not issubclass(factory, TrainableMethod):
        raise BenchError(f"method {name!r} has no weights to train (not a TrainableMethod)")
    try:
        method = factory(profile, device, checkpoint=None)
    except TypeError as exc:
        raise BenchError(f"method {name!r} cannot be built for training "
                         f"(factory(profile, device, checkpoint=None)): {exc}") from exc
    if not isinstance(method, TrainableMethod):
        raise BenchError(f"method {name!r} has no weights to train (not a TrainableMethod)")
    return method


def _training_attacks(names, profile: Profile) -> list[tuple[str, Callable]]:
    """``[(name, differentiable callable)]`` for the method's ``train_attacks``."""
    from bench.core import registry

    if not names:
        raise BenchError("a trainable method must name at least one training attack "
                         "(\"identity\" for clean steps)")
    out = []
    for name in names:
        if name in ("h264-proxy", "h264-codec"):
            from attacks.h264_proxy import codec_h264_train_form, proxy_h264_train_form

            form = proxy_h264_train_form if name == "h264-proxy" else codec_h264_train_form
            out.append((name, form(profile)))
            continue
        try:
            form = registry.get("attacks", name)().train_form()
        except NotImplementedError as exc:
            raise BenchError(f"training attack {name!r}: {exc}") from exc
        out.append((name, form))
    return out


def _clean(video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The clean step's channel: the watermarked video as sent."""
    return video


#: what a clean step of the curriculum passes through (no attack)
CLEAN = ("clean", _clean)


def overfit_defaults(defaults: dict) -> tuple[int, float]:
    """The single-clip check's ``(steps, lr)``: the method's ``train_defaults["overfit_steps"]``
    and ``["overfit_lr"]`` where it sets them, else ``OVERFIT_STEPS`` and its ``lr``."""
    return (int(defaults.get("overfit_steps", OVERFIT_STEPS)),
            float(defaults.get("overfit_lr", defaults["lr"])))


def curriculum_defaults(defaults: dict) -> tuple[int, int]:
    """The method's ``(clean_steps, ramp_steps)`` from its ``train_defaults`` (0, 0: none)."""
    return int(defaults.get("clean_steps", 0)), int(defaults.get("ramp_steps", 0))


def attack_probability(step: int, clean_steps: int, ramp_steps: int) -> float:
    """Chance that step ``step`` (0-based) is attacked: 0 for the first ``clean_steps`` steps,
    then rising linearly to 1 over the next ``ramp_steps`` (at once when ``ramp_steps`` is 0)."""
    if step < clean_steps:
        return 0.0
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, (step - clean_steps + 1) / ramp_steps)


def pick_attack(attacks: list[tuple[str, Callable]], seed: int, step: int,
                clean_steps: int = 0, ramp_steps: int = 0) -> tuple[str, Callable]:
    """The training attack of ``step``: one of ``attacks`` drawn uniformly (a pure function of
    ``(seed, step)``), or ``CLEAN`` with chance ``1 - attack_probability``. Without a
    curriculum this is the same draw as before it existed."""
    choice = torch.Generator().manual_seed(derive_seed(seed, "attack-choice", step))
    drawn = attacks[int(torch.randint(len(attacks), (1,), generator=choice))]
    chance = attack_probability(step, clean_steps, ramp_steps)
    if chance < 1.0 and float(torch.rand((), generator=choice)) >= chance:
        return CLEAN
    return drawn


# --------------------------------------------------------------------------------- data


class TrainingData:
    """Batches of training covers and logos, a pure function of ``(seed, step)``.

    ``frames``: clip length T used for training (a random window of the profile's clips);
    ``None`` keeps the profile's length. ``renders``: each training prompt is drawn from this
    many fixed renders (seeds ``derive_seed(seed, "render", r)``), each rendered once and kept
    on disk as uint8 under the cache folder (``training-clips/``), so a step costs no
    rendering once the bank is warm; ``None`` renders a fresh seed for every item.
    ``overfit``: every batch repeats one training clip and logo, which are also the
    validation item (the single-clip check of ``bench train --overfit``). Validation items are
    otherwise fixed and never drawn for training.
    """

    def __init__(self, profile: Profile, seed: int = 0, frames: Optional[int] = None,
                 renders: Optional[int] = RENDERS_PER_PROMPT, overfit: bool = False):
        from bench.sources.generator import GeneratedSource

        if frames is not None and not 1 <= frames <= profile.frames:
            raise BenchError(f"--frames must lie in [1, {profile.frames}] for profile "
                             f"{profile.name!r}, got {frames}")
        self.profile = profile
        self.seed = int(seed)
        self.frames = profile.frames if frames is None else int(frames)
        prompts = GeneratedSource(profile, seed=self.seed, split="train").prompts
        ids = [prompt_id for prompt_id, _ in prompts]
        missing = [v for v in VALIDATION_PROMPT_IDS if v not in ids]
        if missing:
            raise BenchError(f"validation prompts {missing} are not among the training prompts")
        self.validation_indices = [ids.index(v) for v in VALIDATION_PROMPT_IDS]
        self.train_indices = [i for i in range(len(ids)) if i not in self.validation_indices]
        if renders is not None and renders < 1:
            raise BenchError(f"renders per prompt must be >= 1 (or None), got {renders}")
        self.renders = None if renders is None else int(renders)
        self.overfit = bool(overfit)
        #: the overfit item is a training item, rendered as training renders it
        self.validation_render_seed = self.seed if self.overfit else VALIDATION_RENDER_SEED
        self._ids = ids
        self._validation: Optional[list[tuple[Clip, torch.Tensor]]] = None

    def _clip(self, index: int, render_seed: int) -> Clip:
        """The training prompt ``index`` rendered with ``render_seed``."""
        from bench.sources.generator import GeneratedSource

        return GeneratedSource(self.profile, seed=render_seed, split="train")[index]

    def _logo(self, index: int) -> torch.Tensor:
        """Training logo ``index``: (3, h, w) in [0, 1]."""
        from bench.sources.logos import training_logo

        return training_logo(index, self.profile.logo_size).image

    def _render_seed(self, gen: torch.Generator) -> int:
        if self.renders is None:
            return int(torch.randint(2**62, (1,), generator=gen))
        r = int(torch.randint(self.renders, (1,), generator=gen))
        return derive_seed(self.seed, "render", r)

    def _cover(self, index: int, render_seed: int) -> torch.Tensor:
        """Frames uint8 (T, 3, H, W) of training prompt ``index`` rendered with
        ``render_seed``: from the on-disk bank when ``renders`` is set, else rendered."""
        if self.renders is None:
            return to_uint8(self._clip(index, render_seed).frames)
        p = self.profile
        path = self._bank_folder() / f"{self._ids[index]}-{render_seed}.pt"
        if path.is_file():
            try:
                frames = torch.load(path, map_location="cpu", weights_only=True)
                if (isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8
                        and tuple(frames.shape) == (p.frames, 3, p.height, p.width)):
                    return frames
            except Exception:  # noqa: BLE001 - a damaged entry is rendered again
                pass
        import io

        from bench.core.results import atomic_write_bytes

        frames = to_uint8(self._clip(index, render_seed).frames)
        buffer = io.BytesIO()
        torch.save(frames.clone(), buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return frames

    def _draws(self, step: int, batch_size: int) -> list[tuple[int, int, int, int]]:
        """``(prompt index, render seed, logo index, first frame)`` of each item of a step."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "data", step))
        draws = []
        for _ in range(batch_size):
            index = self.train_indices[int(torch.randint(len(self.train_indices), (1,),
                                                          generator=gen))]
            render_seed = self._render_seed(gen)
            logo_index = int(torch.randint(TRAIN_LOGOS, (1,), generator=gen))
            start = int(torch.randint(self.profile.frames - self.frames + 1, (1,),
                                      generator=gen))
            draws.append((index, render_seed, logo_index, start))
        return draws

    def missing_renders(self, start: int, stop: int, batch_size: int) -> list[tuple[int, int]]:
        """``(prompt index, render seed)`` of the clip-bank entries that steps
        ``start .. stop - 1`` draw and that are not on disk yet, each once, in draw order."""
        if self.renders is None or self.overfit:
            return []
        folder, seen, out = self._bank_folder(), set(), []
        for step in range(start, stop):
            for index, seed, _, _ in self._draws(step, batch_size):
                if (index, seed) not in seen:
                    seen.add((index, seed))
                    if not (folder / f"{self._ids[index]}-{seed}.pt").is_file():
                        out.append((index, seed))
        return out

    def warm(self, entries: list[tuple[int, int]], processes: int) -> None:
        """Render clip-bank ``entries`` (from ``missing_renders``) in ``processes`` processes,
        so a step then reads its covers from disk and a time budget measures training alone
        (a render costs about 1.1 s at the ``default`` profile, more than most steps)."""
        if processes <= 1 or len(entries) <= 1:
            for index, seed in entries:
                self._cover(index, seed)
            return
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(processes, initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            list(pool.map(_render_into_bank, [(self, i, s) for i, s in entries], chunksize=4))

    def _bank_folder(self) -> Path:
        from bench.core.store import default_cache_dir

        p = self.profile
        return (default_cache_dir() / "training-clips" /
                f"{p.name}-{p.frames}x{p.height}x{p.width}-v{_generator_version()}")

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """``(frames (B, T, 3, H, W), logos (B, 3, h, w), ids)`` of a step, on the CPU."""
        if self.overfit:
            clip, logo = self.validation()[0]
            window = clip.frames[:self.frames]
            return (window[None].expand(batch_size, *window.shape).clone(),
                    logo[None].expand(batch_size, *logo.shape).clone(), [clip.id] * batch_size)
        videos, logos, ids = [], [], []
        for index, render_seed, logo_index, start in self._draws(step, batch_size):
            frames = self._cover(index, render_seed)
            videos.append(from_uint8(frames[start:start + self.frames]))
            logos.append(self._logo(logo_index))
            ids.append(f"{self._ids[index]}@{render_seed}")
        return torch.stack(videos), torch.stack(logos), ids

    def validation(self) -> list[tuple[Clip, torch.Tensor]]:
        """The held-aside ``(clip with 8-bit frames, logo (3, h, w))`` pairs, full length;
        with ``overfit`` the one training item, cut to the window it trains on."""
        if self._validation is None:
            items = []
            pairs = zip(self.validation_indices, VALIDATION_LOGO_INDICES, strict=True)
            if self.overfit:  # one training clip and logo: trained on and validated on
                pairs = [(self.train_indices[0], 0)]
            for index, logo_index in pairs:
                clip = self._clip(index, self.validation_render_seed)
                frames = clip.frames[:self.frames] if self.overfit else clip.frames
                clip = Clip(id=clip.id, prompt=clip.prompt, frames=quantise(frames),
                            fps=clip.fps)
                items.append((clip, self._logo(logo_index)))
            self._validation = items
        return self._validation


def _render_into_bank(job: tuple[TrainingData, int, int]) -> None:
    data, index, render_seed = job
    data._cover(index, render_seed)


class _StepBatches(torch.utils.data.Dataset):
    """Map-style view of ``TrainingData``: item ``step`` is that step's ``(frames, logos)``."""

    def __init__(self, data: TrainingData, steps: int, batch_size: int):
        self.data, self.steps, self.batch_size = data, steps, batch_size

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        videos, logos, _ = self.data.batch(step, self.batch_size)
        return videos, logos


def _batches(data: TrainingData, start: int, steps: int, batch_size: int, workers: int):
    """The batches of steps ``start .. steps - 1`` in order, rendered ahead by ``workers``
    processes (0: in this process). A batch depends on its step alone, so the result is the
    same for any number of workers."""
    if workers <= 0:
        return (_StepBatches(data, steps, batch_size)[step] for step in range(start, steps))
    return iter(torch.utils.data.DataLoader(
        _StepBatches(data, steps, batch_size), batch_size=None,
        sampler=list(range(start, steps)), num_workers=workers, prefetch_factor=2,
        generator=torch.Generator().manual_seed(0)))  # leaves the global RNG alone


def validate(method: TrainableMethod, items: list[tuple[Clip, torch.Tensor]],
             device: str = "cpu") -> dict[str, float]:
    """Mean W-PSNR and V-PSNR (dB) over ``items`` with eval-mode embed / 8-bit / extract."""
    from bench.metrics import PSNR_CAP_DB, psnr, video_psnr

    network = method.network()
    was_training = network.training
    network.eval()
    w_values, v_values = [], []
    try:
        with torch.no_grad():
            for clip, logo in items:
                marked = method.embed(clip.frames[None].to(device), logo[None].to(device),
                                      [clip])
                marked = quantise(marked[0].detach().float().cpu())
                recovered = method.extract(marked[None].to(device))[0].float().cpu()
                w_values.append(min(psnr(recovered.clamp(0, 1), logo), PSNR_CAP_DB))
                v_values.append(video_psnr(marked, clip.frames))
    finally:
        network.train(was_training)
    return {"w_psnr": float(np.mean(w_values)), "v_psnr": float(np.mean(v_values))}


# ------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class _Settings:
    """What must match for a saved state to be resumed."""

    method: str
    method_version: str
    profile: str
    steps: int
    seed: int
    batch_size: int
    lr: float
    weight_decay: float
    betas: tuple
    frames: int
    init_sha256: str = ""
    precision: str = "fp32"
    renders: Optional[int] = None
    overfit: bool = False
    clean_steps: int = 0
    ramp_steps: int = 0
    validation_render_seed: int = VALIDATION_RENDER_SEED
    train_attacks: tuple = ()
    #: the recovery term's weight when ``--reveal-weight`` changed it; None: the method's own
    reveal_weight: Optional[float] = None


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       int(np_state[2]), int(np_state[3]), float(np_state[4]))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_state(path: Path, settings: _Settings, step: int, network, optimizer, scheduler,
                history: list, train_seconds: float) -> None:
    import io

    from bench.core.results import atomic_write_bytes

    state = {"format": STATE_FORMAT, "settings": asdict(settings), "step": step,
             "model": network.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": _rng_state(), "history": history,
             "train_seconds": train_seconds}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_state(path: Path, settings: _Settings, method_attacks: tuple) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"resumable state {path} cannot be read ({exc}); delete it or pass "
                         "--no-resume") from exc
    saved = state.get("settings", {})
    wanted = asdict(settings)
    saved["betas"] = tuple(saved.get("betas", ()))
    saved.setdefault("init_sha256", "")  # states written before warm starts existed
    saved.setdefault("precision", "fp32")  # ... before the bf16 path existed
    saved.setdefault("renders", None)  # ... before the clip bank existed
    saved.setdefault("overfit", False)
    saved.setdefault("clean_steps", 0)  # ... before the attack curriculum existed
    saved.setdefault("ramp_steps", 0)
    # ... before the validation clips had a fixed render seed: they were rendered with the run's
    saved.setdefault("validation_render_seed", saved.get("seed"))
    # ... before the training attacks were recorded: the method's own set was the only one
    saved["train_attacks"] = tuple(saved.get("train_attacks", method_attacks))
    saved.setdefault("reveal_weight", None)  # ... before --reveal-weight existed
    wanted["betas"] = tuple(wanted["betas"])
    diff = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if state.get("format") != STATE_FORMAT or diff:
        detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise BenchError(f"resumable state {path} was made with other settings ({detail}); "
                         "rerun with the same settings, or pass --no-resume to start afresh")
    return state


# ---------------------------------------------------------------------------- the loop


def _command(settings: _Settings, defaults: dict, profile_arg: str, device: str,
             out: Path, default_out: Path, frames: Optional[int],
             init: Optional[Path] = None, plateau: Optional[float] = PLATEAU_DB,
             stop_after: Optional[int] = None, validate_every: Optional[int] = None,
             method_attacks: tuple = ()) -> str:
    parts = ["python -m bench train", f"--method {settings.method}", f"--profile {profile_arg}",
             f"--steps {settings.steps}", f"--seed {settings.seed}"]
    if settings.batch_size != defaults["batch_size"]:
        parts.append(f"--batch-size {settings.batch_size}")
    if settings.lr != float(defaults["lr"]):
        parts.append(f"--lr {settings.lr!r}")
    if frames is not None and frames != defaults.get("frames"):
        parts.append(f"--frames {frames}")
    if device != "cpu":
        parts.append(f"--device {device}")
    if out.resolve() != default_out.resolve():
        parts.append(f"--out {out}")
    if init is not None:
        parts.append(f"--init {display_path(init)}")
    if settings.precision != defaults.get("precision", "fp32"):
        parts.append(f"--precision {settings.precision}")
    if settings.renders != RENDERS_PER_PROMPT:
        parts.append(f"--renders {settings.renders or 0}")
    if not settings.overfit and ((settings.clean_steps, settings.ramp_steps)
                                 != curriculum_defaults(defaults)):
        parts.append(f"--clean-steps {settings.clean_steps} --ramp-steps {settings.ramp_steps}")
    if settings.train_attacks != tuple(method_attacks):
        parts.append(f"--train-attacks {','.join(settings.train_attacks)}")
    if settings.reveal_weight is not None:
        parts.append(f"--reveal-weight {settings.reveal_weight!r}")
    if settings.overfit:
        parts.append("--overfit")
    elif (plateau or 0.0) != PLATEAU_DB:
        parts.append(f"--plateau-db {plateau or 0:g}")
    if validate_every is not None:  # the plateau rule reads the validations: part of the run
        parts.append(f"--validate-every {validate_every}")
    if stop_after is not None:
        parts.append(f"--stop-after {stop_after}")
    return " ".join(parts)


def set_reveal_weight(method: TrainableMethod, weight: Optional[float]) -> Optional[float]:
    """Give ``method`` the recovery-term weight ``weight`` (None: keep its own); returns the
    weight when it differs from the method's own, else None (what the settings record).

    Raises BenchError for a method whose loss has no such weight, or a weight that is not a
    positive finite number."""
    if weight is None:
        return None
    own = type(method).reveal_weight
    if own is None:
        raise BenchError(f"--reveal-weight: {method.name}'s training loss has no single "
                         "weight on its recovery term to change")
    weight = float(weight)
    if not (math.isfinite(weight) and weight > 0):
        raise BenchError(f"--reveal-weight must be a positive number, got {weight!r}")
    method.reveal_weight = weight
    return None if weight == float(own) else weight


def _curriculum_text(clean_steps: int, ramp_steps: int) -> str:
    if not clean_steps and not ramp_steps:
        return "attacked from the first step"
    return (f"clean for {clean_steps} steps, then the attacks ramped in linearly over "
            f"{ramp_steps} steps")


def pace_note(seconds: float, steps_done: int, steps_left: int) -> str:
    """This sitting's pace, validations included, and the time the rest takes at that pace:
    ``pace_note(770, 200, 2200)`` -> ``'3.85 s a step, about 2 h 21 min to go'``."""
    per_step = seconds / max(steps_done, 1)
    pace = f"{per_step:.2f} s a step"
    if not steps_left:
        return pace
    hours, minutes = divmod(round(per_step * steps_left / 60), 60)
    to_go = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{pace}, about {to_go} to go"


def plateau_stop(history: list[dict], min_gain_db: float,
                 window: float = PLATEAU_WINDOW, min_steps: int = PLATEAU_MIN_STEPS,
                 min_validations: int = PLATEAU_MIN_VALIDATIONS) -> bool:
    """Whether a run has flattened: at the last validation step ``s >= min_steps``, the best
    W-PSNR of the validations after ``(1 - window) * s`` beats the best one up to it by less
    than ``min_gain_db``. False while no validation lies at or before ``(1 - window) * s``, or
    fewer than ``min_validations`` lie after it.
    """
    if not history:
        return False
    s = int(history[-1]["step"])
    if s < min_steps:
        return False
    cut = (1.0 - window) * s
    before = [h["w_psnr"] for h in history if h["step"] <= cut]
    after = [h["w_psnr"] for h in history if h["step"] > cut]
    if not before or len(after) < max(1, min_validations):
        return False
    return max(after) - max(before) < min_gain_db


def _warm_start(method: TrainableMethod, init: Path) -> dict:
    """Load ``init``'s weights (the method's own or a ``warm_start_from`` relative's) into the
    method's network; returns the card's ``init`` entry (file, method, sha256, steps and totals
    so far, command, validation, the tensors left unused)."""
    from bench.core.checkpoints import fit_state, load_checkpoint, train_command
    from bench.core.weights import sha256_file

    state, card = load_checkpoint(init)
    if not card:
        warnings.warn(f"--init {init} has no card beside it: the new card records its sha256 "
                      "but not the chain's steps, training time and validation curve before it; "
                      "keep the card (<checkpoint stem>.card.json) next to the file to carry "
                      "them", stacklevel=3)
    source = card.get("method")
    allowed = (method.name, *method.warm_start_from)
    if source not in (None, *allowed):
        raise BenchError(f"--init {init} holds weights of {source!r}; {method.name!r} starts "
                         f"only from checkpoints of {', '.join(map(repr, allowed))}")
    unused = fit_state(method, state, card, init,
                       train_command(method.name, str(card.get("profile", "PROFILE"))),
                       unused_ok=source not in (None, method.name))
    method.checkpoint = init
    steps = card.get("steps")
    return {"checkpoint": display_path(init), "method": source or method.name,
            "sha256": sha256_file(init), "steps": steps,
            "total_steps": card.get("total_steps", steps),
            "total_training_seconds": card.get("total_training_seconds",
                                               card.get("training_seconds")),
            "command": card.get("command"),
            "validation": card.get("validation"), "unused_tensors": unused,
            "curve": card_curve(card)}


def train(method_name, profile: str | Profile = "default", steps: Optional[int] = None,
          seed: int = 0, device: str = "cpu", out: Optional[Path | str] = None,
          resume: bool = True, batch_size: Optional[int] = None, lr: Optional[float] = None,
          progress: bool = True, frames: Optional[int] = None,
          validate_every: Optional[int] = None, workers: int = 1,
          init: Optional[Path | str] = None, precision: Optional[str] = None,
          renders: Optional[int] = RENDERS_PER_PROMPT, overfit: bool = False,
          plateau_db: Optional[float] = PLATEAU_DB, max_seconds: Optional[float] = None,
          stop_after: Optional[int] = None, resume_from: Optional[Path | str] = None,
          clean_steps: Optional[int] = None, ramp_steps: Optional[int] = None,
          train_attacks: Optional[Sequence[str]] = None,
          reveal_weight: Optional[float] = None) -> Path:
    """Train a method from scratch (or resume) and write its checkpoint; returns its path.

    ``method_name``: a registered name, or a ``TrainableMethod`` class (built as
    ``cls(profile, device, checkpoint=None)``). ``steps``, ``batch_size``, ``lr`` default to
    the method's ``train_defaults``; ``frames`` trains on random windows of T frames;
    ``train_defaults["frames"]``, when a method sets it, is its default T; ``out`` defaults to
    ``user_checkpoint_path(name, profile)`` (the user data folder, never the method's shipped
    checkpoint: ``bench run`` loads ``out`` only when ``--checkpoint`` names it);
    ``validate_every`` (steps between validations and resumable states) defaults to
    ``validation_interval(steps)``;
    ``workers``: processes rendering the next batches while the network trains (0: none);
    ``init``: a checkpoint of the same method to start from (warm start);
    ``precision``: ``"bf16"`` runs the forward pass under bf16 autocast with the network in
    channels_last (weights, optimiser state and loss stay fp32), ``"fp32"`` the reference
    path; default ``train_defaults["precision"]``. ``renders``: fixed renders per training
    prompt kept on disk (``TrainingData``; None: a fresh render per item); ``overfit``: train
    and validate on one clip (steps and lr by default ``overfit_defaults``, every step clean;
    the checkpoint goes under the cache folder unless ``out`` is given). ``clean_steps``,
    ``ramp_steps``: the attack curriculum (``attack_probability``; default
    ``train_defaults["clean_steps"]`` and ``["ramp_steps"]``, else 0: attacked from step 0).
    ``train_attacks``: training-attack names in place of the method's ``train_attacks``.
    ``reveal_weight``: the recovery term's weight in place of the method's ``reveal_weight``
    (``set_reveal_weight``).

    Early stops (the schedule stays the one of ``steps``; the card records ``stopped``):
    ``plateau_db`` (``plateau_stop``; None or 0: off, and always off for ``overfit``);
    ``max_seconds``, this call's budget of training seconds, checked after every step (the
    card's command then names the step with ``--stop-after`` so it reproduces, and the
    resumable state stays beside ``out``: the same call again continues the schedule of
    ``steps`` with a new budget); ``stop_after``,
    stop at that step. ``resume_from``: the state file to continue from (default: the one
    next to ``out``); it must exist and match the settings.
    """
    from bench.core.profiles import load_profile

    device = check_device(device)
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    profile_arg = prof.name if isinstance(profile, Profile) else str(profile)
    factory = _resolve_method(method_name)

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    method = _build_method(factory, prof, device)
    init_entry = _warm_start(method, Path(init)) if init is not None else None
    prior_curve = init_entry.pop("curve") if init_entry else []
    prior_steps = int((init_entry or {}).get("total_steps") or 0)
    defaults = method.resolved_train_defaults()
    default_steps, default_lr = (overfit_defaults(defaults) if overfit
                                 else (defaults["steps"], defaults["lr"]))
    steps = int(default_steps if steps is None else steps)
    precision_note = None
    if precision is None:
        precision, precision_note = default_precision(defaults, device)
    precision = str(precision)
    if precision not in PRECISIONS:
        raise BenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    batch_size = int(defaults["batch_size"] if batch_size is None else batch_size)
    lr = float(default_lr if lr is None else lr)
    if steps <= 0 or batch_size <= 0 or not lr > 0:
        raise BenchError(f"steps, batch size and lr must be positive, got {steps}, "
                         f"{batch_size}, {lr}")
    data = TrainingData(prof, seed, frames if frames is not None else defaults.get("frames"),
                        renders=renders, overfit=overfit)
    clean_default, ramp_default = curriculum_defaults(defaults)
    clean_steps = int(clean_default if clean_steps is None else clean_steps)
    ramp_steps = int(ramp_default if ramp_steps is None else ramp_steps)
    if clean_steps < 0 or ramp_steps < 0:
        raise BenchError(f"--clean-steps and --ramp-steps must be >= 0, got {clean_steps}, "
                         f"{ramp_steps}")
    if overfit:  # the single-clip check measures capacity: every step clean
        clean_steps, ramp_steps = steps, 0
    attack_names = tuple(method.train_attacks if train_attacks is None else train_attacks)
    reveal_weight = set_reveal_weight(method, reveal_weight)
    settings = _Settings(method.name, str(method.version), prof.name, steps, int(seed),
                         batch_size, lr, float(defaults["weight_decay"]),
                         tuple(float(b) for b in defaults["betas"]), data.frames,
                         init_entry["sha256"] if init_entry else "", precision,
                         data.renders, data.overfit, clean_steps, ramp_steps,
                         data.validation_render_seed, attack_names, reveal_weight)
    default_out = user_checkpoint_path(method.name, prof.name)
    if overfit:
        from bench.core.store import default_cache_dir

        default_out = default_cache_dir() / "overfit" / default_out.name
    out = Path(out) if out is not None else default_out
    state_file = state_path(out)
    every = int(validate_every) if validate_every is not None else validation_interval(steps)
    if every <= 0:
        raise BenchError(f"--validate-every must be positive, got {every}")
    attacks = _training_attacks(attack_names, prof)

    network = method.network()
    if precision == "bf16":
        to_channels_last(network)
    params = [p for p in network.parameters() if p.requires_grad]
    if not params:
        raise BenchError(f"method {method.name!r} has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay,
                                  betas=settings.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps))

    if resume_from is not None:
        state_file = Path(resume_from)
        if not state_file.is_file():
            raise BenchError(f"--resume {state_file}: no such state file")
    if stop_after is not None and not 0 < int(stop_after) <= steps:
        raise BenchError(f"--stop-after must be in 1..{steps}, got {stop_after}")
    plateau = None if overfit or not plateau_db else float(plateau_db)
    start_step, history, train_seconds = 0, [], 0.0
    if state_file.is_file() and (resume or resume_from is not None):
        state = _load_state(state_file, settings, tuple(method.train_attacks))
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start_step, history = int(state["step"]), list(state["history"])
        train_seconds = float(state["train_seconds"])

    log = _Logger(progress, steps, start_step, method.name)
    if precision_note:
        log.write(precision_note)
    if start_step:
        log.write(f"resuming from step {start_step} ({state_file})")
    missing = data.missing_renders(start_step, int(stop_after or steps), batch_size)
    if missing:  # rendered ahead, in parallel, outside the time budget
        warm_began = time.perf_counter()
        data.warm(missing, max(1, min(os.cpu_count() or 1, 4)))
        log.write(f"rendered {len(missing)} training clips into the clip bank in "
                  f"{time.perf_counter() - warm_began:.0f} s")
    network.train()
    step = start_step
    batches = _batches(data, start_step, steps, batch_size, 0 if overfit else workers)
    began = sitting_began = time.perf_counter()
    step_seconds, timed_steps = 0.0, 0
    stopped = {"reason": "steps", "step": steps}
    keep_state = False  # a time-budget stop keeps its state: the same command continues
    last = int(stop_after) if stop_after is not None else steps
    while step < last:
        videos, logos = next(batches)
        step_began = time.perf_counter()
        attack_name, attack = pick_attack(attacks, seed, step, settings.clean_steps,
                                          settings.ramp_steps)
        attack_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "attack",
                                                                            step))
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = method.training_losses(videos.to(device), logos.to(device), attack,
                                            attack_gen)
        loss = losses["loss"].float()
        if not torch.isfinite(loss).all():
            raise BenchError(f"{method.name}: the loss became {float(loss)} at step {step} "
                             f"(attack {attack_name}); try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
        optimizer.step()
        scheduler.step()
        step += 1
        step_seconds += time.perf_counter() - step_began
        timed_steps += 1
        log.step(_scalar(loss), _scalar(losses.get("logo_mse")),
                 _scalar(losses.get("video_mse")))
        over_budget = (max_seconds is not None
                       and time.perf_counter() - sitting_began >= max_seconds)
        if step % every == 0 or step == last or over_budget:
            scores = validate(method, data.validation(), device)
            history.append({"step": step, **scores, "loss": _scalar(loss),
                            "lr": float(scheduler.get_last_lr()[0])})
            log.write(f"step {step}/{steps}: validation W-PSNR {scores['w_psnr']:.2f} dB, "
                      f"V-PSNR {scores['v_psnr']:.2f} dB; "
                      + pace_note(time.perf_counter() - sitting_began, step - start_step,
                                  last - step))
            flat = plateau is not None and plateau_stop(
                history, plateau, min_steps=PLATEAU_MIN_STEPS,
                min_validations=PLATEAU_MIN_VALIDATIONS)
            if step < steps and flat:
                stopped = {"reason": f"plateau: validation W-PSNR gained less than "
                                     f"{plateau:g} dB over the last "
                                     f"{PLATEAU_WINDOW:.0%} of the steps", "step": step}
                last = step
            elif step < last and over_budget:
                stopped = {"reason": f"time budget of {max_seconds:g} s", "step": step}
                last = step
                keep_state = True
            elif step < steps and step == last:
                stopped = {"reason": "--stop-after", "step": step}
            if step < last or keep_state:
                train_seconds += time.perf_counter() - began
                began = time.perf_counter()
                _save_state(state_file, settings, step, network, optimizer, scheduler,
                            history, train_seconds)
        train_seconds += time.perf_counter() - began
        began = time.perf_counter()
    log.close()
    _contiguous(network)

    n_params = sum(p.numel() for p in network.parameters())
    final = history[-1] if history else {}
    card = {
        "method": method.name, "method_version": str(method.version), "profile": prof.name,
        "steps": step, "planned_steps": steps, "stopped": stopped, "seed": int(seed),
        "batch_size": batch_size, "lr": lr,
        "weight_decay": settings.weight_decay, "betas": list(settings.betas),
        "frames": data.frames, "train_attacks": [name for name, _ in attacks],
        "reveal_weight": method.reveal_weight,
        "precision": PRECISION_TEXT[precision],
        "curriculum": _curriculum_text(clean_steps, ramp_steps),
        "samples_per_second": (round(timed_steps * batch_size / step_seconds, 3)
                               if step_seconds > 0 else None),
        "data": (f"{data.renders} fixed renders per training prompt, kept as uint8"
                 if data.renders else "a fresh render per item"),
        "overfit": ({"clip": data.validation()[0][0].id, "target_db": OVERFIT_TARGET_DB}
                    if overfit else None),
        "schedule": (f"AdamW; linear warm-up over {max(1, round(WARMUP_FRACTION * steps))} "
                     f"steps, cosine to lr*{FINAL_LR_FACTOR:g}; grad clip {GRAD_CLIP_NORM}"),
        "training_seconds": round(train_seconds, 3), "device": _device_text(device),
        "validation": {"w_psnr": final.get("w_psnr"), "v_psnr": final.get("v_psnr"),
                       "prompts": list(VALIDATION_PROMPT_IDS),
                       "logos": list(VALIDATION_LOGO_INDICES),
                       "render_seed": data.validation_render_seed},
        "history": history, "curve": prior_curve + shift_curve(history, prior_steps),
        "parameters": n_params,
        "method_card": method.card(),
        "init": init_entry,
        "total_steps": step + prior_steps,
        "total_training_seconds": round(
            train_seconds + float((init_entry or {}).get("total_training_seconds") or 0), 3),
        "command": _command(settings, defaults, profile_arg, device, out, default_out, frames,
                            Path(init) if init is not None else None, plateau,
                            step if stopped["reason"] != "steps" and not
                            stopped["reason"].startswith("plateau") else None,
                            None if every == validation_interval(steps) else every,
                            tuple(method.train_attacks)),
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_checkpoint(out, network.state_dict(), card)
    if not keep_state:
        state_file.unlink(missing_ok=True)
    return out


def _device_text(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} "\
           "threads)"


class _Logger:
    """A tqdm bar with smoothed training loss, W-PSNR and V-PSNR (dB) (none when quiet)."""

    def __init__(self, enabled: bool, total: int, initial: int, name: str):
        self.bar = None
        self.name = name
        self.smooth: dict[str, float] = {}
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"train {name}",
                            dynamic_ncols=True, file=sys.stderr)

    def step(self, loss: float, logo_mse: float, video_mse: float) -> None:
        if self.bar is None:
            return
        for key, value in (("loss", loss), ("logo", logo_mse), ("video", video_mse)):
            old = self.smooth.get(key)
            self.smooth[key] = value if old is None else 0.9 * old + 0.1 * value
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.smooth['loss']:.4g}",
                             w_psnr=f"{psnr_from_mse(self.smooth['logo']):.1f}",
                             v_psnr=f"{psnr_from_mse(self.smooth['video']):.1f}",
                             refresh=False)

    def write(self, text: str) -> None:
        """Validation lines and notices: printed with or without the bar; without it each
        line opens with the method's name (a campaign's runs share one stream)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
