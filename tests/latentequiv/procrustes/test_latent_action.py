"""Fitted latent actions, representation consistency and irreps estimation on planted representations.

The planted encoders are built here from l = 0 (norms), l = 1 (the vectors themselves) and l = 2
(symmetric traceless matrices ``x x^T - |x|^2 I / 3``, on which ``g`` acts by conjugation), all seen
through a random orthogonal change of basis so that nothing is block-diagonal by accident.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from latentequiv.groups import SO3
from latentequiv.procrustes import (
    DiagnosticWarning,
    estimate_irreps,
    fit_latent_action,
    representation_consistency,
    rotation_angle,
    so3_characters,
)
from latentequiv.representations import Irreps

FAST = settings(max_examples=15, deadline=None)


def traceless_basis():
    """(5, 3, 3) orthonormal basis of symmetric traceless matrices (Frobenius inner product)."""
    mats = []
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        m = torch.zeros(3, 3, dtype=torch.float64)
        m[i, j] = m[j, i] = 1 / math.sqrt(2)
        mats.append(m)
    mats.append(torch.diag(torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)) / math.sqrt(2))
    mats.append(torch.diag(torch.tensor([1.0, 1.0, -2.0], dtype=torch.float64)) / math.sqrt(6))
    return torch.stack(mats)


def quadrupole(g):
    """The l = 2 irrep: (B, 5, 5) matrices of S -> g S g^T in the traceless basis."""
    e = traceless_basis()
    moved = torch.einsum("bij,kjl,bml->bkim", g, e, g)  # g E_k g^T
    return torch.einsum("jim,bkim->bjk", e, moved)


def planted(g, multiplicities):
    """Block diag of m_0 copies of 1, m_1 of g, m_2 of quadrupole(g): (B, D, D)."""
    blocks = [torch.ones(g.shape[0], 1, 1, dtype=g.dtype)] * multiplicities[0]
    blocks += [g] * multiplicities[1] + [quadrupole(g)] * multiplicities[2]
    dim = sum(b.shape[-1] for b in blocks)
    out = torch.zeros(g.shape[0], dim, dim, dtype=g.dtype)
    start = 0
    for b in blocks:
        stop = start + b.shape[-1]
        out[:, start:stop, start:stop] = b
        start = stop
    return out


def random_orthogonal(n, seed):
    q, _ = torch.linalg.qr(
        torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


class IrrepEncoder(nn.Module):
    """(B, N, 3) -> (B, N, 9) features 1x0 + 1x1 + 1x2 in a scrambled orthogonal basis."""

    def __init__(self, seed=0):
        super().__init__()
        self.register_buffer("basis", random_orthogonal(9, seed))

    def forward(self, x):
        outer = x[..., :, None] * x[..., None, :]  # (B, N, 3, 3)
        quad = torch.einsum("...ij,kij->...k", outer, traceless_basis().to(x.dtype))
        feats = torch.cat([x.norm(dim=-1, keepdim=True), x, quad], dim=-1)  # (B, N, 9)
        return feats @ self.basis.to(x.dtype)


def test_quadrupole_is_an_orthogonal_representation():
    g, h = SO3().sample(2, dtype=torch.float64), SO3().sample(2, dtype=torch.float64)
    d = quadrupole(g)
    assert torch.allclose(
        d @ d.transpose(1, 2), torch.eye(5, dtype=torch.float64).expand(2, 5, 5), atol=1e-12
    )
    assert torch.allclose(quadrupole(g @ h), d @ quadrupole(h), atol=1e-12)


def test_fit_recovers_the_planted_action_and_it_is_a_representation():
    gen = torch.Generator().manual_seed(0)
    encoder = IrrepEncoder()
    x = torch.randn(4, 8, 3, generator=gen, dtype=torch.float64)
    g, h = (
        SO3().sample(6, generator=gen, dtype=torch.float64),
        SO3().sample(6, generator=gen, dtype=torch.float64),
    )
    fits = [fit_latent_action(encoder, x, elements) for elements in (g, h, g @ h)]
    basis = encoder.basis
    expected = basis.T @ planted(g, (1, 1, 1)) @ basis
    assert torch.allclose(fits[0].action, expected, atol=1e-9)
    assert fits[0].rel_residual.max() < 1e-12 and fits[0].n_rows == 32
    report = representation_consistency(*fits)
    assert report.rel_max < 1e-10 and report.n == 6
    assert report.element_mismatch < 1e-12
    assert estimate_irreps(fits[0].action, g, max_l=3).multiplicities == (1, 1, 1, 0)


def test_non_equivariant_encoder_has_large_residual_and_inconsistent_maps():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 6))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 8, 3, generator=gen)
    g, h = (
        SO3().sample(4, generator=gen, dtype=torch.float64),
        SO3().sample(4, generator=gen, dtype=torch.float64),
    )
    fits = [fit_latent_action(encoder, x, elements) for elements in (g, h, g @ h)]
    assert fits[0].rel_residual.min() > 0.05
    assert representation_consistency(*fits).rel_mean > 0.05
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


def test_random_orthogonal_maps_are_far_from_a_representation():
    maps = torch.stack([random_orthogonal(9, s) for s in range(30)])
    report = representation_consistency(maps[:10], maps[10:20], maps[20:])
    assert report.rel_mean == pytest.approx(math.sqrt(2), rel=0.25)
    assert math.isnan(report.element_mismatch)
    assert "triples" in str(report)


@FAST
@given(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)).filter(lambda m: sum(m) > 0),
    st.integers(0, 2**31),
)
def test_estimate_irreps_recovers_planted_multiplicities(multiplicities, seed):
    g = SO3().sample(64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rep = planted(g, multiplicities)
    basis = random_orthogonal(rep.shape[-1], seed + 1)
    estimate = estimate_irreps(basis.T @ rep @ basis, g, max_l=4)
    assert estimate.multiplicities == (*multiplicities, 0, 0)
    assert estimate.residual < 1e-10
    assert estimate.explained_dim == estimate.dim
    assert max(abs(e - m) for e, m in zip(estimate.estimates, estimate.multiplicities, strict=True)) < 1e-8


def test_haar_projection_estimates_multiplicities():
    g = SO3().sample(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    estimate = estimate_irreps(planted(g, (2, 1, 1)), g, max_l=3)
    assert estimate.projection == pytest.approx((2, 1, 1, 0), abs=0.15)


def test_content_beyond_max_l_shows_as_residual():
    g = SO3().sample(64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    estimate = estimate_irreps(planted(g, (0, 0, 1)), g, max_l=1)
    assert estimate.residual > 0.1
    assert estimate.explained_dim != estimate.dim


def test_characters_match_the_sine_formula():
    t = torch.linspace(0.1, math.pi, 50, dtype=torch.float64)
    chars = so3_characters(t, 4)
    for l in range(5):
        assert torch.allclose(chars[:, l], torch.sin((2 * l + 1) * t / 2) / torch.sin(t / 2), atol=1e-12)


def test_rotation_angle_of_axis_rotations():
    angles = torch.tensor([0.0, 0.3, 2.0, math.pi], dtype=torch.float64)
    c, s = torch.cos(angles), torch.sin(angles)
    r = torch.zeros(4, 3, 3, dtype=torch.float64)
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1], r[:, 2, 2] = c, -s, s, c, 1
    assert torch.allclose(rotation_angle(r), angles, atol=1e-7)


@FAST
@given(st.lists(st.integers(0, 2), min_size=5, max_size=5).filter(any), st.integers(0, 2**31))
def test_estimate_irreps_recovers_wigner_d_multiplicities_up_to_l4(multiplicities, seed):
    """Planted with latentequiv.representations: block diag of Wigner-D matrices, l = 0..4."""
    g = SO3().sample(96, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    irreps = Irreps([(m, l) for l, m in enumerate(multiplicities) if m])
    basis = random_orthogonal(irreps.dim, seed + 1)
    estimate = estimate_irreps(basis.T @ irreps.D(g) @ basis, g, max_l=6)
    assert estimate.multiplicities == (*multiplicities, 0, 0)
    assert estimate.residual < 1e-9


# --- The three ground truths of issue 12: fits on the data's subspace, linear beside orthogonal ---


def _features(x):
    """Per-point 4x0 + 2x1 + 1x2 (15 numbers) of (B, N, 3) points."""
    r = x.norm(dim=-1, keepdim=True)
    outer = x[..., :, None] * x[..., None, :]
    quad = torch.einsum("...ij,kij->...k", outer, traceless_basis().to(x.dtype))
    return torch.cat([r, r**2, torch.exp(-r), torch.cos(r), x, x * torch.tanh(r), quad], dim=-1)


def _three_fits(encoder, x, seed=0, **kwargs):
    gen = torch.Generator().manual_seed(seed)
    g, h = (SO3().sample(8, generator=gen, dtype=torch.float64) for _ in range(2))
    return [fit_latent_action(encoder, x, e, **kwargs) for e in (g, h, g @ h)]


def _cloud(b=6, n=8, seed=1):
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_equivariant_latent_in_a_non_orthonormal_basis_is_found_by_the_linear_fit():
    gen = torch.Generator().manual_seed(5)
    mix = torch.randn(15, 15, generator=gen, dtype=torch.float64) + 3 * torch.eye(15, dtype=torch.float64)
    fits = _three_fits(lambda p: _features(p) @ mix, _cloud())
    assert fits[0].rel_residual.min() > 0.01  # no orthogonal map explains it
    assert fits[0].linear_rel_residual.max() < 1e-10  # a linear one does
    assert representation_consistency(*fits, linear=True).rel_max < 1e-8
    assert representation_consistency(*fits).rel_mean > 0.01
    estimate = estimate_irreps(fits[0], max_l=3, linear=True)
    assert estimate.multiplicities == (4, 2, 1, 0) and estimate.residual < 1e-8
    assert "linear mean" in str(fits[0])


def test_rank_six_second_moment_in_nine_dimensions():
    """z = vec(mean_i x_i x_i^T): symmetric, so it spans 6 of 9 dimensions, 1x0 + 1x2."""

    def second_moment(p):
        return torch.einsum("bni,bnj->bij", p, p).reshape(p.shape[0], 9) / p.shape[1]

    x = _cloud(b=40)
    with pytest.warns(DiagnosticWarning, match="span 6 of 9"):
        fits = _three_fits(second_moment, x)
    assert fits[0].rank == 6 and fits[0].rel_residual.max() < 1e-10
    assert representation_consistency(*fits).rel_max < 1e-8
    estimate = estimate_irreps(fits[0], max_l=3)
    assert estimate.multiplicities == (1, 0, 1, 0)
    assert estimate.dim == estimate.explained_dim == 6


def test_dead_units_are_left_out_of_the_irreps():
    """4x0 + 2x1 + 1x2 in 15 of 24 units (the others always 0), scrambled by an orthogonal map."""
    basis = random_orthogonal(24, 7)

    def encoder(p):
        z = _features(p)
        return torch.cat([z, torch.zeros(*z.shape[:-1], 9, dtype=z.dtype)], dim=-1) @ basis

    with pytest.warns(DiagnosticWarning, match="span 15 of 24"):
        fits = _three_fits(encoder, _cloud())
    assert fits[0].rank == 15 and fits[0].rel_residual.max() < 1e-10
    assert representation_consistency(*fits).rel_max < 1e-8
    estimate = estimate_irreps(fits[0], max_l=3)
    assert estimate.multiplicities == (4, 2, 1, 0) and estimate.dim == 15


@pytest.mark.filterwarnings("ignore:the embeddings span")
def test_too_few_rows_for_the_width_warn():
    torch.manual_seed(0)
    encoder = nn.Linear(3, 64).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    g = SO3().sample(2, dtype=torch.float64)
    with pytest.warns(DiagnosticWarning, match="8 embeddings"):
        fit = fit_latent_action(encoder, x, g, rank=8)
    assert fit.rank == 8


def test_enough_rows_at_full_rank_do_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fits = _three_fits(IrrepEncoder(), _cloud())
    assert fits[0].rank == 9 and representation_consistency(*fits).rel_max < 1e-10


def test_explicit_rank_and_bad_rank():
    x = _cloud()
    fit = fit_latent_action(IrrepEncoder(), x, SO3().sample(2, dtype=torch.float64), rank=9)
    assert fit.rank == 9 and fit.width == 9
    with pytest.raises(ValueError, match="rank"):
        fit_latent_action(lambda p: torch.zeros(*p.shape[:-1], 4, dtype=p.dtype), x, SO3().sample(1))
