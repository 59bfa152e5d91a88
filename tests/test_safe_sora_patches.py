"""Safe-Sora's patch side: position codes, greedy recovery, patch matching, canvases."""

from __future__ import annotations

import math

import pytest
import torch

from bench.core.api import BenchError
from methods.safe_sora.matching import (
    PatchMatcher,
    canvas_from_patches,
    frame_latents,
    patches_at_slots,
    patches_from_canvas,
)
from methods.safe_sora.position import (
    decode_positions,
    patchify,
    position_bits,
    position_channel,
    unpatchify,
    with_positions,
)
from methods.safe_sora.recovery import assign_slots, assign_slots_batch, reassemble

pytestmark = pytest.mark.usefixtures("one_thread")


# --- position codes -------------------------------------------------------------------------


def test_patchify_round_trip_and_raster_order():
    logos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    patches = patchify(logos, 8)
    assert patches.shape == (2, 16, 3, 8, 8)
    assert torch.equal(patches[:, 5], logos[:, :, 8:16, 8:16])  # row 1, column 1 of a 4x4 grid
    assert torch.equal(unpatchify(patches), logos)
    with pytest.raises(BenchError, match="divisible"):
        patchify(logos, 5)


def test_position_bits():
    assert [position_bits(n) for n in (1, 2, 3, 4, 5, 64, 256, 257)] == [1, 1, 2, 2, 3, 6, 8, 9]


def test_position_channel_paper_layout_p16_n256():
    code = position_channel(256, 16)
    assert code.shape == (256, 1, 16, 16)
    for i in (0, 1, 37, 128, 255):
        for j in range(8):
            bit = (i >> j) & 1
            assert torch.all(code[i, 0, 2 * j:2 * j + 2] == (1.0 if bit else -1.0))


