"""The paper's six attacks give the outputs they gave when their results were first cached.

Each case runs the evaluation form on one small seeded clip and the training form (output
and the gradient of a weighted sum) on a batch of two, and compares float64 fingerprints of
them (sum, sum of squares, a seeded weighted sum), and the evaluation's info exactly, with the
values of the code from before the attacks shared their base class (recorded by running that
commit's attacks). A fingerprint, not a hash of the bytes: grid_sample rounds differently on
AVX2 and AVX-512 CPUs, which moves a sum by about 1e-6, while one 8-bit step in one pixel
moves it by more than 1e-3. Canonical strings and versions are pinned too, since cached rows
are keyed by them.
"""

from __future__ import annotations

import pytest
import torch
from clips import seeded, uniform_clip

from attacks.blur import Blur
from attacks.erasure import Erasure
from attacks.h264 import H264
from attacks.identity import Identity
from attacks.noise import Noise
from attacks.rotation import Rotation

#: (attack, canonical, fingerprint of the evaluation output, its info, fingerprints of the
#: training form's output and input gradient)
CASES = [
    (Identity(), "identity",
     (2204.250347, 1455.881089, 16.59714736),
     [],
     (3347.297554, 2223.485107, 20.50135385), (3397.288791, 2269.961081, 24.17987238)),
    (Erasure(), "erasure(area=U(0.05,0.2))",
     (1997.724496, 1320.76827, 17.58040199),
     [('area', 0.09358288770053476), ('box', (11, 10, 5, 7))],
     (2896.946059, 1924.095682, 21.8762946), (2950.055589, 1974.451764, 21.55038313)),
    (Erasure(Erasure.Params(area=0.2)), "erasure(area=0.2)",
     (1756.043473, 1162.090733, 13.43646838),
     [('area', 0.20588235294117646), ('box', (9, 7, 7, 11))],
     (2656.676267, 1764.781098, 16.77289668), (2707.364911, 1815.161148, 19.95187006)),
    (Erasure(Erasure.Params(area=0.0)), "erasure(area=0.0)",
     (2204.250347, 1455.881089, 16.59714736),
     [('area', 0.0), ('box', (15, 15, 0, 0))],
     (3347.297554, 2223.485107, 20.50135385), (3397.288791, 2269.961081, 24.17987238)),
    (Blur(Blur.Params(kernel=3)), "blur(kernel=3)",
     (2198.707448, 1135.780592, 14.73029931),
     [],
     (3344.506772, 1749.858857, 26.61220017), (3397.288792, 1843.657737, 24.94450062)),
    (Blur(), "blur(kernel=5)",
     (2198.061222, 1106.426386, 14.47250211),
     [],
     (3345.780691, 1707.389701, 27.74616457), (3397.288994, 1818.095745, 26.95335171)),
    (Blur(Blur.Params(kernel=7, sigma=2.0)), "blur(kernel=7,sigma=2.0)",
     (2198.26183, 1088.983314, 14.13821454),
     [],
     (3347.976527, 1683.349165, 29.25494451), (3397.288695, 1810.278098, 29.21390346)),
    (Noise(), "noise(sigma=U(0.0,0.2))",
     (2204.54149, 1462.373602, 16.71924132),
     [('sigma', 0.0558760859812808)],
     (3347.469252, 2230.835494, 20.14378301), (3397.288791, 2269.961081, 24.17987238)),
    (Noise(Noise.Params(sigma=0.05)), "noise(sigma=0.05)",
     (2207.350119, 1462.451021, 18.92977037),
     [('sigma', 0.05)],
     (3352.46029, 2236.822604, 23.06866418), (3397.288791, 2269.961081, 24.17987238)),
    (Rotation(), "rotation(angle=U(-30.0,30.0))",
     (1996.250338, 1108.283881, 21.79993171),
     [('angle', -13.237174205615759)],
     (3028.322762, 1700.649196, 19.16365167), (3068.520432, 1742.532128, 28.6504137)),
    (Rotation(Rotation.Params(angle=15.0)), "rotation(angle=15.0)",
     (1958.278236, 1085.402571, 19.3541681),
     [('angle', 15.0)],
     (2993.329137, 1681.51169, 33.60844138), (3030.935815, 1721.258111, 29.38700323)),
    (Rotation(Rotation.Params(angle=(-5, 5))), "rotation(angle=U(-5.0,5.0))",
     (2161.826948, 1236.285024, 14.40241502),
     [('angle', -2.20619570093596)],
     (3283.379227, 1896.39638, 22.9401261), (3330.88928, 1938.332883, 25.32704213)),
    (H264(), "h264(crf=24,preset=medium)",
     (2214.866724, 1274.807892, 11.606774),
     [('bytes', 2155), ('container_bytes', 3054)],
     (3349.13342, 1940.475591, 24.55307606), (3397.288791, 2269.961081, 24.17987238)),
    (H264(H264.Params(crf=36, preset="ultrafast")), "h264(crf=36,preset=ultrafast)",
     (2217.486335, 1244.636022, 12.44489319),
     [('bytes', 1430), ('container_bytes', 2283)],
     (3360.584403, 1909.93171, 28.16486856), (3397.288791, 2269.961081, 24.17987238)),
]


def _fingerprint(tensor: torch.Tensor) -> tuple[float, float, float]:
    """Sum, sum of squares and a seeded weighted sum of ``tensor`` in float64: any change of
    what an attack computes moves them, while a BLAS or SIMD path that rounds differently
    (grid_sample on AVX2 against AVX-512) moves them by float32 rounding only."""
    x = tensor.detach().to(torch.float64).flatten()
    w = torch.rand(x.numel(), generator=seeded(11), dtype=torch.float64) - 0.5
    return (float(x.sum()), float((x * x).sum()), float((x * w).sum()))


def evaluation_fingerprint(attack) -> tuple:
    """The attack on a (4, 3, 17, 22) clip under seed 7: its output's fingerprint, its info."""
    out = attack(uniform_clip(4, 17, 22, seed=1), seeded(7))
    assert out.shape == (4, 3, 17, 22)
    return _fingerprint(out), sorted(attack.info().items())


def training_fingerprint(attack) -> tuple:
    """The training form on a (2, 3, 3, 17, 22) batch under seed 7: fingerprints of its output
    and of the gradient of ``(out * weights).sum()`` with respect to the batch."""
    batch = torch.stack([uniform_clip(3, 17, 22, seed=2), uniform_clip(3, 17, 22, seed=3)])
    batch.requires_grad_(True)
    out = attack.train_form()(batch, seeded(7))
    weights = uniform_clip(6, 17, 22, seed=4).reshape(out.shape)
    (grad,) = torch.autograd.grad((out * weights).sum(), batch)
    assert out.shape == grad.shape == batch.shape
    return _fingerprint(out), _fingerprint(grad)


#: float32 rounding moves a fingerprint by far less than this; a changed computation by more
TOLERANCE = dict(rel=1e-7, abs=1e-4)


@pytest.mark.parametrize("attack,canonical,evaluation,info,train_out,train_grad", CASES,
                         ids=[c[1] for c in CASES])
def test_outputs_are_those_cached_results_were_made_with(attack, canonical, evaluation, info,
                                                         train_out, train_grad, one_thread):
    assert attack.canonical == canonical and attack.version == "1"
    out, out_info = evaluation_fingerprint(attack)
    assert out == pytest.approx(evaluation, **TOLERANCE)
    assert out_info == info
    assert training_fingerprint(attack) == (pytest.approx(train_out, **TOLERANCE),
                                            pytest.approx(train_grad, **TOLERANCE))
