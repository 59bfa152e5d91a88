"""Mamba-1 selective scan and layers in pure PyTorch, with mamba-ssm's fused kernel on CUDA.

``selective_scan`` follows mamba-ssm's ``selective_scan_fn``: per channel d and state n,

    h_t = exp(delta_t * A[d, n]) * h_{t-1} + delta_t * B_t[n] * u_t,   h_{-1} = 0
    y_t = sum_n C_t[n] * h_t + D[d] * u_t   (times silu(z_t) when z is given)

It runs parallel over L: the linear recurrence h_t = a_t h_{t-1} + b_t is solved in chunks of
``CHUNK`` tokens by recursive doubling (log2(CHUNK) vectorised passes that multiply decays, never
divide by them or take their logarithm, so large delta and long sequences stay exact to float
rounding), the chunks' end states by the same scan one level up (recursively), and the carried
state is added back. Memory is O(Bt * Dm * N * L). The backward pass is the same scan run in
reverse (a custom autograd function), so autograd stores only the decays and the states.

``Mamba`` has exactly mamba-ssm's parameter names, shapes and initialisation, so one state_dict
loads in either; ``BiMamba`` is the bidirectional ("v2", Vision Mamba) layer made of two of them.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

CHUNK = 32  # tokens per chunk of the doubling scan (any power of two works; 16-64 is fastest)


# --------------------------------------------------------------------------------------------
# Linear recurrence h_t = a_t * h_{t-1} + b_t along the last dimension


def _doubling(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan inside rows of length q = a.shape[-1] by recursive doubling.

    Returns (prod_{s<=t} a_s, h_t) with h_{-1} = 0, both shaped like ``a``; no autograd.
    """
    a = a.clone()
    b = b.clone()
    q = a.shape[-1]
    k = 1
    while k < q:
        b[..., k:] += a[..., k:] * b[..., :-k]  # the product is formed before the add
        a[..., k:] = a[..., k:] * a[..., :-k]
        k *= 2
    return a, b


