"""FrameConv3d (a Conv3d computed as one 2D convolution over stacked frames) against Conv3d."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from methods.safe_sora.conv import FrameConv3d

CASES = [  # (in, out, kernel, stride, padding): every form Safe-Sora's networks use, and more
    (4, 7, 3, 1, 1),
    (24, 24, 3, (1, 2, 2), 1),
    (3, 24, (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    (24, 4, 1, 1, 0),
    (5, 6, (5, 3, 1), 1, (2, 1, 0)),
]


@pytest.mark.parametrize("cin,cout,kernel,stride,padding", CASES)
def test_matches_conv3d_forward_and_backward(cin, cout, kernel, stride, padding):
    torch.manual_seed(0)
    fast = FrameConv3d(cin, cout, kernel, stride=stride, padding=padding).double()
    reference = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding).double()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(2, cin, 5, 12, 10, dtype=torch.float64, requires_grad=True)
    assert fast._by_frames(x)
    y_fast, y_ref = fast(x), reference(x)
    assert y_fast.shape == y_ref.shape
    torch.testing.assert_close(y_fast, y_ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(y_ref)
    got = torch.autograd.grad(y_fast, (x, fast.weight, fast.bias), grad)
    want = torch.autograd.grad(y_ref, (x, reference.weight, reference.bias), grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


def test_other_forms_fall_back_to_conv3d():
    grouped = FrameConv3d(4, 4, 3, padding=1, groups=2)
    strided_in_time = FrameConv3d(4, 4, 3, stride=2, padding=1)
    unpadded_in_time = FrameConv3d(4, 4, 3, padding=(0, 1, 1))
    x = torch.randn(1, 4, 5, 8, 8)
    for conv in (grouped, strided_in_time, unpadded_in_time):
        assert not conv._by_frames(x)
        torch.testing.assert_close(conv(x), nn.Conv3d.forward(conv, x))


def test_state_dict_is_conv3d_s():
    fast = FrameConv3d(3, 5, 3, padding=1)
    assert {k: v.shape for k, v in fast.state_dict().items()} == \
        {k: v.shape for k, v in nn.Conv3d(3, 5, 3, padding=1).state_dict().items()}
