"""The contracts every source, method, attack and metric satisfies.

Tensors: a video is ``float32 (T, 3, H, W)`` in [0, 1], RGB; batches add a leading ``B``.
A logo (the watermark image) is ``float32 (3, h, w)`` in [0, 1]. Nothing is modified in place.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterator, Mapping, Optional

import torch


class BenchError(Exception):
    """An error whose message is meant for the user (bad input, unknown name, bad file)."""


@dataclass(frozen=True)
class Clip:
    """A cover video. ``frames``: float32 (T, 3, H, W) in [0, 1]; ``fps``: frames per second.

    ``latent`` / ``features`` are present only when the source is a real generator that
    exposes its latent video (Safe-Sora may use them); offline sources leave them ``None``.
    """

    id: str
    prompt: str
    frames: torch.Tensor
    fps: float = 8.0
    latent: Optional[torch.Tensor] = None
    features: Optional[dict] = None


@dataclass(frozen=True)
class Logo:
    """A watermark image. ``image``: float32 (3, h, w) in [0, 1]."""

    id: str
    image: torch.Tensor


@dataclass(frozen=True)
class Profile:
    """Sizes of one evaluation setting (loaded from ``bench/core/profiles/NAME.toml``)."""

    name: str
    frames: int
    height: int
    width: int
    logo_size: int
    fps: float = 8.0
    prompts: int = 100
    description: str = ""
    #: videos that get every strength of every attack; the rest get each attack's paper
    #: setting only (its first grid point). 0: every video gets every strength.
    curve_videos: int = 0


def check_device(device: str) -> str:
    """``device`` if it is ``cpu``, or ``cuda`` with a CUDA device present; else BenchError."""
    if device not in ("cpu", "cuda"):
        raise BenchError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available")
    return device


class Method(abc.ABC):
    """A graphical video watermark: hides a logo in a video and recovers it.

    Subclasses set ``name``, ``version`` and ``description`` and are constructed by a factory
    ``factory(profile: Profile, device: str) -> Method`` registered under ``bench.methods``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    #: the folder of the checkpoints shipped with the method: relative to the folder of the
    #: top-level package holding the class's module, or absolute (``checkpoint_folder``)
    checkpoint_dir: ClassVar[str | Path] = "checkpoints"
    #: path of the checkpoint the default construction loads (None: weight-free)
    checkpoint: Optional[Path] = None
    #: the precision ``bench run --precision auto`` (the default) runs this method in:
    #: ``bf16`` only where its shipped checkpoint's metrics were measured within
    #: ``bench.core.precision.BF16_TOLERANCE_DB`` of fp32 (README, "Dry run, timings,
    #: precision"), else ``fp32``
    inference_precision: ClassVar[str] = "fp32"

    @abc.abstractmethod
    def embed(self, frames: torch.Tensor, logos: torch.Tensor,
              clips: Optional[list[Clip]] = None) -> torch.Tensor:
        """frames (B, T, 3, H, W), logos (B, 3, h, w) -> watermarked frames (B, T, 3, H, W)."""

    @abc.abstractmethod
    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) -> recovered logos (B, 3, h, w) in [0, 1]."""

    def embedded_positions(self) -> Optional[torch.Tensor]:
        """Where the last ``embed`` hid each logo patch: long (B, P), a location index of the
        method's own (e.g. ``frame * regions + region``); None for methods without patches."""
        return None

    def positions(self) -> Optional[torch.Tensor]:
        """Where the last ``extract`` took each logo slot's patch from: long (B, P) in the
        index space of ``embedded_positions`` (-1: slot left empty); None for methods without
        patches. The runner scores their agreement as ``patch_acc``."""
        return None

    @classmethod
    def checkpoint_folder(cls) -> Path:
        """Where the method's shipped checkpoints live (``checkpoint_dir`` resolved); a plugin
        package keeps them as package data in ``<its package>/checkpoints`` by default."""
        return declared_checkpoint_folder(cls)

    @classmethod
    def from_checkpoint(cls, path: Path, profile: Profile, device: str = "cpu") -> "Method":
        """The method with the weights of ``path`` instead of its shipped checkpoint."""
        raise BenchError(f"method {cls.name!r} has no checkpoint to load")


def package_folder(module_name: str) -> Path:
    """The folder of the outermost regular package holding the module ``module_name`` (the
    module's own folder when it is top-level, or when every package above it is a namespace
    package); BenchError when the module has no file."""
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:depth]))
        file = getattr(module, "__file__", None)
        if file and (depth < len(parts) or hasattr(module, "__path__")):
            return Path(file).resolve().parent
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        raise BenchError(f"module {module_name!r} has no folder to hold checkpoints; set "
                         "checkpoint_dir to an absolute path")
    return Path(file).resolve().parent