def _linear_scan(a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along the last dim, h_{-1} = 0. a, b: (..., L) -> h: (..., L)."""
    length = a.shape[-1]
    if length <= chunk:
        return _doubling(a, b)[1]
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    if pad:  # a = 1, b = 0 after the end: the padded states never feed a real token
        a = F.pad(a, (0, pad), value=1.0)
        b = F.pad(b, (0, pad))
    a = a.reshape(*a.shape[:-1], n_chunks, chunk)
    b = b.reshape(*b.shape[:-1], n_chunks, chunk)
    decay, h = _doubling(a, b)  # (..., n_chunks, chunk), each chunk started from zero
    ends = _linear_scan(decay[..., -1], h[..., -1], chunk)  # true state at each chunk's end
    carry = F.pad(ends[..., :-1], (1, 0))  # state entering each chunk
    h += decay * carry[..., None]
    return h.reshape(*h.shape[:-2], n_chunks * chunk)[..., :length]


def _reverse_linear_scan(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """G_t = g_t + a_{t+1} * G_{t+1} along the last dim (G_L = 0). a, g: (..., L)."""
    a_next = F.pad(a[..., 1:], (0, 1), value=0.0)
    return _linear_scan(a_next.flip(-1), g.flip(-1)).flip(-1)


class _LinearScan(torch.autograd.Function):
    """Differentiable ``_linear_scan``: the backward pass is a reverse scan of the same kind."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = _linear_scan(a.detach(), b.detach())
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        g = _reverse_linear_scan(a, grad_h.contiguous())  # dLoss/dh_t through all later tokens
        grad_a = None
        if ctx.needs_input_grad[0]:
            grad_a = g * F.pad(h[..., :-1], (1, 0))  # dh_t/da_t = h_{t-1}
        return grad_a, g  # dh_t/db_t = 1


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along the last dim with h_{-1} = 0; differentiable.

    a, b: (..., L), same shape -> h: (..., L).
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _LinearScan.apply(a.contiguous(), b.contiguous())
    return _linear_scan(a, b)


class _Softplus(torch.autograd.Function):
    """softplus(x) = max(x, 0) + log(1 + exp(-|x|)); backward sigmoid(x) * grad.

    The same values as ``F.softplus`` to float rounding, about 10x faster on the CPU, where
    torch's softplus goes through a scalar ``log1p``; ``log`` of values in (1, 2] vectorises.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0) + torch.log(1 + torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``F.softplus(x)``; in training (a tensor needing gradients) the faster ``_Softplus``,
    which agrees to float rounding. Inference keeps ``F.softplus``, so evaluation outputs stay
    bit-identical to the rows computed before this form existed."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Softplus.apply(x)
    return F.softplus(x)


# --------------------------------------------------------------------------------------------
# Selective scan (mamba-ssm's selective_scan_fn semantics)


def _per_channel(m: torch.Tensor, dim: int, name: str) -> torch.Tensor:
    """(Bt, N, L) or (Bt, G, N, L) input-dependent B/C -> (Bt, G, 1, N, L) with G | Dm."""
    if m.dim() == 3:
        m = m.unsqueeze(1)
    if m.dim() != 4 or dim % m.shape[1]:
        raise ValueError(f"{name} must be (Bt, N, L) or (Bt, G, N, L) with G dividing Dm, got "
                         f"{tuple(m.shape)} for Dm = {dim}")
    return m.unsqueeze(2)


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: Optional[torch.Tensor] = None,
                   z: Optional[torch.Tensor] = None, delta_bias: Optional[torch.Tensor] = None,
                   delta_softplus: bool = False) -> torch.Tensor:
    """Mamba-1 selective scan, the semantics of mamba-ssm's ``selective_scan_fn``.

    u, delta, z: (Bt, Dm, L); A: (Dm, N); B, C: (Bt, N, L) (or grouped (Bt, G, N, L));
    D, delta_bias: (Dm,). delta is ``softplus(delta + delta_bias)`` when ``delta_softplus``.
    Returns y: (Bt, Dm, L) in u's dtype; computed in float32 (float64 stays float64).
    """
    dtype_in = u.dtype
    work = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta = u.to(work).contiguous(), delta.to(work).contiguous()
    A, B, C = A.to(work), B.to(work), C.to(work)
    batch, dim, length = u.shape
    if delta.shape != u.shape or A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"shapes: u {tuple(u.shape)}, delta {tuple(delta.shape)}, "
                         f"A {tuple(A.shape)}; want u, delta (Bt, Dm, L) and A (Dm, N)")
    n_state = A.shape[1]
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = softplus(delta)
    B = _per_channel(B, dim, "B")
    C = _per_channel(C, dim, "C")
    groups = B.shape[1]
    per_group = (batch, groups, dim // groups)
    # decays and inputs, (Bt, G, Dm / G, N, L)
    decay = torch.exp(delta.view(*per_group, 1, length) * A.view(groups, -1, n_state, 1))
    drive = (delta * u).view(*per_group, 1, length) * B
    h = linear_scan(decay, drive)
    y = (h * C).sum(dim=3).reshape(batch, dim, length)
    if D is not None:
        y = y + D.to(work)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype_in)


def _fused_scan() -> Optional[Callable[..., torch.Tensor]]:
    """mamba-ssm's CUDA ``selective_scan_fn`` when importable, else None."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # not installed, or built for another torch / without CUDA
        return None
    return selective_scan_fn


def scan_backend(device: Union[str, torch.device]) -> str:
    """Which selective scan runs on ``device``: "mamba-ssm" (fused CUDA kernel) or "pytorch"."""
    if torch.device(device).type == "cuda" and _fused_scan() is not None:
        return "mamba-ssm"
    return "pytorch"


def scan_for(x: torch.Tensor) -> Callable[..., torch.Tensor]:
    """The selective scan function for tensors living where ``x`` lives."""
    if scan_backend(x.device) == "mamba-ssm":
        return _fused_scan()
    return selective_scan


# --------------------------------------------------------------------------------------------
# Layers


def init_dt_bias(bias: torch.Tensor, dt_min: float, dt_max: float, dt_init_floor: float) -> None:
    """mamba-ssm's dt bias: inverse softplus of dt ~ log-uniform(dt_min, dt_max), floored."""
    with torch.no_grad():
        dt = torch.exp(torch.rand_like(bias) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        bias.copy_(dt + torch.log(-torch.expm1(-dt)))


class Mamba(nn.Module):
    """The Mamba-1 layer (mamba-ssm's ``Mamba``: same parameter names, shapes and init).

    Parameters: in_proj (2 * d_inner, d_model), conv1d depthwise (d_inner, 1, d_conv) with
    causal padding d_conv - 1, x_proj (dt_rank + 2 * d_state, d_inner), dt_proj (d_inner,
    dt_rank) + bias, A_log (d_inner, d_state), D (d_inner,), out_proj (d_model, d_inner);
    d_inner = expand * d_model, dt_rank = ceil(d_model / 16) for "auto".
    forward: x (B, L, d_model) -> (B, L, d_model).
    """

    def __init__(self, d_model: int, d_state: int = 1, d_conv: int = 4, expand: int = 1,
                 dt_rank: Union[int, str] = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, bias: bool = False, conv_bias: bool = True):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        init_dt_bias(self.dt_proj.bias, dt_min, dt_max, dt_init_floor)
        self.dt_proj.bias._no_reinit = True
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def causal_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``conv1d`` with causal padding on channels-last tokens: (B, L, d_inner) -> same.

        Runs as a (1 x d_conv) conv2d on a channels-last view, which is several times faster
        on the CPU (forward and backward) than conv1d on a transposed copy; same numbers.
        """
        length = x.shape[1]
        weight = self.conv1d.weight.unsqueeze(2)  # (d_inner, 1, 1, d_conv)
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight, self.conv1d.bias,
                     padding=(0, self.d_conv - 1), groups=self.d_inner)
        return y[..., :length].squeeze(2).transpose(1, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (B, L, d_inner) each
        x = self.act(self.causal_conv(x))
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = dt @ self.dt_proj.weight.t()  # (B, L, d_inner); the bias goes in as delta_bias
        y = scan_for(x)(x.transpose(1, 2), dt.transpose(1, 2), -torch.exp(self.A_log.float()),
                        b.transpose(1, 2), c.transpose(1, 2), self.D.float(),
                        z=z.transpose(1, 2), delta_bias=self.dt_proj.bias.float(),
                        delta_softplus=True)  # (B, d_inner, L)
        return self.out_proj(y.transpose(1, 2))


class BiMamba(nn.Module):
    """Bidirectional Mamba: ``forward_layer(x) + flip(backward_layer(flip(x)))`` along L.

    Two independent ``Mamba`` layers (same keyword arguments); x (B, L, d_model) -> same.
    """

    def __init__(self, d_model: int, **kw):
        super().__init__()
        self.forward_layer = Mamba(d_model, **kw)
        self.backward_layer = Mamba(d_model, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_layer(x) + self.backward_layer(x.flip(1)).flip(1)