def test_position_channel_p8_n64_copies_per_bit():
    code = position_channel(64, 8).reshape(64, 64)
    assert set(code.unique().tolist()) == {-1.0, 1.0}
    # patch 2^j - bit j alone is set - marks the run of copies that carries bit j
    counts = [int((code[1 << j] > 0).sum()) for j in range(6)]
    assert sum(counts) == 64
    assert all(c in (64 // 6, math.ceil(64 / 6)) for c in counts)
    runs = [torch.nonzero(code[1 << j] > 0).flatten() for j in range(6)]
    assert all(int(r[-1] - r[0]) + 1 == len(r) for r in runs)  # contiguous
    assert [int(r[0]) for r in runs] == sorted(int(r[0]) for r in runs)


def test_with_positions_channels():
    logos = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    x = with_positions(logos, 4)
    assert x.shape == (1, 16, 4, 4, 4)
    assert torch.allclose(x[:, :, :3], patchify(logos, 4) * 2 - 1)
    assert torch.equal(x[0, :, 3:], position_channel(16, 4))


@pytest.mark.parametrize("n,p", [(256, 16), (64, 8), (32, 16), (5, 4)])
def test_decode_clean_codes(n, p):
    index, confidence = decode_positions(position_channel(n, p)[:, 0].unsqueeze(0))
    assert torch.equal(index[0], torch.arange(n))
    assert torch.allclose(confidence, torch.full((1, n), 0.5))


def test_decode_noisy_codes_still_right():
    n, p = 256, 16
    gen = torch.Generator().manual_seed(2)
    code = position_channel(n, p)[:, 0].reshape(n, p * p)
    # flip 15 of the 32 copies of every bit (a minority), then add noise and overshoot
    per_bit = code.reshape(n, 8, 32)
    flip = torch.rand(n, 8, 32, generator=gen).argsort(dim=-1) < 15
    noisy = torch.where(flip, -per_bit, per_bit).reshape(n, p, p)
    noisy = noisy * 1.5 + 0.1 * torch.randn(n, p, p, generator=gen)
    index, confidence = decode_positions(noisy.unsqueeze(0))
    assert torch.equal(index[0], torch.arange(n))
    assert bool(((confidence > 0) & (confidence < 0.5)).all())


# --- recovery -------------------------------------------------------------------------------


def reference_assign(index: list[int], confidence: list[float], n_slots: int) -> list[int]:
    """Plain-Python Algorithm 1 with float64 confidences."""
    order = sorted(range(len(index)), key=lambda i: (-confidence[i], i))
    slot = [None] * len(index)
    used = set()
    left = []
    for i in order:
        if 0 <= index[i] < n_slots and index[i] not in used:
            used.add(index[i])
            slot[i] = index[i]
        else:
            left.append(i)
    for i in left:
        best = min((s for s in range(n_slots) if s not in used),
                   key=lambda s: (abs(index[i] - s), s))
        used.add(best)
        slot[i] = best
    return slot


def test_assign_without_conflicts_is_identity_on_the_claims():
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    conf = torch.rand(16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(assign_slots(perm, conf, 16), perm)


def test_conflict_goes_to_the_more_confident_and_loser_to_nearest_vacant():
    # patches 1 and 3 both claim slot 1; slot 3 is the only vacancy
    index = torch.tensor([0, 1, 2, 1, 4])
    conf = torch.tensor([0.5, 0.2, 0.5, 0.4, 0.5])
    assert assign_slots(index, conf, 5).tolist() == [0, 3, 2, 1, 4]
    # patch 1 loses slot 2 and ties between vacancies 1 and 3: the lower wins; patch 4's
    # index is out of range (unplaced) and it takes the remaining vacancy
    index = torch.tensor([2, 2, 0, 4, 9])
    conf = torch.tensor([0.5, 0.4, 0.5, 0.5, 0.1])
    assert assign_slots(index, conf, 5).tolist() == [2, 1, 0, 4, 3]
    # leftovers choose in descending confidence, not in patch order
    index = torch.tensor([0, 0, 0, 3])
    conf = torch.tensor([0.5, 0.1, 0.3, 0.5])
    assert assign_slots(index, conf, 4).tolist() == [0, 2, 1, 3]


@pytest.mark.parametrize("seed", range(4))
def test_assign_matches_reference_and_is_a_permutation(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 64
    index = torch.randint(0, 80, (3, n), generator=gen)  # many conflicts and misses
    conf = torch.rand(3, n, generator=gen, dtype=torch.float64) * 0.5
    conf[:, :8] = 0.25  # ties in confidence
    slots = assign_slots_batch(index, conf, n)
    for b in range(3):
        assert sorted(slots[b].tolist()) == list(range(n))
        assert slots[b].tolist() == reference_assign(index[b].tolist(), conf[b].tolist(), n)


def test_assign_rejects_too_many_patches():
    with pytest.raises(BenchError):
        assign_slots(torch.zeros(5, dtype=torch.long), torch.zeros(5), 4)


def test_reassemble_places_patch_at_its_slot():
    x = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6, 1, 1, 1)
    slot = torch.stack([torch.randperm(6, generator=torch.Generator().manual_seed(s))
                        for s in (5, 6)])
    out = reassemble(x, slot)
    for b in range(2):
        for i in range(6):
            assert torch.equal(out[b, slot[b, i]], x[b, i])
    with pytest.raises(BenchError, match="permutation"):
        reassemble(x, torch.zeros(2, 6, dtype=torch.long))


# --- matching -------------------------------------------------------------------------------

T, REGIONS = 4, (2, 3)
R = REGIONS[0] * REGIONS[1]
N = T * R


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.rand(2, T, 4, 8, 12, generator=gen) * 2 - 1
    patches = torch.rand(2, N, 4, 4, 4, generator=gen) * 2 - 1
    return latents, patches


def test_frame_latents_encoding():
    frames = torch.full((1, 2, 3, 8, 8), 0.5)
    frames[0, 1, :, :4, :4] = torch.tensor([0.0, 1.0] * 8).reshape(4, 4)  # striped block
    z = frame_latents(frames, 4)
    assert z.shape == (1, 2, 4, 2, 2)
    assert torch.allclose(z[0, 0], torch.tensor([0.0, 0.0, 0.0, -1.0]).reshape(4, 1, 1)
                          .expand(4, 2, 2))
    assert torch.allclose(z[0, 1, 3, 0, 0], torch.tensor(1.0))  # luma std 0.5 x 4 -> clamp 1
    assert torch.allclose(z[0, 1, :3, 0, 0], torch.zeros(3))
    with pytest.raises(BenchError):
        frame_latents(frames, 3)


def test_matcher_permutation_capacity_determinism():
    latents, patches = inputs()
    matcher = PatchMatcher(T, REGIONS)
    slot = matcher(latents, patches)
    assert slot.dtype == torch.long and slot.shape == (2, N)
    for b in range(2):
        assert sorted(slot[b].tolist()) == list(range(N))
        assert torch.bincount(slot[b] // R, minlength=T).tolist() == [R] * T
    assert torch.equal(PatchMatcher(T, REGIONS)(latents, patches), slot)
    assert torch.equal(matcher(latents.clone(), patches.clone()), slot)
    assert list(matcher.parameters()) == []
    assert "coarse_latent.weight" in matcher.state_dict()


def test_matcher_variants():
    latents, patches = inputs(1)
    identity = PatchMatcher(T, REGIONS, coarse=False)(latents, patches)
    assert torch.equal(identity, torch.arange(N).expand(2, N))
    no_fs = PatchMatcher(T, REGIONS, fine=False)(latents, patches)
    full = PatchMatcher(T, REGIONS)(latents, patches)
    assert torch.equal(no_fs // R, full // R)  # the same frames
    for b in range(2):
        for f in range(T):
            members = (no_fs[b] // R == f).nonzero().flatten()  # ascending patch order
            assert (no_fs[b, members] % R).tolist() == list(range(R))
    no_rtl = PatchMatcher(T, REGIONS, latent_routing=False)(latents, patches)
    assert torch.equal(no_rtl // R, (torch.arange(N) // R).expand(2, N))
    assert sorted(no_rtl[0].tolist()) == list(range(N))


def test_matcher_planted_patch_lands_in_its_frame():
    gen = torch.Generator().manual_seed(7)
    latents = torch.zeros(1, T, 4, 4, 4)
    target = 2
    latents[0, target] = torch.rand(4, 4, 4, generator=gen) * 3
    n = T * 4  # 2 x 2 regions per frame
    patches = 0.01 * torch.rand(1, n, 4, 4, 4, generator=gen)
    planted = n - 1  # the last patch: ties would never favour it
    patches[0, planted] = latents[0, target]
    matcher = PatchMatcher(T, (2, 2))
    scores = matcher.coarse_scores(latents, patches)[0]
    assert int(scores.argmax()) == planted * T + target  # constructed highest
    slot = matcher(latents, patches)
    assert int(slot[0, planted]) // 4 == target
    assert int(PatchMatcher(T, (2, 2), latent_routing=False)(latents, patches)[0, planted]) \
        // 4 == T - 1


def test_matcher_rejects_bad_shapes():
    latents, patches = inputs()
    matcher = PatchMatcher(T, REGIONS)
    with pytest.raises(BenchError, match="slots"):
        matcher(latents, patches[:, :-1])
    with pytest.raises(BenchError, match="regions"):
        matcher(latents[..., :7, :], patches)


# --- canvases -------------------------------------------------------------------------------


def test_canvas_round_trip_and_gradients():
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(2, N, 4, 4, 4, generator=gen, requires_grad=True)
    slot = torch.stack([torch.randperm(N, generator=gen) for _ in range(2)])
    canvas = canvas_from_patches(x, slot, T, REGIONS)
    assert canvas.shape == (2, T, 4, 2 * 4, 3 * 4)
    # patch i sits at frame slot // R, region row (slot % R) // cols, column slot % cols
    s = int(slot[1, 5])
    f, row, col = s // R, (s % R) // 3, s % 3
    assert torch.equal(canvas[1, f, :, row * 4:row * 4 + 4, col * 4:col * 4 + 4], x[1, 5])
    back = patches_from_canvas(canvas, slot, T, REGIONS)
    assert torch.equal(back, x)
    cells = patches_at_slots(canvas, T, REGIONS, 4)
    assert torch.equal(cells, reassemble(x, slot))
    weight = torch.rand_like(x)
    (back * weight).sum().backward()
    assert torch.equal(x.grad, weight)
