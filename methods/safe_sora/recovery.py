"""Confidence-guided greedy placement of recovered patches (the paper's Algorithm 1).

Each recovered patch names a slot (its decoded position index) with a confidence. Patches
claim their slots in descending confidence (ties by patch order), so the more confident patch
keeps a contested slot; the leftovers (losers and indices outside the slot range), again in
descending confidence, take the vacant slot nearest to their index by |index - slot|, ties to
the lower slot.
"""

from __future__ import annotations

import math

import torch

from bench.core.api import BenchError


def _order(confidence: list[float]) -> list[int]:
    """Patch order for placement: descending confidence, ties by patch index; NaN last."""
    key = [-math.inf if math.isnan(c) else c for c in confidence]
    return sorted(range(len(key)), key=lambda i: (-key[i], i))


def assign_slots(index: torch.Tensor, confidence: torch.Tensor, n_slots: int) -> torch.Tensor:
    """index long (n,), confidence float (n,) -> slot long (n,) in [0, n_slots), all distinct.

    A permutation of range(n) when n == n_slots. An index outside [0, n_slots) counts as
    unplaced. n must not exceed n_slots.
    """
    if index.dim() != 1 or confidence.shape != index.shape:
        raise BenchError(f"index and confidence must be (n,) of one shape, got "
                         f"{tuple(index.shape)} and {tuple(confidence.shape)}")
    if index.is_floating_point() or index.is_complex():
        raise BenchError("index must be an integer tensor")
    n = index.shape[0]
    if n > n_slots:
        raise BenchError(f"{n} patches cannot take distinct places among {n_slots} slots")
    wanted = index.tolist()
    order = _order(confidence.detach().double().tolist())
    slot = [-1] * n
    owner = [-1] * n_slots
    leftovers = []
    for i in order:
        j = wanted[i]
        if 0 <= j < n_slots and owner[j] < 0:
            owner[j] = i
            slot[i] = j
        else:
            leftovers.append(i)
    if leftovers:
        vacant = torch.tensor([o < 0 for o in owner])
        places = torch.arange(n_slots, dtype=torch.float64)
        for i in leftovers:  # already in descending confidence
            distance = (places - float(wanted[i])).abs().masked_fill(~vacant, math.inf)
            j = int(torch.argmin(distance))  # first minimum: the lower slot on ties
            vacant[j] = False
            slot[i] = j
    return torch.tensor(slot, dtype=torch.long, device=index.device)


def assign_slots_batch(index: torch.Tensor, confidence: torch.Tensor,
                       n_slots: int) -> torch.Tensor:
    """index long (B, n), confidence (B, n) -> slot long (B, n), ``assign_slots`` per row."""
    if index.dim() != 2 or confidence.shape != index.shape:
        raise BenchError(f"index and confidence must be (B, n) of one shape, got "
                         f"{tuple(index.shape)} and {tuple(confidence.shape)}")
    rows = [assign_slots(index[b], confidence[b], n_slots) for b in range(index.shape[0])]
    if not rows:
        return torch.empty_like(index, dtype=torch.long)
    return torch.stack(rows)


def check_permutation(slot: torch.Tensor, n: int) -> None:
    """BenchError unless slot (B, n) is long and every row a permutation of range(n)."""
    if slot.dim() != 2 or slot.shape[1] != n:
        raise BenchError(f"slot must be (B, {n}), got shape {tuple(slot.shape)}")
    if slot.dtype != torch.long:
        raise BenchError(f"slot must be a long tensor, got {slot.dtype}")
    expected = torch.arange(n, device=slot.device)
    if slot.shape[0] and not bool((slot.sort(dim=1).values == expected).all()):
        raise BenchError(f"every row of slot must be a permutation of range({n})")


def reassemble(patches: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """patches (B, n, C, p, p), slot long (B, n), a permutation per row -> (B, n, C, p, p)
    with patch i at position slot[i]. Differentiable with respect to the patches (a gather)."""
    if patches.dim() != 5 or slot.shape[:1] != patches.shape[:1]:
        raise BenchError(f"patches must be (B, n, C, p, p) with slot (B, n), got "
                         f"{tuple(patches.shape)} and {tuple(slot.shape)}")
    check_permutation(slot, patches.shape[1])
    source = torch.argsort(slot, dim=1).to(patches.device)  # source[j]: the patch for slot j
    view = source.reshape(*source.shape, 1, 1, 1).expand(-1, -1, *patches.shape[2:])
    return torch.gather(patches, 1, view)
