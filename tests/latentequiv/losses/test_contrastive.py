"""contrastive_latent_loss: a true InfoNCE with in-batch negatives."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv import SO3
from latentequiv.losses import contrastive_latent_loss
from latentequiv.tau import HyperLinearTau, IdentityTau, MLPTau


def _rotations(n, seed=0, dtype=torch.float64):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _tau(D, seed=0):
    torch.manual_seed(seed)
    tau = HyperLinearTau(D, rank=2, hidden=8).double()
    with torch.no_grad():
        for p in tau.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return tau


@pytest.mark.parametrize("B", [1, 2, 7])
@pytest.mark.parametrize("fill", [0.0, 3.0])
def test_uninformative_embeddings_give_log_batch_size(B, fill):
    z = torch.full((B, 5), fill, dtype=torch.float64)
    loss = contrastive_latent_loss(IdentityTau(), z, z, _rotations(B))
    assert math.isclose(float(loss), math.log(B), abs_tol=1e-12)


@settings(max_examples=20, deadline=None)
@given(B=st.integers(2, 8), seed=st.integers(0, 2**16), temperature=st.floats(0.05, 2.0))
def test_the_true_pairing_minimises_the_loss_over_all_pairings(B, seed, temperature):
    """With z^g = tau(g, z) exactly, re-pairing the positives by any permutation raises the loss."""
    gen = torch.Generator().manual_seed(seed)
    tau = _tau(6, seed)
    g = _rotations(B, seed)
    z = torch.randn(B, 6, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        zt = tau(g, z)
        true = contrastive_latent_loss(tau, z, zt, g, temperature=temperature)
        perm = torch.randperm(B, generator=gen)
        while bool((perm == torch.arange(B)).all()):
            perm = torch.randperm(B, generator=gen)
        shuffled = contrastive_latent_loss(tau, z, zt[perm], g, temperature=temperature)
    assert true < shuffled
    assert true < math.log(B)


def test_matches_explicit_cross_entropy_over_cosine_similarities():
    gen = torch.Generator().manual_seed(3)
    tau = _tau(4)
    g = _rotations(5)
    z, zt = (
        torch.randn(5, 4, generator=gen, dtype=torch.float64),
        torch.randn(5, 4, generator=gen, dtype=torch.float64),
    )
    p = tau(g, z)
    s = torch.nn.functional.cosine_similarity(p[:, None, :], zt[None, :, :], dim=-1) / 0.2  # (B, B)
    expected = -(s.diagonal() - s.logsumexp(dim=1)).mean()
    torch.testing.assert_close(contrastive_latent_loss(tau, z, zt, g, temperature=0.2), expected)


def test_tokens_are_mean_pooled_over_valid_tokens_after_tau_and_padding_is_ignored():
    gen = torch.Generator().manual_seed(4)
    tau = _tau(3)
    g = _rotations(4)
    z, zt = (
        torch.randn(4, 5, 3, generator=gen, dtype=torch.float64),
        torch.randn(4, 5, 3, generator=gen, dtype=torch.float64),
    )
    mask = torch.tensor(
        [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool
    )
    pooled_p = torch.stack([tau(g[b : b + 1], z[b : b + 1, mask[b]]).mean(1)[0] for b in range(3)])
    pooled_q = torch.stack([zt[b, mask[b]].mean(0) for b in range(3)])
    s = pooled_p @ pooled_q.T / (pooled_p.norm(dim=-1)[:, None] * pooled_q.norm(dim=-1)[None, :]) / 0.1
    expected = -(s.diagonal() - s.logsumexp(dim=1)).mean()  # the empty sample 3 is dropped
    loss = contrastive_latent_loss(tau, z, zt, g, mask=mask)
    torch.testing.assert_close(loss, expected)
    dirty = contrastive_latent_loss(
        tau,
        z.masked_fill(~mask[..., None], float("nan")),
        zt.masked_fill(~mask[..., None], 1e9),
        g,
        mask=mask,
    )
    torch.testing.assert_close(dirty, loss)
    # the empty sample is masked, not dropped: its gradient is zero, the others' finite
    zg = z.clone().requires_grad_(True)
    contrastive_latent_loss(tau, zg, zt, g, mask=mask).backward()
    assert torch.isfinite(zg.grad).all() and not zg.grad[3].any() and zg.grad[0].any()


def test_gradients_reach_embeddings_and_tau():
    tau = MLPTau(4, hidden=8, residual=False).double()
    g = _rotations(6)
    z = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
    contrastive_latent_loss(tau, z, zt, g).backward()
    assert z.grad.abs().sum() > 0 and zt.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tau.parameters())


def test_bad_temperature_raises():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="temperature"):
        contrastive_latent_loss(IdentityTau(), z, z, _rotations(2, dtype=torch.float32), temperature=0.0)
