"""latent_equivariance_loss: formula, masking, reductions, and the shrinking shortcut."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from latentequiv import SO3
from latentequiv.losses import latent_equivariance_loss
from latentequiv.tau import HyperLinearTau, IdentityTau, MLPTau


def _rotations(n, seed=0, dtype=torch.float64):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _perturbed(tau):
    with torch.no_grad():
        for p in tau.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return tau.double()


def _ragged(B, N, seed):
    """Token embeddings with a random valid-prefix mask (at least one valid token per sample)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, N + 1, (B,), generator=gen)
    mask = torch.arange(N)[None, :] < lengths[:, None]  # (B, N)
    return mask, gen


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 4), N=st.integers(1, 6), D=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_masked_loss_equals_per_sample_mean_over_valid_tokens(B, N, D, seed):
    """Sum over D, mean over each sample's valid tokens, then mean over the batch."""
    torch.manual_seed(seed)
    tau = _perturbed(MLPTau(D, hidden=8))
    mask, gen = _ragged(B, N, seed)
    z = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    zt = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    g = _rotations(B, seed)
    per_sample = torch.stack(
        [
            (tau(g[b : b + 1], z[b : b + 1, mask[b]]) - zt[b : b + 1, mask[b]]).pow(2).sum(-1).mean()
            for b in range(B)
        ]
    )
    none = latent_equivariance_loss(tau, z, zt, g, mask=mask, reduction="none")
    torch.testing.assert_close(none, per_sample)
    torch.testing.assert_close(latent_equivariance_loss(tau, z, zt, g, mask=mask), per_sample.mean())
    torch.testing.assert_close(
        latent_equivariance_loss(tau, z, zt, g, mask=mask, reduction="sum"), per_sample.sum()
    )


def test_unmasked_pooled_loss_is_the_mean_squared_error_norm():
    tau = _perturbed(HyperLinearTau(4, rank=2, hidden=8))
    g = _rotations(5)
    z, zt = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    expected = (tau(g, z) - zt).pow(2).sum(-1).mean()
    torch.testing.assert_close(latent_equivariance_loss(tau, z, zt, g), expected)
    # without a mask, tokens are all valid: the same as a mask of ones
    z3, zt3 = z[:, None].expand(5, 3, 4), zt[:, None].expand(5, 3, 4)
    ones = torch.ones(5, 3, dtype=torch.bool)
    torch.testing.assert_close(latent_equivariance_loss(tau, z3, zt3, g), expected)
    torch.testing.assert_close(latent_equivariance_loss(tau, z3, zt3, g, mask=ones), expected)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("padding", [float("nan"), 1e30, -7.0])
def test_padding_values_affect_neither_loss_nor_gradients(normalize, padding):
    torch.manual_seed(0)
    tau = _perturbed(MLPTau(3, hidden=8))
    mask, gen = _ragged(4, 5, seed=1)
    z = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    zt = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    g = _rotations(4)

    def run(fill):
        a = z.masked_fill(~mask[..., None], fill).requires_grad_()
        b = zt.masked_fill(~mask[..., None], fill).requires_grad_()
        tau.zero_grad()
        loss = latent_equivariance_loss(tau, a, b, g, mask=mask, normalize=normalize)
        loss.backward()
        return loss, a.grad, b.grad, [p.grad.clone() for p in tau.parameters()]

    clean, dirty = run(0.0), run(padding)
    torch.testing.assert_close(dirty[0], clean[0])
    for x, y in zip(dirty[1:3], clean[1:3], strict=True):
        torch.testing.assert_close(x, y)
        assert bool((x[~mask] == 0).all())
    for x, y in zip(dirty[3], clean[3], strict=True):
        torch.testing.assert_close(x, y)


def test_sample_without_valid_tokens_gives_zero_and_is_left_out_of_the_mean():
    tau = IdentityTau()
    z = torch.randn(3, 4, 2, dtype=torch.float64)
    zt = torch.randn(3, 4, 2, dtype=torch.float64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    none = latent_equivariance_loss(tau, z, zt, _rotations(3), mask=mask, reduction="none")
    assert none[1] == 0
    mean = latent_equivariance_loss(tau, z, zt, _rotations(3), mask=mask)
    torch.testing.assert_close(mean, (none[0] + none[2]) / 2)


def test_bad_arguments_raise():
    z, g = torch.zeros(2, 3, 4), _rotations(2, dtype=torch.float32)
    with pytest.raises(ValueError, match="reduction"):
        latent_equivariance_loss(IdentityTau(), z, z, g, reduction="max")
    with pytest.raises(ValueError, match="differ"):
        latent_equivariance_loss(IdentityTau(), z, z[:, :2], g)
    with pytest.raises(ValueError, match="mask"):
        latent_equivariance_loss(IdentityTau(), z, z, g, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask"):
        latent_equivariance_loss(IdentityTau(), z[:, 0], z[:, 0], g, mask=torch.ones(2, 3, dtype=torch.bool))


class _ScaledEncoder(nn.Module):
    """A fixed random (non-equivariant) MLP whose output is multiplied by a learnable scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 6)).double()
        self.mlp.requires_grad_(False)
        self.log_scale = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.mlp(x) * self.log_scale.exp()


def _train_scale(tau, normalize, steps=200):
    enc = _ScaledEncoder()
    opt = torch.optim.Adam(enc.parameters(), lr=0.1, betas=(0.9, 0.9))
    x = torch.randn(32, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = _rotations(32)
    losses = []
    for _ in range(steps):
        loss = latent_equivariance_loss(tau, enc(x), enc(SO3.act(g, x)), g, normalize=normalize)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_raw_loss_is_won_by_shrinking_but_normalized_loss_is_not():
    """The shrinking shortcut: a scale-only encoder drives the raw loss to ~0, not the normalised one."""
    tau = _perturbed(HyperLinearTau(6, rank=2, hidden=8))  # linear in z, not a valid action
    raw = _train_scale(tau, normalize=False)
    assert raw[0] > 0.1 and raw[-1] < 1e-4 * raw[0]
    normalized = _train_scale(tau, normalize=True)
    assert normalized[0] > 0.1
    assert min(normalized) > (1 - 1e-9) * normalized[0]


@settings(max_examples=20, deadline=None)
@given(log_c=st.floats(-6, 6))
def test_normalized_loss_is_invariant_to_rescaling_for_a_linear_tau(log_c):
    tau = _perturbed(HyperLinearTau(4, rank=2, hidden=8))
    g = _rotations(6)
    z, zt = torch.randn(6, 3, 4, dtype=torch.float64), torch.randn(6, 3, 4, dtype=torch.float64)
    c = math.exp(log_c)
    base = latent_equivariance_loss(tau, z, zt, g, normalize=True)
    torch.testing.assert_close(latent_equivariance_loss(tau, c * z, c * zt, g, normalize=True), base)
    torch.testing.assert_close(
        latent_equivariance_loss(tau, c * z, c * zt, g), c**2 * latent_equivariance_loss(tau, z, zt, g)
    )


def test_shrinking_does_not_pay_with_a_nonlinear_tau_when_normalized():
    torch.manual_seed(0)
    tau = _perturbed(MLPTau(4, hidden=8, residual=False))
    g = _rotations(6)
    z, zt = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    base = latent_equivariance_loss(tau, z, zt, g, normalize=True)
    for c in (1e-1, 1e-3, 1e-6):
        assert latent_equivariance_loss(tau, c * z, c * zt, g, normalize=True) > base
        assert latent_equivariance_loss(tau, c * z, c * zt, g) < latent_equivariance_loss(tau, z, zt, g) * 10
