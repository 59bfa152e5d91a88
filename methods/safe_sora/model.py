"""Safe-Sora (NeurIPS 2025, arXiv 2505.12667), reimplemented: the method and its ablations.

Per unit of T = 8 frames (a 16-frame clip is two units, each carrying the whole logo; the
two recovered logos are averaged, as in the paper's test protocol):

1. **Patches with position channels** (position.py): the logo is cut into ``grid x grid``
   patches (16 x 16 for a 256-pixel logo as published; 8 x 8 below, so that every position
   bit keeps about ten copies), each gains a channel with its index as a binary code.
2. **Expert**: one Linear(4p^2 -> 4p^2) embeds every patch (initialised to the identity).
3. **CFAPM** (matching.py): coarse (frame) then fine (region) matching of patches to the
   frames' latents; the latent is ``clip.latent`` when the source gives a 4-channel latent of
   T frames at 1/8 of the frame size, else the fixed encoding ``frame_latents`` (documented
   there). The matcher's encoders are not trained (assignment sorts; see matching.py).
4. **Embedder** (embedder.py): the per-frame canvas of placed patches and the cover go through
   a UNet with 2D SFMamba levels, MSFI and two 3D SFMamba blocks; its output is a residual
   added to the cover (small and random at initialisation; the paper starts it at zero, see
   embedder.py).
5. **Extractor** (extractor.py): 3D SFMamba blocks back to the canvas; every slot's content
   has its position code decoded and the confidence-guided greedy assignment (recovery.py)
   puts each patch back in the logo.

Training (``bench train``): one differentiable attack per step, drawn uniformly from
identity, erasure, blur, noise, rotation and H.264 (1/6 of the time, as in the paper; the
paper draws the other distortions per frame, the shared loop per clip). H.264 is
``h264-codec``: the real libx264 round trip forward, the gradient of the learned proxy the
paper trains through backward. Through the proxy alone (``--train-attacks
identity,erasure,blur,noise,rotation,h264-proxy``) the same 2,400 steps from the 13,200-step
checkpoint kept 12.34 dB W-PSNR under real CRF 24 (20 videos) against 21.20 dB: the proxy
models the codec's smoothing, not its quantisation noise. Loss MSE(watermarked, cover) + 0.75
MSE(recovered patches incl. position channel, embedded patches), both on [-1, 1] values as in
the released code (its frames are the VAE's decodes and its logos are normalised to [-1, 1]);
ground-truth slots in training, decoded ones at test; AdamW 5e-4, cosine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.api import BenchError, Clip, Profile, TrainableMethod
from bench.core.reference import PAPER_ABLATION_NAMES
from methods.safe_sora.embedder import HEAD_INIT_STD, Embedder
from methods.safe_sora.extractor import Extractor
from methods.safe_sora.matching import (
    PatchMatcher,
    canvas_from_patches,
    frame_latents,
    patches_at_slots,
    patches_from_canvas,
)
from methods.safe_sora.position import decode_positions, unpatchify, with_positions
from methods.safe_sora.recovery import assign_slots_batch, reassemble

__all__ = ["SafeSora", "SafeSoraConfig", "SafeSoraNetwork", "VARIANTS"]

UNIT_FRAMES = 8
LATENT_FACTOR = 8


@dataclass(frozen=True)
class SafeSoraConfig:
    """Geometry and switches of one Safe-Sora network (the ablation flags all default on)."""

    frame_size: tuple[int, int]
    logo_size: int
    grid: int  # patches per logo side
    regions: tuple[int, int]  # (rows, cols) per frame; rows * cols * UNIT_FRAMES = grid^2
    embed_widths: tuple[int, int, int, int] = (4, 8, 16, 32)
    extract_width: int = 24
    extract_stride: int = 1  # 2: the extractor's stem halves the frame side (CPU profiles)
    cfapm: bool = True  # False: raster placement ("w/o CFAPM")
    fine: bool = True  # False: no region stage ("w/o FS")
    latent_routing: bool = True  # False: frames by patch order ("w/o RtL")
    local_scan: bool = True  # False: vanilla 3D raster scan ("w/o SLS")
    space_first: bool = True  # False: time-first scan inside subbands ("w/o SFS")
    msfi: bool = True  # False: no multi-scale feature injection ("w/o MSFI")

    @property
    def patch(self) -> int:
        return self.logo_size // self.grid

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid

    @property
    def canvas_size(self) -> tuple[int, int]:
        return self.regions[0] * self.patch, self.regions[1] * self.patch

    @classmethod
    def for_profile(cls, profile: Profile, **flags) -> "SafeSoraConfig":
        """16 x 16 patches of a logo of 256 pixels or more (the paper), 8 x 8 below; below
        that size also a stride-2 extractor stem (see extractor.py)."""
        h, w, s = int(profile.height), int(profile.width), int(profile.logo_size)
        if h % LATENT_FACTOR or w % LATENT_FACTOR:
            raise BenchError(f"safe-sora: frame size {h}x{w} must be divisible by "
                             f"{LATENT_FACTOR}")
        grid = 16 if s >= 256 else 8
        if s % grid:
            raise BenchError(f"safe-sora: logo size {s} must be divisible by {grid}")
        per_frame = grid * grid // UNIT_FRAMES
        rows = 2 ** (int(math.log2(per_frame)) // 2)
        regions = (rows, per_frame // rows)
        latent = (h // LATENT_FACTOR, w // LATENT_FACTOR)
        if latent[0] % regions[0] or latent[1] % regions[1]:
            raise BenchError(f"safe-sora: the {latent[0]}x{latent[1]} latent cannot be split "
                             f"into {regions[0]}x{regions[1]} regions")
        return cls(frame_size=(h, w), logo_size=s, grid=grid, regions=regions,
                   extract_stride=1 if s >= 256 else 2, **flags)


class SafeSoraNetwork(nn.Module):
    """Every module of one Safe-Sora model (its state_dict is the checkpoint)."""

    def __init__(self, config: SafeSoraConfig):
        super().__init__()
        self.config = config
        d = 4 * config.patch * config.patch
        self.expert = nn.Linear(d, d)
        with torch.no_grad():
            self.expert.weight.copy_(torch.eye(d))
            self.expert.bias.zero_()
        self.matcher = PatchMatcher(UNIT_FRAMES, config.regions, coarse=config.cfapm,
                                    fine=config.fine, latent_routing=config.latent_routing)
        self.embedder = Embedder(config.embed_widths, msfi=config.msfi,
                                 local_scan=config.local_scan, space_first=config.space_first)
        self.extractor = Extractor(config.extract_width, local_scan=config.local_scan,
                                   space_first=config.space_first,
                                   stem_stride=config.extract_stride)

    # -- embedding ----------------------------------------------------------------------
    def place(self, cover: torch.Tensor, logos: torch.Tensor,
              latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cover (B, 8, 3, H, W), logos (B, 3, S, S), latents (B, 8, 4, H/8, W/8) ->
        (patches with positions (B, n, 4, p, p), slot (B, n), canvas (B, 8, 4, ch, cw))."""
        c = self.config
        patches = with_positions(logos, c.patch)
        slot = self.matcher(latents, patches)
        b, n = patches.shape[:2]
        embedded = self.expert(patches.reshape(b, n, -1)).reshape(patches.shape)
        canvas = canvas_from_patches(embedded, slot, UNIT_FRAMES, c.regions)
        return patches, slot, canvas

    def embed_unit(self, cover: torch.Tensor, logos: torch.Tensor,
                   latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (watermarked (B, 8, 3, H, W), unclamped; slot (B, n); patches (B, n, 4, p, p))."""
        patches, slot, canvas = self.place(cover, logos, latents)
        return cover + self.embedder(cover, canvas), slot, patches

    # -- extraction -----------------------------------------------------------------------
    def canvas(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 8, 3, H, W) -> decoded canvas (B, 8, 4, ch, cw) in [-1, 1]."""
        return self.extractor(video, self.config.canvas_size)

    def recover(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """canvas -> (logos (B, 3, S, S) in [0, 1], source slot of each logo patch (B, n)).

        Every slot's content has its position code decoded; confidence-guided greedy
        assignment gives each content a logo position."""
        c = self.config
        contents = patches_at_slots(canvas, UNIT_FRAMES, c.regions, c.patch)  # slot order
        index, confidence = decode_positions(contents[:, :, 3])
        position = assign_slots_batch(index.cpu(), confidence.cpu(), c.n_patches)
        ordered = reassemble(contents, position)  # slot s's content at its logo position
        logos = (unpatchify(ordered[:, :, :3]) + 1) / 2
        return logos.clamp(0, 1), torch.argsort(position, dim=1)  # the slot of each patch


# ---------------------------------------------------------------------------- the method


class SafeSora(TrainableMethod):
    """Safe-Sora: adaptive patch placement + SFMamba embedder and extractor (see module doc)."""

    name = "safe-sora"
    # 2: the extractor's last features at 1/4 of the frame on every profile; 3: the embedder's
    # output layer starts small and random instead of zero (embedder.py)
    version = "3"
    description = ("Safe-Sora (NeurIPS 2025): position-coded logo patches, coarse-to-fine "
                   "patch matching, 2D/3D wavelet Mamba (SFMamba) embedder and extractor")
    # the single-clip check (bench train --overfit) at lr 5e-4 stalls on its 400-step cosine
    # (W / V-PSNR 27.3 / 35.3 dB); at 2e-3 over 800 steps it passes 35 dB from step 500
    train_defaults = {"lr": 5e-4, "weight_decay": 1e-2, "betas": (0.9, 0.999),
                      "batch_size": 1, "frames": UNIT_FRAMES, "steps": 1500,
                      "overfit_steps": 800, "overfit_lr": 2e-3}
    train_attacks = ("identity", "erasure", "blur", "noise", "rotation", "h264-codec")
    #: the paper's 0.75 on the patch MSE (position channel included) against the video MSE
    reveal_weight = 0.75
    #: ablation switches of this variant (SafeSoraConfig fields)
    flags: ClassVar[dict] = {}
    #: the paper's label of the variant (the ablation table's row name)
    paper_variant: ClassVar[str] = PAPER_ABLATION_NAMES["safe-sora"]

    def __init__(self, profile: Profile, device: str = "cpu",
                 checkpoint: Optional[str] = "default"):
        self.profile = profile
        self.device = device
        self.config = SafeSoraConfig.for_profile(profile, **self.flags)
        self.net = SafeSoraNetwork(self.config).to(device)
        self.net.eval()
        self._embedded: Optional[torch.Tensor] = None
        self._extracted: Optional[torch.Tensor] = None
        self.checkpoint = None
        if checkpoint is not None:
            from bench.core.checkpoints import load_into

            load_into(self, checkpoint)

    def network(self) -> nn.Module:
        return self.net

    # -- helpers --------------------------------------------------------------------------
    def _units(self, frames: torch.Tensor) -> int:
        from baselines._common import check_video

        check_video(frames)
        t, size = frames.shape[1], tuple(frames.shape[-2:])
        if t < UNIT_FRAMES or t % UNIT_FRAMES:
            raise BenchError(f"{self.name}: needs a multiple of {UNIT_FRAMES} frames, got {t}")
        if size != self.config.frame_size:
            raise BenchError(f"{self.name}: built for {self.config.frame_size[0]}x"
                             f"{self.config.frame_size[1]} frames, got {size[0]}x{size[1]}")
        return t // UNIT_FRAMES

    def _latents(self, cover: torch.Tensor, clips: Optional[list[Clip]], unit: int
                 ) -> torch.Tensor:
        """The unit's latents: the clips' own when every clip has a fitting one."""
        h, w = (s // LATENT_FACTOR for s in self.config.frame_size)
        window = slice(unit * UNIT_FRAMES, (unit + 1) * UNIT_FRAMES)
        given = [getattr(c, "latent", None) for c in clips] if clips else []
        if given and all(isinstance(z, torch.Tensor) and z.dim() == 4
                         and tuple(z.shape[1:]) == (4, h, w) and z.shape[0] >= window.stop
                         for z in given):
            return torch.stack([z[window] for z in given]).to(cover.device, cover.dtype)
        return frame_latents(cover, LATENT_FACTOR)

    # -- contract -------------------------------------------------------------------------
    def embed(self, frames: torch.Tensor, logos: torch.Tensor,
              clips: Optional[list[Clip]] = None) -> torch.Tensor:
        """frames (B, T, 3, H, W), logos (B, 3, S, S) -> watermarked (B, T, 3, H, W) in [0, 1];
        T a multiple of 8, each 8-frame unit carrying the whole logo."""
        from baselines._common import check_logos

        units = self._units(frames)
        check_logos(logos, frames.shape[0])
        if tuple(logos.shape[-2:]) != (self.config.logo_size,) * 2:
            raise BenchError(f"{self.name}: logos must be {self.config.logo_size} pixels "
                             f"square, got {tuple(logos.shape[-2:])}")
        out_device, out_dtype = frames.device, frames.dtype
        x = frames.to(self.device, torch.float32)
        marks = logos.to(self.device, torch.float32)
        outs, slots = [], []
        with torch.no_grad():
            for u in range(units):
                cover = x[:, u * UNIT_FRAMES:(u + 1) * UNIT_FRAMES]
                marked, slot, _ = self.net.embed_unit(cover, marks,
                                                      self._latents(cover, clips, u))
                outs.append(marked.clamp(0, 1))
                slots.append(slot + u * self.config.n_patches)
        self._embedded = torch.cat(slots, dim=1).cpu()
        return torch.cat(outs, dim=1).to(out_device, out_dtype)

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) -> logos (B, 3, S, S): each unit's logo, averaged."""
        units = self._units(frames)
        out_device, out_dtype = frames.device, frames.dtype
        x = frames.to(self.device, torch.float32)
        logos, sources = [], []
        with torch.no_grad():
            for u in range(units):
                canvas = self.net.canvas(x[:, u * UNIT_FRAMES:(u + 1) * UNIT_FRAMES])
                logo, source = self.net.recover(canvas)
                logos.append(logo)
                sources.append(source + u * self.config.n_patches)
        self._extracted = torch.cat(sources, dim=1).cpu()
        return torch.stack(logos).mean(dim=0).to(out_device, out_dtype)

    def embedded_positions(self) -> Optional[torch.Tensor]:
        """long (B, units * n): the slot (unit * n + frame * R + region) of every patch."""
        return self._embedded

    def positions(self) -> Optional[torch.Tensor]:
        """long (B, units * n): the slot each logo patch was read from at the last extract."""
        return self._extracted

    # -- training -------------------------------------------------------------------------
    def training_losses(self, frames: torch.Tensor, logos: torch.Tensor, attack,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """frames (B, 8, 3, H, W), logos (B, 3, S, S): embed, 8-bit STE, attack, extract;
        the recovered patches are read at their true slots."""
        from baselines._common import quantise_ste

        if frames.shape[1] != UNIT_FRAMES:
            raise BenchError(f"{self.name} trains on {UNIT_FRAMES}-frame windows "
                             f"(--frames {UNIT_FRAMES}), got {frames.shape[1]}")
        self._units(frames)
        cover = frames.to(self.device, torch.float32)
        marks = logos.to(self.device, torch.float32)
        marked, slot, patches = self.net.embed_unit(cover, marks,
                                                    frame_latents(cover, LATENT_FACTOR))
        sent = quantise_ste(marked.clamp(0, 1))
        received = attack(sent, generator)
        canvas = self.net.canvas(received)
        recovered = patches_from_canvas(canvas, slot, UNIT_FRAMES, self.config.regions)
        video_mse = F.mse_loss(marked, cover)  # on [0, 1] values
        watermark_mse = F.mse_loss(recovered, patches)  # canvas values in [-1, 1]
        logo_mse = F.mse_loss((recovered[:, :, :3] + 1) / 2, (patches[:, :, :3] + 1) / 2)
        # the video term on [-1, 1] values like the canvas: x -> 2x - 1 scales an MSE by 4
        return {"loss": 4 * video_mse + self.reveal_weight * watermark_mse,
                "video_mse": video_mse.detach(), "logo_mse": logo_mse.detach(),
                "watermark_mse": watermark_mse.detach()}

    def card(self) -> dict:
        c = self.config
        return {
            "parameters": sum(p.numel() for p in self.net.parameters()),
            "variant": self.paper_variant, "flags": dict(self.flags),
            "patches": f"{c.n_patches} patches of {c.patch}x{c.patch}, position codes of "
                       f"{math.ceil(math.log2(c.n_patches))} bits",
            "regions_per_frame": list(c.regions), "unit_frames": UNIT_FRAMES,
            "extractor": f"width {c.extract_width}, stem stride {c.extract_stride}"
                         + ("" if c.extract_stride == 1 else " (CPU-sized: blocks at 1/2, 1/4, "
                            "1/4, 1/4 of the frame side; the paper's first block is full "
                            "size)"),
            "latents": "clip.latent when given (4 x H/8 x W/8), else frame_latents: per 8x8 "
                       "block mean RGB and luma std (no VAE in this benchmark)",
            "msfi_features": "cover frames area-averaged to each level (stand-in for the VAE "
                             "decoder's feature maps)",
            "matching": "encoders at their seeded random initialisation, not trained "
                        "(as in the released code: assignment sorts)",
            "train_attacks": list(self.train_attacks),
            "degradation": "one attack per step drawn uniformly (H.264 1/6 of steps: real "
                           "libx264 forward, the fitted proxy's gradient backward); "
                           "per clip rather than per frame",
            "loss": f"MSE(video) + {self.reveal_weight:g} MSE(patches incl. position channel), "
                    "both on [-1, 1] values",
            "output_layer_init": f"N(0, {HEAD_INIT_STD}^2) weights, zero bias (the paper: zero; "
                                 "from zero the residual stays below the 8-bit step within a "
                                 "CPU budget of steps)",
        }


def _variant(slug: str, **flags) -> type[SafeSora]:
    """A registered ablation variant: the same code with one switch off; its label is the
    paper's row name (bench.core.reference.PAPER_ABLATION_NAMES)."""
    label = PAPER_ABLATION_NAMES[f"safe-sora/{slug}"]
    cls = type(f"SafeSora_{slug.replace('-', '_')}", (SafeSora,), {
        "name": f"safe-sora/{slug}", "flags": flags, "paper_variant": label,
        "warm_start_from": ("safe-sora",),
        "description": f"Safe-Sora ablation: {label}",
        "__doc__": f"Safe-Sora {label} (ablation; {flags})."})
    cls.__module__ = __name__
    return cls


NoCFAPM = _variant("no-cfapm", cfapm=False)
NoRtL = _variant("no-rtl", latent_routing=False)
NoFine = _variant("no-fine", fine=False)
NoSLS = _variant("no-sls", local_scan=False)
TimeFirst = _variant("time-first", space_first=False)
NoMSFI = _variant("no-msfi", msfi=False)

#: every registered Safe-Sora model, full model first (the ablation table's rows)
VARIANTS: tuple[type[SafeSora], ...] = (SafeSora, NoCFAPM, NoRtL, NoFine, NoSLS, TimeFirst,
                                        NoMSFI)
