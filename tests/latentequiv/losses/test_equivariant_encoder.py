"""The latent loss vanishes for an exactly equivariant encoder with the matching RepresentationTau."""

import pytest
import torch
from torch import nn

from latentequiv import SO3
from latentequiv.losses import LatentEquivariance, latent_equivariance_loss
from latentequiv.representations import Irreps, wigner_D
from latentequiv.tau import IdentityTau, MLPTau, RepresentationTau

IRREPS = Irreps("4x0 + 2x1 + 1x2")


def _l2_intertwiner():
    """The (5, 9) map P with P vec(R S R^T) = D^2(R) P vec(S), found numerically from wigner_D.

    Basis-free: it only uses the convention of ``wigner_D`` itself. The space of such maps is
    one-dimensional (l = 2 appears once in 1 x 1), so the null space of the stacked constraints is a line.
    """
    R = SO3().sample(6, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    K = torch.einsum("bij,bkl->bikjl", R, R).reshape(6, 9, 9)  # vec(R S R^T) = K vec(S), row-major
    D = wigner_D(2, R)  # (6, 5, 5)
    eye5, eye9 = torch.eye(5, dtype=torch.float64), torch.eye(9, dtype=torch.float64)
    # row-major vec: vec(P K) = (I5 kron K^T) vec(P), vec(D P) = (D kron I9) vec(P)
    A = torch.cat(
        [torch.kron(eye5, K[i].T.contiguous()) - torch.kron(D[i], eye9) for i in range(6)]
    )  # (270, 45)
    _, s, vh = torch.linalg.svd(A)
    assert s[-1] < 1e-10 < s[-2]
    return vh[-1].reshape(5, 9)


P2 = _l2_intertwiner()


def equivariant_tokens(x):
    """Per-point features of type 4x0 + 2x1 + 1x2: (B, N, 3) -> (B, N, 15), centred on the centroid."""
    x = x - x.mean(dim=1, keepdim=True)
    r = x.norm(dim=-1, keepdim=True)  # (B, N, 1)
    scalars = torch.cat([r, r**2, torch.exp(-r), torch.cos(r)], dim=-1)  # (B, N, 4)
    vectors = torch.cat([x, x * torch.tanh(r)], dim=-1)  # (B, N, 6)
    outer = torch.einsum("bni,bnj->bnij", x, x).reshape(*x.shape[:2], 9)
    l2 = outer @ P2.T  # (B, N, 5)
    return torch.cat([scalars, vectors, l2], dim=-1)


def equivariant_pooled(x):
    return equivariant_tokens(x).mean(dim=1)  # (B, 15)


def _cloud(B=6, N=7, seed=0):
    return torch.randn(B, N, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_the_test_encoder_is_equivariant_of_the_stated_type():
    x, g = _cloud(), SO3().sample(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lhs = equivariant_tokens(SO3.act(g, x))
    rhs = torch.einsum("bij,bnj->bni", IRREPS.D(g), equivariant_tokens(x))
    torch.testing.assert_close(lhs, rhs)
    assert equivariant_tokens(x)[..., 10:].abs().max() > 0.1  # the l = 2 part is not trivially zero


@pytest.mark.parametrize("encoder", [equivariant_tokens, equivariant_pooled])
@pytest.mark.parametrize("normalize", [False, True])
def test_loss_vanishes_for_an_equivariant_encoder_and_matching_tau(encoder, normalize):
    x, g = _cloud(), SO3().sample(6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z, zt = encoder(x), encoder(SO3.act(g, x))
    loss = latent_equivariance_loss(RepresentationTau(IRREPS), z, zt, g, normalize=normalize)
    assert loss < 1e-24
    # ... while the wrong action (invariance) leaves a large error
    wrong = latent_equivariance_loss(IdentityTau(), z, zt, g, normalize=True)
    assert wrong > 1e-2


def test_loss_vanishes_with_a_padding_mask():
    x = _cloud(N=5)
    mask = torch.tensor([[1] * 5, [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1] * 5, [1, 0, 0, 0, 0], [1] * 4 + [0]])
    mask = mask.bool()
    x = x.masked_fill(~mask[..., None], 0.0)

    def encoder(x, mask):
        # padding points sit at the origin before and after rotation, so centring stays equivariant
        return equivariant_tokens(x) * mask[..., None]

    step = LatentEquivariance(encoder, RepresentationTau(IRREPS), SO3(), normalize=True)
    out = step(x, mask=mask, generator=torch.Generator().manual_seed(3))
    assert out.z.dtype == torch.float64
    assert out.loss < 1e-24


def test_loss_is_large_for_a_random_mlp_encoder_whatever_tau():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(3, 32), nn.GELU(), nn.Linear(32, IRREPS.dim)).double()

    def encoder(x):
        return mlp(x - x.mean(dim=1, keepdim=True)).mean(dim=1)

    x, g = _cloud(B=64), SO3().sample(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z, zt = encoder(x), encoder(SO3.act(g, x))
    for tau in (RepresentationTau(IRREPS), IdentityTau(), MLPTau(IRREPS.dim).double()):
        assert latent_equivariance_loss(tau, z, zt, g, normalize=True) > 1e-2