def declared_checkpoint_folder(cls: type) -> Path:
    """``cls.checkpoint_dir`` (default ``checkpoints``) as a folder: absolute as given, else
    relative to ``package_folder`` of the module defining ``cls``."""
    folder = Path(getattr(cls, "checkpoint_dir", "checkpoints")).expanduser()
    return folder if folder.is_absolute() else package_folder(cls.__module__) / folder


def param(default: Any, parse: Callable[[Any, str], Any], label: str = "") -> Any:
    """A field of an attack's ``Params``, declared once: its ``default`` and
    ``parse(value, label) -> value``, which checks a given value and returns it normalised
    (raising ``BenchError``); ``label`` names it in messages (the field's name if empty).
    The field's annotation gives its type (``--attacks`` values are conformed to it)."""
    return dataclasses.field(default=default, metadata={"parse": parse, "label": label})


@dataclass(frozen=True)
class AttackParams:
    """Base class of an attack's parameters (a frozen dataclass per attack).

    Fields declared with ``param`` are checked and normalised when an instance is built,
    the default included, so every instance is a valid setting.
    """

    def __post_init__(self):
        for f in dataclasses.fields(self):
            parse = f.metadata.get("parse")
            if parse is not None:
                value = parse(getattr(self, f.name), f.metadata["label"] or f.name)
                object.__setattr__(self, f.name, value)

    def canonical_args(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            parts.append(f"{f.name}={_fmt(value)}")
        return ",".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, tuple):
        return "U(" + ",".join(_fmt(v) for v in value) + ")"
    return str(value)


