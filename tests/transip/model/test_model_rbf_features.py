"""The memory-lean Gaussian pair features (`transip.model._rbf_features`) against plain autograd."""

import pytest
import torch

from transip.model import _rbf_features
from transip.model._rbf_features import gaussian_pair_features

F64 = torch.float64
CENTRES = torch.linspace(0.0, 3.0, 5, dtype=F64)
GAMMA = 0.5 / (3.0 / 4) ** 2


def _plain(r, c, w):
    phi = torch.exp(-GAMMA * (r[..., None] - CENTRES) ** 2)  # (B, N, N, K)
    return phi @ w.T, (phi * c[..., None]).sum(2)


def _inputs(b=2, n=4, m=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = (torch.rand(b, n, n, generator=g, dtype=F64) * 3.5).requires_grad_(True)
    c = torch.rand(b, n, n, generator=g, dtype=F64).requires_grad_(True)
    w = torch.randn(m, CENTRES.numel(), generator=g, dtype=F64).requires_grad_(True)
    return r, c, w


@pytest.mark.parametrize("chunk", [1 << 22, 7])  # one chunk, and rows split across chunks
def test_values_and_first_and_second_derivatives_match_plain_autograd(chunk, monkeypatch):
    monkeypatch.setattr(_rbf_features, "CHUNK_ELEMENTS", chunk)
    r, c, w = _inputs()
    got = gaussian_pair_features(r, c, w, CENTRES, GAMMA)
    want = _plain(r, c, w)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    probes = [torch.randn(x.shape, generator=g, dtype=F64) for x in want]

    def first(outs):
        loss = sum((o * p).sum() for o, p in zip(outs, probes, strict=True))
        return torch.autograd.grad(loss, (r, c, w), create_graph=True)

    d_got, d_want = first(got), first(want)
    for a, b in zip(d_got, d_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the force-training pattern: a loss on first derivatives, differentiated again
    second_got = torch.autograd.grad(sum((d**2).sum() for d in d_got), (r, c, w))
    second_want = torch.autograd.grad(sum((d**2).sum() for d in d_want), (r, c, w))
    for a, b in zip(second_got, second_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_gradcheck_and_gradgradcheck(monkeypatch):
    monkeypatch.setattr(_rbf_features, "CHUNK_ELEMENTS", 11)
    inputs = _inputs(b=1, n=3, m=2, seed=2)

    def fn(r, c, w):
        return gaussian_pair_features(r, c, w, CENTRES, GAMMA)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_forward_keeps_no_pair_by_channel_tensor():
    r, c, w = _inputs(b=1, n=16, m=3)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, a = gaussian_pair_features(r, c, w, CENTRES, GAMMA)
        (dr,) = torch.autograd.grad((y.square().sum() + a.sum()), r, create_graph=True)
    assert max(saved) < 16 * 16 * CENTRES.numel()  # r, c, W and the (N, N, M) upstream gradient only
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        saved.clear()
        _plain(r, c, w)
    assert max(saved) == 16 * 16 * CENTRES.numel()  # plain autograd keeps (N, N, K) tensors


def test_inside_transip_training_gradients_equal_the_plain_formula(monkeypatch):
    from transip.data import Batch, Molecule
    from transip.model import TransIP, TransIPConfig
    from transip.model import _rbf as rbf_module

    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny", dropout=0.0, bucket_growth=float("inf"))).double()
    g = torch.Generator().manual_seed(3)
    mols = [Molecule(torch.randn(n, 3, generator=g, dtype=F64).numpy() * 1.5, [6] * n) for n in (3, 7)]
    batch = Batch.from_molecules(mols, dtype=F64)  # one padded bucket

    def step():
        model.zero_grad()
        out = model(batch, training=True)
        (out.energy.square().sum() + out.forces.square().sum()).backward()
        return [out.energy.detach(), out.forces.detach()] + [p.grad.clone() for p in model.parameters()]

    lean = step()

    def plain(r, c, w, centres, gamma):
        phi = torch.exp(-gamma * (r[..., None] - centres.to(r.dtype)) ** 2)
        return phi @ w.T, (phi * c[..., None]).sum(2)

    monkeypatch.setattr(rbf_module, "gaussian_pair_features", plain)
    for a, b in zip(lean, step(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_far_pairs_clamped_exponent_changes_nothing_visible():
    # 30 A from centres within 3 A: exp(-gamma d^2) underflows; the clamp keeps it at e * tiny
    r = torch.tensor([[[0.0, 1.0], [30.0, 25.0]]], requires_grad=True)
    c = torch.ones(1, 2, 2)
    w = torch.randn(3, CENTRES.numel())
    y, a = gaussian_pair_features(r, c, w, CENTRES.float(), GAMMA)
    phi = torch.exp(-GAMMA * (r[..., None] - CENTRES.float()) ** 2)
    torch.testing.assert_close(y, phi @ w.T, rtol=1e-6, atol=1e-30)
    torch.testing.assert_close(a, phi.sum(2), rtol=1e-6, atol=1e-30)
    (dr,) = torch.autograd.grad(y.sum() + a.sum(), r)
    assert torch.isfinite(dr).all() and dr[0, 1].abs().max() < 1e-30
