"""RepresentationTau is an exact group action, with or without a learned orthonormal basis."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv import SO3
from latentequiv.representations import Irreps
from latentequiv.tau import RepresentationTau

IRREPS = ["3x0", "2x1", "1x0 + 1x1 + 1x2", "2x0 + 1x1 + 2x2 + 1x3"]


def _rotations(n, seed=0):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _random_basis(tau, seed):
    """Move the learned basis Q to a random orthogonal matrix (through its parametrisation)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in tau.parameters():
            p.add_(torch.randn_like(p))
    return tau


@pytest.mark.parametrize("learn_basis", [False, True])
@pytest.mark.parametrize("irreps", IRREPS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), N=st.integers(1, 3))
def test_tau_is_a_group_action(irreps, learn_basis, seed, N):
    """tau(g, tau(h, z)) == tau(gh, z), tau(I, z) == z, and norms are preserved."""
    tau = RepresentationTau(irreps, learn_basis=learn_basis).double()
    if learn_basis:
        _random_basis(tau, seed)
    g, h = _rotations(4, seed), _rotations(4, seed + 1)
    z = torch.randn(4, N, tau.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(tau(g, tau(h, z)), tau(g @ h, z))
    torch.testing.assert_close(tau(torch.eye(3, dtype=torch.float64).expand(4, 3, 3), z), z)
    torch.testing.assert_close(tau(g, z).norm(dim=-1), z.norm(dim=-1))


def test_tau_is_the_block_diagonal_wigner_representation():
    irreps = Irreps("2x0 + 1x1 + 1x2")
    tau = RepresentationTau(irreps)
    g = _rotations(3)
    z = torch.randn(3, 5, irreps.dim, dtype=torch.float64)
    expected = torch.einsum("bij,bnj->bni", irreps.D(g), z)
    torch.testing.assert_close(tau(g, z), expected)
    # the l = 1 block is the rotation itself
    torch.testing.assert_close(tau(g, z)[..., 2:5], z[..., 2:5] @ g.transpose(-1, -2))


def test_improper_elements_act_through_parity():
    tau = RepresentationTau("1x0e + 1x0o + 1x1o + 1x1e")
    g = -_rotations(2)  # det = -1
    z = torch.randn(2, 8, dtype=torch.float64)
    out = tau(g, z)
    torch.testing.assert_close(out[:, 0], z[:, 0])
    torch.testing.assert_close(out[:, 1], -z[:, 1])
    torch.testing.assert_close(out[:, 2:5], torch.einsum("bij,bj->bi", g, z[:, 2:5]))
    torch.testing.assert_close(out[:, 5:8], -torch.einsum("bij,bj->bi", g, z[:, 5:8]))


def test_learned_basis_starts_at_identity_and_stays_orthogonal():
    tau = RepresentationTau("1x0 + 1x1 + 1x2", learn_basis=True).double()
    g, z = _rotations(3), torch.randn(3, 9, dtype=torch.float64)
    torch.testing.assert_close(tau(g, z), RepresentationTau("1x0 + 1x1 + 1x2")(g, z))
    _random_basis(tau, 0)
    q = tau.basis.weight
    torch.testing.assert_close(q @ q.T, torch.eye(9, dtype=torch.float64))
    assert not torch.allclose(q, torch.eye(9, dtype=torch.float64), atol=1e-2)
    torch.testing.assert_close(tau.matrix(g), q.T @ Irreps("1x0 + 1x1 + 1x2").D(g) @ q)


def test_learned_basis_recovers_a_planted_change_of_basis():
    """Embeddings carry rho in an unknown orthonormal basis P; fitting Q makes the action exact."""
    irreps = "2x0 + 1x1"
    gen = torch.Generator().manual_seed(0)
    p, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    if torch.linalg.det(p) < 0:
        p = p * torch.tensor([-1.0, 1, 1, 1, 1], dtype=torch.float64)
    planted = p.T @ Irreps(irreps).D(_rotations(1)) @ p
    tau = RepresentationTau(irreps, learn_basis=True).double()
    opt = torch.optim.Adam(tau.parameters(), lr=0.05)
    for step in range(300):
        g = SO3().sample(32, generator=gen, dtype=torch.float64)
        z = torch.randn(32, 5, generator=gen, dtype=torch.float64)
        target = torch.einsum("bij,bj->bi", p.T @ Irreps(irreps).D(g) @ p, z)
        loss = (tau(g, z) - target).pow(2).sum(-1).mean()
        if step == 0:
            first = float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 0.5
    assert float(loss.detach()) < 1e-6
    with torch.no_grad():
        torch.testing.assert_close(tau.matrix(_rotations(1)), planted, atol=1e-4, rtol=0)


def test_width_mismatch_and_repr():
    tau = RepresentationTau("2x1", learn_basis=True)
    with pytest.raises(ValueError, match="width"):
        tau(torch.eye(3).expand(2, 3, 3), torch.zeros(2, 5))
    assert "irreps=2x1o, learn_basis=True" in repr(tau)
    assert tau.dim == 6


@pytest.mark.parametrize("learn_basis", [False, True])
def test_forward_applies_the_matrix_block_by_block(learn_basis):
    """forward (Q^T rho(g) Q z without building matrices) equals matrix(g) @ z, packed and tokens."""
    tau = _random_basis(RepresentationTau("3x0 + 2x1 + 2x2", learn_basis=learn_basis).double(), 3)
    g = _rotations(5, seed=4)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(5, tau.dim, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(tau(g, z), torch.einsum("bij,bj->bi", tau.matrix(g), z))
    tokens = torch.randn(5, 3, tau.dim, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(tau(g, tokens), torch.einsum("bij,bnj->bni", tau.matrix(g), tokens))
