"""LatentEquivariance: sampling, transforming, encoding both views, and scoring them."""

import pytest
import torch
from torch import nn

from latentequiv import SO3
from latentequiv.losses import (
    LatentEquivariance,
    LatentEquivarianceOutput,
    contrastive_latent_loss,
    latent_equivariance_loss,
)
from latentequiv.tau import IdentityTau, MLPTau


class _TokenEncoder(nn.Module):
    """Per-point MLP (B, N, 3) -> (B, N, D); respects a mask by zeroing padding tokens."""

    def __init__(self, D=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, D))

    def forward(self, x, mask=None):
        z = self.net(x)
        return z if mask is None else z * mask[..., None]


class _Trunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh())
        self.head = nn.Linear(8, 1)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def test_output_carries_loss_embeddings_and_group_elements():
    torch.manual_seed(0)
    enc, tau = _TokenEncoder(), MLPTau(8, hidden=8, residual=False)
    step = LatentEquivariance(enc, tau, SO3())
    x = torch.randn(5, 4, 3)
    out = step(x, generator=torch.Generator().manual_seed(1))
    assert isinstance(out, LatentEquivarianceOutput)
    assert out.z.shape == out.z_transformed.shape == (5, 4, 8)
    assert out.g.shape == (5, 3, 3) and out.g.dtype == x.dtype
    torch.testing.assert_close(out.z, enc(x))
    torch.testing.assert_close(out.z_transformed, enc(SO3.act(out.g, x)))
    torch.testing.assert_close(out.loss, latent_equivariance_loss(tau, out.z, out.z_transformed, out.g))
    again = step(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.g, out.g)


def test_one_group_element_per_sample():
    step = LatentEquivariance(_TokenEncoder(), IdentityTau(), SO3())
    g = step(torch.randn(6, 2, 3), generator=torch.Generator().manual_seed(0)).g
    assert not torch.allclose(g[0], g[1])
    torch.testing.assert_close(g @ g.transpose(-1, -2), torch.eye(3).expand(6, 3, 3), atol=1e-5, rtol=0)


def test_mask_reaches_encoder_and_loss():
    torch.manual_seed(0)
    enc = _TokenEncoder()
    step = LatentEquivariance(enc, MLPTau(8, hidden=8, residual=False), SO3())
    x = torch.randn(3, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    out = step(x, mask=mask, generator=torch.Generator().manual_seed(2))
    assert bool((out.z[~mask] == 0).all())
    expected = latent_equivariance_loss(step.tau, out.z, out.z_transformed, out.g, mask=mask)
    torch.testing.assert_close(out.loss, expected)
    # padding inputs do not matter
    dirty = step(x.masked_fill(~mask[..., None], 50.0), mask=mask, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(dirty.loss, out.loss)


def test_normalize_and_callable_losses():
    torch.manual_seed(0)
    enc, tau = _TokenEncoder(), MLPTau(8, hidden=8, residual=False)
    x, gen = torch.randn(6, 4, 3), torch.Generator().manual_seed(3)
    g = SO3().sample(6, generator=gen)
    out = LatentEquivariance(enc, tau, SO3(), normalize=True)(x, g=g)
    torch.testing.assert_close(
        out.loss, latent_equivariance_loss(tau, out.z, out.z_transformed, g, normalize=True)
    )
    out = LatentEquivariance(enc, tau, SO3(), loss=contrastive_latent_loss)(x, g=g)
    torch.testing.assert_close(out.loss, contrastive_latent_loss(tau, out.z, out.z_transformed, g))
    with pytest.raises(ValueError, match="normalize"):
        LatentEquivariance(enc, tau, SO3(), loss=contrastive_latent_loss, normalize=True)
    with pytest.raises(ValueError, match="mse"):
        LatentEquivariance(enc, tau, SO3(), loss="l1")


def test_gradients_reach_encoder_and_tau():
    torch.manual_seed(0)
    step = LatentEquivariance(_TokenEncoder(), MLPTau(8, hidden=8, residual=False), SO3())
    step(torch.randn(4, 3, 3)).loss.backward()
    for name, p in step.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert {n.split(".")[0] for n, _ in step.named_parameters()} == {"encoder", "tau"}


def test_intermediate_embedding_through_a_bound_method_and_custom_action():
    """Tap model.embed without hooks; the model keeps its parameters, and a custom action is used."""
    torch.manual_seed(0)
    model = _Trunk()
    tau = MLPTau(8, hidden=8)
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    step = LatentEquivariance(model.embed, tau, SO3(), input_action=lambda g, x: x @ flip)
    assert [n.split(".")[0] for n, _ in step.named_parameters()] == ["tau"] * len(list(tau.parameters()))
    x = torch.randn(4, 4, 3)
    out = step(x)
    torch.testing.assert_close(out.z_transformed, model.embed(x @ flip))
    out.loss.backward()
    assert model.body[1].weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None


def test_non_tensor_inputs_with_explicit_group_elements():
    """Any input type works when input_action and encoder understand it and g is given."""
    torch.manual_seed(0)
    enc = _TokenEncoder()
    step = LatentEquivariance(
        lambda d: enc(d["points"]),
        IdentityTau(),
        SO3(),
        input_action=lambda g, d: {"points": SO3.act(g, d["points"])},
    )
    x = {"points": torch.randn(3, 5, 3)}
    g = SO3().sample(3, generator=torch.Generator().manual_seed(0))
    out = step(x, g=g)
    torch.testing.assert_close(out.z_transformed, enc(SO3.act(g, x["points"])))
    assert out.loss > 0


def test_extra_repr():
    text = repr(LatentEquivariance(_TokenEncoder(), IdentityTau(), SO3(), loss=contrastive_latent_loss))
    assert "group=SO3()" in text and "loss=contrastive_latent_loss" in text
