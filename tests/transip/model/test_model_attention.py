"""Block-diagonal attention over packed batches: layout bookkeeping and numerics."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.model import AttentionLayout, attend

sizes_lists = st.lists(st.integers(1, 40), min_size=1, max_size=12)


def _ptr(sizes):
    return torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_lists, growth=st.sampled_from([1.0, 1.25, 2.0, math.inf]), slack=st.integers(0, 20))
def test_layout_covers_every_atom_once_and_bounds_padding(sizes, growth, slack):
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=growth, slack=slack)
    real = torch.cat([b.index[b.mask] for b in layout.buckets])
    assert torch.equal(real.sort().values, torch.arange(sum(sizes)))
    for b in layout.buckets:
        width = b.index.shape[1]
        counts = b.mask.sum(1)
        assert int(counts.max()) == width  # padded only to the largest member
        assert bool((width <= torch.maximum(counts * growth, counts + slack)).all())
        # every row holds one molecule: contiguous packed indices
        starts = b.index[:, :1]
        expect = torch.where(b.mask, starts + torch.arange(width), starts)
        assert torch.equal(b.index, expect)


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_lists)
def test_gather_scatter_round_trip(sizes):
    layout = AttentionLayout.from_ptr(_ptr(sizes))
    x = torch.randn(sum(sizes), 2, 3)
    assert torch.equal(layout.scatter(layout.gather(x)), x)


def test_equal_sizes_make_one_unpadded_bucket_and_inf_growth_pads_to_max():
    layout = AttentionLayout.from_ptr(_ptr([9] * 5))
    assert len(layout.buckets) == 1 and not layout.buckets[0].padded
    naive = AttentionLayout.from_ptr(_ptr([10, 200, 50]), growth=math.inf)
    assert [b.shape for b in naive.buckets] == [(3, 200)]
    bucketed = AttentionLayout.from_ptr(_ptr([10, 200, 50]))
    assert bucketed.attention_elements < naive.attention_elements


def _reference(q, k, v, sizes, bias_fn=None):
    """Per-molecule dense attention, one molecule at a time."""
    outs, start = [], 0
    for n in sizes:
        qs, ks, vs = (x[start : start + n].transpose(0, 1) for x in (q, k, v))  # (H, n, E)
        logits = qs @ ks.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if bias_fn is not None:
            logits = logits + bias_fn(start, n)
        outs.append((logits.softmax(-1) @ vs).transpose(0, 1))
        start += n
    return torch.cat(outs)


@pytest.mark.parametrize("growth", [1.0, 1.25, math.inf])
@pytest.mark.parametrize("double_backward", [False, True])
def test_attend_matches_per_molecule_attention(growth, double_backward):
    g = torch.Generator().manual_seed(0)
    sizes = [3, 17, 1, 40, 5, 17]
    t, h, e = sum(sizes), 2, 4
    q, k, v = (torch.randn(t, h, e, generator=g, dtype=torch.float64) for _ in range(3))
    pair = torch.randn(t, t, h, generator=g, dtype=torch.float64)  # a bias defined on packed pairs
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=growth, slack=0)
    bias = [pair[b.index[:, :, None], b.index[:, None, :]].permute(0, 3, 1, 2) for b in layout.buckets]
    out = attend(q, k, v, layout, bias, double_backward=double_backward)
    ref = _reference(q, k, v, sizes, lambda s, n: pair[s : s + n, s : s + n].permute(2, 0, 1))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attend(q, k, v, layout), _reference(q, k, v, sizes), rtol=1e-10, atol=1e-12)


def test_attend_is_twice_differentiable_with_padding_and_bias():
    g = torch.Generator().manual_seed(1)
    sizes = [2, 4, 3]
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=math.inf)
    assert layout.buckets[0].padded
    q, k, v = (torch.randn(9, 2, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    w = torch.randn(len(layout.buckets[0].index), 2, 4, 4, generator=g, dtype=torch.float64)
    w.requires_grad_(True)

    def f(q, k, v, w):
        return attend(q, k, v, layout, [w], double_backward=True)

    assert torch.autograd.gradgradcheck(f, (q, k, v, w))


def test_fused_backend_lacks_double_backward_so_math_path_is_needed():
    # documents why attend(..., double_backward=True) exists; if torch adds the derivative this fails
    x = torch.randn(1, 1, 4, 3, requires_grad=True)
    y = F.scaled_dot_product_attention(x, x, x)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        gx.sum().backward()
