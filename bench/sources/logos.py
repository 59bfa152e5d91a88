"""Watermark logos rendered by the project, deterministic by id.

A logo id seeds (SHA-256) a small design grammar: a background (light, solid, linear or
radial gradient), an emblem (circle, ring, rounded square, polygon, shield, star, or none),
a foreground (a monogram of 1-3 letters / digits or a symbol, set in one of matplotlib's
bundled DejaVu fonts, or a geometric motif) and an optional accent, in a palette of 2-4
colours. Every decision is drawn before rendering, in the unit square, so one id gives the
same design at every size. Rendering uses matplotlib's Agg canvas (antialiased).

Evaluation logos are ``logo-e000``..``logo-e099``; training logos ``logo-t00000``.. are
drawn from the same grammar (a family of similar designs) but their ids, hence their seeds,
never meet the evaluation ones.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, Ellipse, FancyBboxPatch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

from bench.core.api import BenchError, Logo
from bench.core.seeding import text_seed

__all__ = ["EVAL_LOGO_COUNT", "evaluation_logo", "evaluation_logos", "render_logo", "training_logo",
           "training_logo_id"]

EVAL_LOGO_COUNT = 100

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_TEXT_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSerif.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
               "DejaVuSerif-BoldItalic.ttf")
_SYMBOL_FONT = "DejaVuSans.ttf"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
_SYMBOLS = "☀☁☂★☎☯♠♣♥♦♪♫⚓⚡✈✉✔✚✪✿❀❄❤⚙⚛♛♞☘☕⌘♻⚜✦❖"
_EMBLEMS = ("circle", "ring", "rounded", "hexagon", "octagon", "diamond", "triangle",
            "shield", "star", "none")
_MOTIFS = ("stripes", "rings", "chevron", "star", "crescent", "dots", "cross", "wave")


# ----------------------------------------------------------------------------- design


def _rng(logo_id: str) -> np.random.Generator:
    return np.random.default_rng(text_seed(f"safesora-bench/logo/v1/{logo_id}", 16))


def _luminance(rgb: tuple[float, float, float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _palette(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """2-4 RGB colours in a harmonic hue scheme."""
    hue = rng.random()
    scheme = ("complementary", "analogous", "triadic", "split", "mono")[int(rng.integers(5))]
    offsets = {"complementary": [0.0, 0.5, 0.0, 0.5], "analogous": [0.0, 0.08, -0.08, 0.16],
               "triadic": [0.0, 1 / 3, 2 / 3, 0.0], "split": [0.0, 0.42, 0.58, 0.0],
               "mono": [0.0, 0.0, 0.0, 0.0]}[scheme]
    count = int(rng.integers(2, 5))
    colours = []
    for k in range(count):
        saturation = rng.uniform(0.45, 1.0)
        value = rng.uniform(0.3, 1.0) if k % 2 == 0 else rng.uniform(0.55, 1.0)
        if scheme == "mono":
            value = [0.3, 0.95, 0.6, 0.8][k]
        colours.append(colorsys.hsv_to_rgb((hue + offsets[k]) % 1.0, saturation, value))
    return colours


def _contrasting(base: tuple[float, float, float], options: list[tuple[float, float, float]]
                 ) -> tuple[float, float, float]:
    """The option farthest in luminance from ``base``; white or ink if none is far enough."""
    best = max(options, key=lambda c: abs(_luminance(c) - _luminance(base)))
    if abs(_luminance(best) - _luminance(base)) >= 0.3:
        return best
    return (1.0, 1.0, 1.0) if _luminance(base) < 0.5 else (0.08, 0.08, 0.12)


def _design(logo_id: str) -> dict:
    """All decisions of one logo, in unit-square coordinates (size-independent)."""
    rng = _rng(logo_id)
    colours = _palette(rng)
    background_kind = ("light", "solid", "linear", "radial")[
        int(rng.choice(4, p=[0.3, 0.25, 0.3, 0.15]))]
    light = [(1.0, 1.0, 1.0), (0.97, 0.95, 0.9), (0.92, 0.94, 0.96)][int(rng.integers(3))]
    if background_kind == "light":
        background = (light, light)
    else:
        first = colours[int(rng.integers(len(colours)))]
        second = colours[int(rng.integers(len(colours)))]
        if second == first:
            second = tuple(float(np.clip(c * rng.uniform(0.4, 0.7), 0, 1)) for c in first)
        background = (first, second)
    emblem = _EMBLEMS[int(rng.integers(len(_EMBLEMS)))]
    bg_mid = tuple((a + b) / 2 for a, b in zip(*background, strict=True))
    emblem_fill = _contrasting(bg_mid, colours) if emblem != "none" else bg_mid
    # second gradient stop: a hue-shifted, slightly darker emblem colour (keeps contrast)
    hue, sat, val = colorsys.rgb_to_hsv(*emblem_fill)
    emblem_fill2 = colorsys.hsv_to_rgb((hue + rng.uniform(-0.1, 0.1)) % 1.0, sat,
                                       val * rng.uniform(0.7, 0.9))
    fill_kind = "gradient" if rng.random() < 0.35 else "solid"
    radius = rng.uniform(0.36, 0.46)
    outline = rng.random() < 0.45
    outline_colour = colours[int(rng.integers(len(colours)))]
    outline_width = rng.uniform(0.02, 0.05)
    foreground_kind = ("monogram", "symbol", "motif")[int(rng.choice(3, p=[0.55, 0.2, 0.25]))]
    letters = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    alphabet = _LETTERS if rng.random() < 0.85 else _LETTERS + _DIGITS
    text = "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(letters))
    symbol = _SYMBOLS[int(rng.integers(len(_SYMBOLS)))]
    font = _TEXT_FONTS[int(rng.integers(len(_TEXT_FONTS)))]
    motif = _MOTIFS[int(rng.integers(len(_MOTIFS)))]
    under_text = emblem_fill if emblem not in ("ring", "none") else bg_mid
    ink = _contrasting(under_text, colours)
    accent = ("none", "bar", "dots", "orbit", "badge")[
        int(rng.choice(5, p=[0.4, 0.15, 0.15, 0.15, 0.15]))]
    return {
        "colours": colours, "background_kind": background_kind, "background": background,
        "angle": rng.uniform(0, 2 * np.pi), "emblem": emblem, "emblem_fill": emblem_fill,
        "emblem_fill2": emblem_fill2, "fill_kind": fill_kind, "radius": radius,
        "rotation": rng.uniform(-0.5, 0.5) if emblem in ("diamond", "hexagon", "star") else 0,
        "star_points": int(rng.integers(5, 9)), "outline": outline,
        "outline_colour": outline_colour, "outline_width": outline_width,
        "foreground_kind": foreground_kind, "text": text, "symbol": symbol, "font": font,
        "text_tilt": rng.uniform(-12, 12) if rng.random() < 0.2 else 0.0,
        "text_scale": rng.uniform(0.8, 1.0),
        "motif": motif, "motif_count": int(rng.integers(3, 7)), "ink": ink,
        "accent": accent, "accent_colour": _contrasting(bg_mid, colours[::-1]),
        "accent_angle": rng.uniform(0, 2 * np.pi),
    }


# ---------------------------------------------------------------------------- drawing


def _emblem_patch(design: dict):
    kind, r = design["emblem"], design["radius"]
    centre = (0.5, 0.5)
    if kind in ("circle", "ring"):
        return Circle(centre, r)
    if kind == "rounded":
        side = 1.6 * r
        return FancyBboxPatch((0.5 - side / 2, 0.5 - side / 2), side, side,
                              boxstyle=f"round,pad=0,rounding_size={0.25 * side}")
    if kind in ("hexagon", "octagon", "diamond", "triangle"):
        sides = {"hexagon": 6, "octagon": 8, "diamond": 4, "triangle": 3}[kind]
        start = np.pi / 2 + design["rotation"]
        angles = start + 2 * np.pi * np.arange(sides) / sides
        offset = 0.08 * r if kind == "triangle" else 0.0  # centre the triangle's area
        points = np.stack([0.5 + r * 1.1 * np.cos(angles),
                           0.5 - offset + r * 1.1 * np.sin(angles)], axis=1)
        return Polygon(points, closed=True)
    if kind == "shield":
        top, bottom, half = 0.5 + 0.95 * r, 0.5 - 1.05 * r, 0.85 * r
        # flat top, straight sides, two cubic curves meeting at the bottom tip
        verts = [(0.5 - half, top), (0.5 + half, top), (0.5 + half, 0.5 - 0.1 * r),
                 (0.5 + half, 0.5 - 0.6 * r), (0.5 + 0.3 * half, bottom + 0.1 * r),
                 (0.5, bottom), (0.5 - 0.3 * half, bottom + 0.1 * r),
                 (0.5 - half, 0.5 - 0.6 * r), (0.5 - half, 0.5 - 0.1 * r), (0.5 - half, top)]
        codes = [MplPath.MOVETO, MplPath.LINETO, MplPath.LINETO, MplPath.CURVE4,
                 MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4,
                 MplPath.CURVE4, MplPath.CLOSEPOLY]
        return PathPatch(MplPath(verts, codes))
    if kind == "star":
        points = design["star_points"]
        angles = np.pi / 2 + design["rotation"] + np.pi * np.arange(2 * points) / points
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.12 * r, 0.62 * r)
        return Polygon(np.stack([0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)],
                                axis=1), closed=True)
    return None


def _gradient(kind: str, first, second, angle: float, resolution: int = 64) -> np.ndarray:
    """An RGB gradient image (resolution, resolution, 3) over the unit square."""
    y, x = np.mgrid[0:resolution, 0:resolution] / (resolution - 1)
    if kind == "radial":
        t = np.clip(np.hypot(x - 0.5, y - 0.5) / 0.7071, 0, 1)
    else:
        t = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
        t = np.clip(t / 0.7071 * 0.5 + 0.5, 0, 1)
    first, second = np.asarray(first), np.asarray(second)
    return first * (1 - t[..., None]) + second * t[..., None]


def _fit_text(text: str, font: str, box: tuple[float, float, float, float], tilt: float
              ) -> MplPath:
    """Glyph outlines of ``text`` scaled and centred into box (x0, y0, x1, y1)."""
    path = TextPath((0, 0), text, size=1.0, prop=FontProperties(fname=str(_FONT_DIR / font)))
    extents = path.get_extents()
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / max(extents.width, 1e-6), (y1 - y0) / max(extents.height, 1e-6))
    transform = (Affine2D().translate(-extents.x0 - extents.width / 2,
                                      -extents.y0 - extents.height / 2)
                 .scale(scale).rotate_deg(tilt).translate((x0 + x1) / 2, (y0 + y1) / 2))
    return transform.transform_path(path)


def _draw_motif(ax, design: dict, clip) -> None:
    kind, ink, r = design["motif"], design["ink"], design["radius"]
    count = design["motif_count"]
    artists = []
    if kind == "stripes":
        width = 2 * r / (2 * count - 1)
        for k in range(0, 2 * count - 1, 2):
            artists.append(Rectangle((0.5 - r + k * width, 0.0), width, 1.0, color=ink))
        transform = Affine2D().rotate_deg_around(0.5, 0.5, np.degrees(design["angle"]))
        for a in artists:
            a.set_transform(transform + ax.transData)
    elif kind == "rings":
        for k in range(count, 0, -1):
            colour = ink if k % 2 == 1 else design["emblem_fill"]
            artists.append(Circle((0.5, 0.5), 0.75 * r * k / count, color=colour))
    elif kind == "chevron":
        h = 0.35 * r
        for k in range(min(count, 3)):
            dy = (k - 1) * 0.5 * r
            artists.append(Polygon([(0.5 - 0.7 * r, 0.5 + dy - h / 2), (0.5, 0.5 + dy + h / 2),
                                    (0.5 + 0.7 * r, 0.5 + dy - h / 2),
                                    (0.5 + 0.7 * r, 0.5 + dy - h * 1.1),
                                    (0.5, 0.5 + dy - h * 0.1),
                                    (0.5 - 0.7 * r, 0.5 + dy - h * 1.1)], color=ink))
    elif kind == "star":
        points = count + 2
        angles = np.pi / 2 + np.pi * np.arange(2 * points) / points
        radii = np.where(np.arange(2 * points) % 2 == 0, 0.7 * r, 0.3 * r)
        artists.append(Polygon(np.stack([0.5 + radii * np.cos(angles),
                                         0.5 + radii * np.sin(angles)], axis=1), color=ink))
    elif kind == "crescent":
        artists.append(Circle((0.5, 0.5), 0.65 * r, color=ink))
        shift = 0.3 * r
        artists.append(Circle((0.5 + shift * np.cos(design["angle"]),
                               0.5 + shift * np.sin(design["angle"])), 0.55 * r,
                              color=design["emblem_fill"]))
    elif kind == "dots":
        n = 3 if count < 5 else 4
        step = 1.2 * r / (n - 1)
        for i in range(n):
            for j in range(n):
                artists.append(Circle((0.5 - 0.6 * r + i * step, 0.5 - 0.6 * r + j * step),
                                      0.3 * step, color=ink))
    elif kind == "cross":
        arm = 0.22 * r
        artists.append(Rectangle((0.5 - arm, 0.5 - 0.75 * r), 2 * arm, 1.5 * r, color=ink))
        artists.append(Rectangle((0.5 - 0.75 * r, 0.5 - arm), 1.5 * r, 2 * arm, color=ink))
    elif kind == "wave":
        x = np.linspace(0.5 - r, 0.5 + r, 60)
        for k in range(min(count, 4)):
            y = 0.5 + (k - 1.5) * 0.3 * r + 0.1 * r * np.sin((x - 0.5) / r * np.pi * 2 + k)
            ax.plot(x, y, color=ink, linewidth=0.07 * r * 72, solid_capstyle="round",
                    clip_path=clip)
    for artist in artists:
        ax.add_patch(artist)
        if clip is not None:
            artist.set_clip_path(clip)


def _draw_accent(ax, design: dict) -> None:
    kind, colour, r = design["accent"], design["accent_colour"], design["radius"]
    if kind == "bar":
        ax.add_patch(Rectangle((0.5 - 0.6 * r, 0.5 - r - 0.07), 1.2 * r, 0.035, color=colour))
    elif kind == "dots":
        for k in range(4):
            angle = design["accent_angle"] + k * np.pi / 2
            ax.add_patch(Circle((0.5 + 0.46 * np.cos(angle) * 0.95,
                                 0.5 + 0.46 * np.sin(angle) * 0.95), 0.028, color=colour))
    elif kind == "orbit":
        ax.add_patch(Ellipse((0.5, 0.5), 2.15 * r, 0.9 * r,
                             angle=np.degrees(design["accent_angle"]) % 180, fill=False,
                             edgecolor=colour, linewidth=0.022 * 72))
    elif kind == "badge":
        ax.add_patch(Circle((0.5 + 0.72 * r, 0.5 + 0.72 * r), 0.2 * r, color=colour))


def _render_array(logo_id: str, size: int) -> np.ndarray:
    """Render one logo -> uint8 (size, size, 3)."""
    design = _design(logo_id)
    figure = Figure(figsize=(1, 1), dpi=size)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    first, second = design["background"]
    if design["background_kind"] in ("linear", "radial"):
        ax.imshow(_gradient(design["background_kind"], first, second, design["angle"]),
                  extent=(0, 1, 0, 1), origin="lower", interpolation="bilinear",
                  aspect="auto")
    else:
        ax.add_patch(Rectangle((0, 0), 1, 1, color=first))
    emblem = _emblem_patch(design)
    clip = None
    if emblem is not None:
        emblem.set_facecolor(design["emblem_fill"])
        emblem.set_edgecolor("none")
        if design["emblem"] == "ring":
            emblem.set_facecolor("none")
            emblem.set_edgecolor(design["emblem_fill"])
            emblem.set_linewidth(0.12 * design["radius"] * 72)
        ax.add_patch(emblem)
        if design["fill_kind"] == "gradient" and design["emblem"] != "ring":
            image = ax.imshow(_gradient("linear", design["emblem_fill"], design["emblem_fill2"],
                                        design["angle"] + 1.0),
                              extent=(0, 1, 0, 1), origin="lower", interpolation="bilinear",
                              aspect="auto")
            image.set_clip_path(emblem)
        clip = emblem
    r = design["radius"]
    if design["foreground_kind"] == "motif":
        _draw_motif(ax, design, clip if design["emblem"] != "ring" else None)
    else:
        text = design["text"] if design["foreground_kind"] == "monogram" else design["symbol"]
        font = design["font"] if design["foreground_kind"] == "monogram" else _SYMBOL_FONT
        width = (1.15 if len(text) == 1 else 1.45) * r * design["text_scale"]
        height = 1.0 * r * design["text_scale"]
        if design["emblem"] == "none":
            width, height = 1.6 * width, 1.5 * height
        box = (0.5 - width / 2, 0.5 - height / 2, 0.5 + width / 2, 0.5 + height / 2)
        ink = design["ink"]
        ax.add_patch(PathPatch(_fit_text(text, font, box, design["text_tilt"]),
                               facecolor=ink, edgecolor="none"))
    if emblem is not None and design["outline"] and design["emblem"] != "ring":
        border = _emblem_patch(design)
        border.set_facecolor("none")
        border.set_edgecolor(design["outline_colour"])
        border.set_linewidth(design["outline_width"] * 72)
        ax.add_patch(border)
    _draw_accent(ax, design)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


@lru_cache(maxsize=512)
def _cached_array(logo_id: str, size: int) -> np.ndarray:
    array = _render_array(logo_id, size)
    array.setflags(write=False)
    return array


def render_logo(logo_id: str, size: int) -> Logo:
    """The logo of an id: image float32 (3, size, size) in [0, 1], same id -> same bytes."""
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise BenchError(f"logo size must be an integer >= 8, got {size!r}")
    array = _cached_array(str(logo_id), int(size))
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
    return Logo(id=str(logo_id), image=image.contiguous())


def evaluation_logo(index: int, size: int) -> Logo:
    """The ``index``-th evaluation logo (``logo-e{index % 100:03d}``), rendered alone."""
    return render_logo(f"logo-e{int(index) % EVAL_LOGO_COUNT:03d}", size)


@lru_cache(maxsize=8)
def _evaluation_logos(size: int) -> tuple[Logo, ...]:
    return tuple(evaluation_logo(index, size) for index in range(EVAL_LOGO_COUNT))


def evaluation_logos(size: int) -> list[Logo]:
    """The 100 evaluation logos ``logo-e000``..``logo-e099`` at size x size (cached)."""
    return list(_evaluation_logos(int(size)))


def training_logo_id(index: int) -> str:
    """Id of the ``index``-th training logo (``logo-t00042``); never an evaluation id."""
    if index < 0:
        raise BenchError(f"training logo index must be >= 0, got {index}")
    return f"logo-t{index:05d}"


def training_logo(index: int, size: int) -> Logo:
    """The ``index``-th training logo (a design from the same grammar, disjoint ids)."""
    return render_logo(training_logo_id(int(index)), size)