class Attack(abc.ABC):
    """A video distortion applied between embedding and extraction.

    ``params`` is a frozen dataclass; ``canonical`` (e.g. ``h264(crf=24)``) names the attack
    with its parameters in results. ``__call__`` is exact and seeded per row; ``info()`` then
    tells what it drew or measured; ``train_form`` returns a differentiable counterpart with
    the same parameters, for training. The attacks in ``attacks/`` build on
    ``attacks.batched.BatchedAttack``, which holds the scaffold (checks, clamping, info).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    #: the group its robustness plots share: ``paper`` (the paper's six), ``codec``,
    #: ``geometric``, ``photometric``, ``temporal``, ``chain`` or ``other``
    family: ClassVar[str] = "other"
    Params: ClassVar[type]
    #: what the last ``__call__`` recorded (read with ``info()``); ``__call__`` rebinds it
    _info: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, params: Optional[AttackParams] = None):
        self.params = params if params is not None else self.default_params()
        if not isinstance(self.params, self.Params):
            raise BenchError(f"attack {self.name!r} needs {self.Params.__qualname__}, "
                             f"got {type(self.params).__name__}")

    @classmethod
    def default_params(cls) -> AttackParams:
        """The paper's setting."""
        return cls.Params()

    @classmethod
    def grid(cls) -> list[AttackParams]:
        """Evaluation strengths, the paper's setting first."""
        return [cls.default_params()]

    @property
    def canonical(self) -> str:
        args = self.params.canonical_args()
        return f"{self.name}({args})" if args else self.name

    def strength(self) -> float:
        """A number for the x-axis of robustness plots (NaN for randomised settings)."""
        return math.nan

    @abc.abstractmethod
    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> attacked frames (T, 3, H, W) in [0, 1]."""

    def info(self) -> dict[str, Any]:
        """What the last ``__call__`` drew or measured, for its result row (a new dict; empty
        before a call and for attacks that record nothing). Keys by attack: ``bytes`` (codecs
        and jpeg: the compressed size in bytes, the row's ``attack_bytes``) and
        ``container_bytes`` (the whole file), ``area`` (erasure: the erased share of the frame)
        and ``box`` (top, left, h, w in pixels), the drawn ``sigma`` (noise) or ``angle``
        (rotation, degrees); a chain merges its parts' and lists each under ``parts``."""
        return dict(self._info)

    def train_form(self):
        """A differentiable callable ``(frames (B, T, 3, H, W), generator) -> frames``."""
        raise NotImplementedError(f"attack {self.name!r} has no training form yet")


@dataclass(frozen=True)
class MetricSpec:
    """What a metric measures. ``level``: ``row`` (one value per row) or ``set`` (one per set
    of videos, FVD). ``compares``, for row metrics: ``video`` (watermarked vs cover video,
    computed once per embedded video and shared by that video's rows) or ``logo`` (recovered
    vs embedded logo, computed for every attacked row)."""

    name: str
    higher_is_better: bool
    unit: str
    level: str
    description: str
    version: str = "1"
    compares: str = "logo"


#: a metric's status in a row: computed; not computable on this machine (weights absent:
#: the row is still ``ok``); not defined for this method or input (tLP of one frame)
METRIC_OK, METRIC_UNAVAILABLE, METRIC_NOT_APPLICABLE, METRIC_ERROR = (
    "ok", "unavailable", "not_applicable", "error")
METRIC_STATUSES = (METRIC_OK, METRIC_UNAVAILABLE, METRIC_NOT_APPLICABLE, METRIC_ERROR)


@dataclass
class MetricValue:
    """A computed value, or NaN with the reason it could not be computed and its ``status``
    (``unavailable`` by default when NaN, ``not_applicable`` when the metric does not apply)."""

    value: float
    reason: str = ""
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = METRIC_OK if not math.isnan(self.value) else METRIC_UNAVAILABLE
        if self.status not in METRIC_STATUSES:
            raise ValueError(f"metric status {self.status!r} is not one of {METRIC_STATUSES}")

    @property
    def available(self) -> bool:
        return not math.isnan(self.value)


@dataclass(frozen=True)
class MetricInputs:
    """What a row metric is given. ``cover``/``watermarked``: (T, 3, H, W) in [0, 1] on
    ``device``; for ``compares="logo"`` metrics also ``logo``/``recovered`` (3, h, w) in [0, 1]
    (on the CPU) and the patch positions the method reported (``embedded_positions``: where
    embed hid each patch, ``placed_positions``: where extract took them from; None when the
    method reports none)."""

    cover: torch.Tensor
    watermarked: torch.Tensor
    logo: Optional[torch.Tensor] = None
    recovered: Optional[torch.Tensor] = None
    embedded_positions: Optional[torch.Tensor] = None
    placed_positions: Optional[torch.Tensor] = None
    device: str = "cpu"


class Metric(abc.ABC):
    """A registered metric (entry point group ``bench.metrics``): its ``spec``, the CSV
    ``column`` its values go to, and ``score`` for row metrics. The runner computes every
    registered row metric for every row; set metrics (``level="set"``) are computed by the
    runner's set stage (FVD)."""

    spec: MetricSpec
    column: str

    @abc.abstractmethod
    def score(self, inputs: MetricInputs) -> MetricValue:
        """The metric of one row. Raise BenchError for bad input (the row becomes an error
        row); return ``MetricValue(nan, reason)`` when it cannot be computed here."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def level(self) -> str:
        return self.spec.level

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def description(self) -> str:
        return self.spec.description


class Source(abc.ABC):
    """Yields cover clips one at a time (memory flat in the number of prompts)."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Clip | "ClipError"]:
        ...

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class ClipError:
    """A clip a source could not produce (corrupt file, too short, ...): becomes a status row."""

    id: str
    prompt: str
    error: str
    meta: dict = field(default_factory=dict)


class TrainableMethod(Method):
    """A method with weights, trained by the shared loop (``bench train``, bench/train/loop.py).

    The loop owns data, optimiser (AdamW, cosine decay), seeding, validation, checkpoints and
    resumption; the method owns its networks, its losses and its choice of noise layers.
    """

    #: default optimiser settings and batch, overridable from the command line
    train_defaults: ClassVar[dict] = {"lr": 1e-4, "weight_decay": 1e-5, "betas": (0.9, 0.999),
                                      "batch_size": 2, "steps": 2000}
    #: registry names of the attacks whose training forms are applied during training
    #: (one drawn per step, uniformly; "identity" included when clean steps are wanted)
    train_attacks: ClassVar[tuple[str, ...]] = ("identity",)
    #: other registered methods whose checkpoints ``bench train --init`` may start from:
    #: relatives holding every tensor of this network with its shape (tensors this network
    #: lacks are left out and listed in the card), e.g. an ablation variant from its full model
    warm_start_from: ClassVar[tuple[str, ...]] = ()
    #: weight of the logo-recovery term against the video term in ``training_losses`` (the
    #: papers' lambda or beta); ``bench train --reveal-weight`` sets it on the instance.
    #: None: the method's loss has no such single weight, and the option is refused
    reveal_weight: Optional[float] = None

    @classmethod
    def resolved_train_defaults(cls) -> dict:
        """This class's ``train_defaults`` over the base ones, so every base key has a value."""
        return {**TrainableMethod.train_defaults, **cls.train_defaults}

    @abc.abstractmethod
    def network(self) -> torch.nn.Module:
        """The module holding every trainable parameter (its state_dict is the checkpoint)."""

    @abc.abstractmethod
    def training_losses(self, frames: torch.Tensor, logos: torch.Tensor, attack,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One training forward pass.

        frames (B, T, 3, H, W), logos (B, 3, h, w) in [0, 1]; ``attack`` is a differentiable
        callable ``(frames (B, T, 3, H, W), generator) -> frames``. Returns scalar tensors:
        ``loss`` (what is minimised), ``video_mse`` and ``logo_mse`` (for logs), and any other.
        """

    def card(self) -> dict:
        """Method-specific facts for the checkpoint card (deviations, widths, noise layers)."""
        return {}

    @classmethod
    def from_checkpoint(cls, path: Path, profile: Profile, device: str = "cpu") -> "Method":
        """``cls(profile, device, checkpoint=path)``: a subclass whose constructor takes no
        ``checkpoint`` overrides this."""
        return cls(profile, device, checkpoint=path)
