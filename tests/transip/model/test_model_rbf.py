"""Gaussian radial basis, cosine cutoff and twice-differentiable pair distances."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.model import AttentionLayout, RadialBasis, cosine_cutoff, gaussian_rbf, pair_distances

F64 = torch.float64


@settings(max_examples=50, deadline=None)
@given(r=st.floats(0.0, 10.0), k=st.integers(2, 64))
def test_gaussian_rbf_peaks_at_its_centre(r, k):
    centres = torch.linspace(0, 6.0, k, dtype=F64)
    phi = gaussian_rbf(torch.tensor(r, dtype=F64), centres, gamma=2.0)
    assert phi.shape == (k,)
    assert bool(((phi > 0) & (phi <= 1)).all())
    nearest = (centres - r).abs().argmin()
    assert int(phi.argmax()) == int(nearest)


def test_cosine_cutoff_shape():
    r = torch.tensor([0.0, 3.0, 6.0, 7.0], dtype=F64)
    torch.testing.assert_close(cosine_cutoff(r, 6.0), torch.tensor([1.0, 0.5, 0.0, 0.0], dtype=F64))
    # smooth at the cutoff: zero slope from inside
    x = torch.tensor(6.0 - 1e-6, dtype=F64, requires_grad=True)
    (slope,) = torch.autograd.grad(cosine_cutoff(x, 6.0), x)
    assert abs(float(slope)) < 1e-5


def test_pair_distances_twice_differentiable_without_nan():
    pos = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0]]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[True, True, False]])  # the padded slot sits on top of atom 0
    r, pairs = pair_distances(pos, mask)
    assert pairs.tolist() == [[[False, True, False], [True, False, False], [False, False, False]]]
    torch.testing.assert_close(r[0, 0, 1], torch.tensor(1.0, dtype=F64))
    (g,) = torch.autograd.grad((r**2).sum() + r.sum(), pos, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), pos)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()


def test_atom_features_sum_over_other_atoms_only():
    # two molecules: a pair at distance 1 and a lone atom (no neighbours: zero features)
    rbf = RadialBasis(8, 6.0).to(F64)
    positions = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 5, 5]], dtype=F64)
    layout = AttentionLayout.from_ptr(torch.tensor([0, 2, 3]), growth=math.inf)
    pair_phi, atom_phi = rbf(positions, layout)
    expect = gaussian_rbf(torch.tensor(1.0, dtype=F64), rbf.centres, rbf.gamma) * cosine_cutoff(
        torch.tensor(1.0, dtype=F64), 6.0
    )
    torch.testing.assert_close(atom_phi[0], expect)
    torch.testing.assert_close(atom_phi[1], expect)
    assert torch.equal(atom_phi[2], torch.zeros(8, dtype=F64))
    assert pair_phi[0].shape == (2, 2, 2, 8)


@pytest.mark.parametrize("dense_limit", [0, 1 << 22])  # the memory-lean path, the plain formula
def test_neighbour_sums_equal_the_dense_formula_and_are_rotation_invariant(monkeypatch, dense_limit):
    """``A_isk = sum_{j != i} e_s(j) fc(r_ij) phi_k(r_ij)``: per molecule, whatever the batching."""
    from transip.model import _rbf

    monkeypatch.setattr(_rbf, "DENSE_NEIGHBOUR_ELEMENTS", dense_limit)
    torch.manual_seed(0)
    rbf = RadialBasis(12, 5.0).double()
    sizes = (5, 9, 3)
    positions = [torch.randn(n, 3, dtype=torch.float64) * 1.5 for n in sizes]
    layout = AttentionLayout.from_offsets([0, 5, 14, 17])
    e = torch.randn(17, 3, dtype=torch.float64)
    empty = torch.zeros(0, 12, dtype=torch.float64)
    _, _, got, _ = rbf.projected(torch.cat(positions), layout, empty, e)  # (T, S, K)
    start = 0
    for pos in positions:
        n = pos.shape[0]
        r = torch.cdist(pos, pos)
        w = cosine_cutoff(r, 5.0) * (1 - torch.eye(n, dtype=torch.float64))
        ref = torch.einsum("ij,ijk,js->isk", w, gaussian_rbf(r, rbf.centres, rbf.gamma), e[start : start + n])
        torch.testing.assert_close(got[start : start + n], ref, atol=1e-12, rtol=1e-12)
        start += n
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    _, _, turned, _ = rbf.projected(torch.cat(positions) @ rotation.T, layout, empty, e)
    torch.testing.assert_close(turned, got, atol=1e-12, rtol=1e-12)


def test_angular_features_are_invariant_and_see_angles_that_distances_to_i_miss():
    """Rotations and translations leave G unchanged; bending a bond angle at ``i`` (same bond
    lengths, so every r_ij of atom i is unchanged) changes atom i's features."""
    from transip.model._angular import AngularFeatures

    torch.manual_seed(0)
    rbf = RadialBasis(8, 5.0).double()
    ang = AngularFeatures(8, 2, 3, 16).double()
    layout = AttentionLayout.from_offsets([0, 3])
    e = torch.randn(3, 2, dtype=torch.float64)

    def water(theta: float) -> torch.Tensor:  # atom 0 in the middle, bonds of 1 Å
        return torch.tensor(
            [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [math.cos(theta), math.sin(theta), 0.0]], dtype=torch.float64
        )

    empty = torch.zeros(0, 8, dtype=torch.float64)

    def features(positions):  # (T, D), through the bucket pass that computes the Gaussians once
        return ang(rbf.projected(positions, layout, empty, e, ang)[3])

    base = features(water(1.8))
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    moved = features(water(1.8) @ rotation.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(moved, base, atol=1e-12, rtol=1e-12)
    bent = features(water(2.2))
    assert (bent[0] - base[0]).abs().max() > 1e-4
