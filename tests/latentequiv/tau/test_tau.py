"""Properties of the learned tau-networks (MLPTau, HyperLinearTau, IdentityTau)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from latentequiv import SO3
from latentequiv.tau import HyperLinearTau, IdentityTau, MLPTau, Tau, group_features


def _rotations(n, seed=0, dtype=torch.float64):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _perturb(module):
    """Move every parameter away from its (possibly identity) initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


TAUS = [
    lambda D: _perturb(MLPTau(D, hidden=16).double()),
    lambda D: _perturb(MLPTau(D, hidden=16, depth=3, residual=False).double()),
    lambda D: _perturb(HyperLinearTau(D, rank=2, hidden=8).double()),
    lambda D: _perturb(HyperLinearTau(D, rank=None, hidden=8, depth=1).double()),
    lambda D: IdentityTau(),
]


@pytest.mark.parametrize("make", TAUS)
@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 4), N=st.integers(1, 5), D=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_tau_broadcasts_g_over_tokens(make, B, N, D, seed):
    """tau(g, z)[:, n] == tau(g, z[:, n]) for every token n: g[b] acts on each token of z[b] alike."""
    torch.manual_seed(seed)
    tau = make(D)
    g = _rotations(B, seed)
    z = torch.randn(B, N, D, dtype=torch.float64)
    out = tau(g, z)
    assert out.shape == (B, N, D)
    per_token = torch.stack([tau(g, z[:, n]) for n in range(N)], dim=1)
    torch.testing.assert_close(out, per_token)
    assert isinstance(tau, Tau)


@pytest.mark.parametrize("make", [lambda: MLPTau(5, hidden=8), lambda: HyperLinearTau(5, rank=2)])
def test_residual_taus_start_as_identity(make):
    tau = make()
    g = _rotations(3, dtype=torch.float32)
    z = torch.randn(3, 4, 5)
    torch.testing.assert_close(tau(g, z), z)


def test_mlp_tau_without_residual_is_not_identity_and_rejects_identity_init():
    tau = MLPTau(5, hidden=8, residual=False)
    z = torch.randn(3, 5)
    assert not torch.allclose(tau(_rotations(3, dtype=torch.float32), z), z)
    with pytest.raises(ValueError, match="identity_init"):
        MLPTau(5, residual=False, identity_init=True)


@settings(max_examples=10, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), seed=st.integers(0, 2**16))
def test_hyperlinear_tau_is_linear_in_z(a, b, seed):
    torch.manual_seed(seed)
    tau = _perturb(HyperLinearTau(4, rank=2, hidden=8).double())
    g = _rotations(2, seed)
    z1, z2 = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(tau(g, a * z1 + b * z2), a * tau(g, z1) + b * tau(g, z2))


@pytest.mark.parametrize("rank", [None, 1, 3])
def test_hyperlinear_tau_applies_its_matrix_and_the_matrix_has_its_rank(rank):
    """forward (z + U (V^T z) when low-rank) equals M(g) z; rank(M(g) - I) is the rank asked for."""
    torch.manual_seed(0)
    tau = _perturb(HyperLinearTau(6, rank=rank, hidden=8).double())
    g = _rotations(3, 1)
    z = torch.randn(3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(tau(g, z), torch.einsum("bij,bnj->bni", tau.matrix(g), z))
    torch.testing.assert_close(tau(g, z[:, 0]), torch.einsum("bij,bj->bi", tau.matrix(g), z[:, 0]))
    a = tau.matrix(g) - torch.eye(6, dtype=torch.float64)
    assert torch.linalg.matrix_rank(a).tolist() == [6 if rank is None else rank] * 3
    if rank is None:
        with pytest.raises(ValueError, match="no factors"):
            tau.factors(g)


def test_group_features_flatten_row_major_and_follow_z_dtype():
    g = torch.arange(9.0).reshape(1, 3, 3)
    f = group_features(g, torch.zeros(1, 2, 4, dtype=torch.float64))
    assert f.dtype == torch.float64
    torch.testing.assert_close(f[0, 1], torch.arange(9.0, dtype=torch.float64))


@pytest.mark.parametrize(
    ("g", "z"),
    [
        (torch.eye(3).expand(2, 3, 3), torch.zeros(3, 4)),
        (torch.eye(3), torch.zeros(3, 4)),
        (torch.eye(3).expand(2, 3, 3), torch.zeros(2, 1, 1, 4)),
    ],
)
def test_taus_reject_bad_shapes(g, z):
    for tau in (MLPTau(4), HyperLinearTau(4), IdentityTau()):
        with pytest.raises(ValueError):
            tau(g, z)


def test_extra_repr_names_the_hyperparameters():
    assert "hidden=32, depth=2, residual=True" in repr(MLPTau(16, hidden=32))
    assert "rank=4" in repr(HyperLinearTau(16, rank=4))


def _fit_planted_rotation(tau, steps, seed=0, lr=3e-3):
    """Fit tau to the planted action z -> g z on R^3; return the relative error on fresh pairs."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(tau.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        g = SO3().sample(128, generator=gen)
        z = torch.randn(128, 3, generator=gen)
        loss = (tau(g, z) - torch.einsum("bij,bj->bi", g, z)).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = SO3().sample(512, generator=gen)
    z = torch.randn(512, 3, generator=gen)
    with torch.no_grad():
        err = (tau(g, z) - torch.einsum("bij,bj->bi", g, z)).pow(2).sum(-1).mean()
    return float(err / z.pow(2).sum(-1).mean())


def test_mlp_tau_learns_a_planted_rotation_action():
    """A 2-layer MLPTau learns z -> R z (D = 3) from scratch in a few hundred Adam steps."""
    tau = MLPTau(3, hidden=64)
    untrained = _fit_planted_rotation(tau, steps=0)
    trained = _fit_planted_rotation(tau, steps=400)
    assert untrained > 0.5  # the identity is a poor guess for a random rotation
    assert trained < 0.05


def test_hyperlinear_tau_learns_a_planted_rotation_action_exactly():
    """With an affine hypernetwork (depth 1) the planted action z -> R z is in the model class."""
    tau = HyperLinearTau(3, rank=None, depth=1)
    assert _fit_planted_rotation(tau, steps=300, lr=3e-2) < 1e-3


@pytest.mark.parametrize("tau", [MLPTau(4, hidden=8), HyperLinearTau(4, rank=2, hidden=8)])
def test_gradients_reach_every_tau_parameter(tau):
    g = _rotations(3, dtype=torch.float32)
    z = torch.randn(3, 2, 4, requires_grad=True)
    # one step away from the identity init so that every layer receives gradient
    (tau(g, z) - z.flip(-1)).pow(2).sum().backward()
    torch.optim.SGD(tau.parameters(), lr=0.1).step()
    tau.zero_grad()
    z.grad = None
    (tau(g, z) - z.flip(-1)).pow(2).sum().backward()
    for name, p in tau.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert z.grad.abs().sum() > 0


def test_mlp_tau_activation_is_configurable():
    tau = MLPTau(4, hidden=8, depth=3, activation=nn.Tanh)
    assert sum(isinstance(m, nn.Tanh) for m in tau.modules()) == 2
    assert sum(isinstance(m, nn.Linear) for m in tau.modules()) == 3
