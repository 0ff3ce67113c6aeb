"""Frame averaging and canonicalisation make arbitrary networks exactly invariant or equivariant."""

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from latentequiv.frames import FrameAveraging, canonical_frame, frame_average, pca_frames, sign_flips
from latentequiv.groups import O3, SO2, SO3
from latentequiv.losses import LatentEquivariance
from latentequiv.probes import vector_action
from latentequiv.representations import Irreps
from latentequiv.tau import IdentityTau
from latentequiv.testing import assert_equivariant, assert_invariant, group_elements

f64 = torch.float64
FAST = settings(max_examples=10, deadline=None)


def anisotropic(b=4, n=9, d=3, seed=0):
    """Skewed clouds with well separated principal axes (exact frames need distinct eigenvalues)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 1.0, d, dtype=f64)
    return torch.randn(b, n, d, generator=gen, dtype=f64).pow(2) * scales + torch.randn(
        b, n, d, generator=gen, dtype=f64
    )


def scrambler(d=3, n=9, out=5, seed=0):
    """A network with no symmetry at all: an MLP on the flattened, ordered points."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(n * d, 32), nn.Tanh(), nn.Linear(32, out)).double()


def test_the_scrambler_is_far_from_invariant():
    with pytest.raises(AssertionError):
        assert_invariant(scrambler(), anisotropic(), group=SO3())


@FAST
@given(group_elements(SO3(), batch_size=4))
def test_pca_frames_are_equivariant_as_a_set(g):
    x = anisotropic()
    moved, frames = pca_frames(SO3.act(g, x)), g[:, None] @ pca_frames(x)
    # the same four frames, possibly in another order
    dist = (moved[:, :, None] - frames[:, None]).flatten(-2).norm(dim=-1)  # (B, K, K)
    assert dist.min(dim=-1).values.max() < 1e-10
    assert torch.allclose(torch.linalg.det(moved), torch.ones(4, 4, dtype=f64))


def test_sign_flips_count():
    assert sign_flips(3).shape == (4, 3) and sign_flips(3, proper=False).shape == (8, 3)
    assert sign_flips(2).shape == (2, 2)


@pytest.mark.parametrize("frames", [pca_frames, canonical_frame])
def test_any_network_becomes_exactly_invariant(frames):
    model = FrameAveraging(scrambler(), frames=frames)
    assert_invariant(model, anisotropic(), group=SO3(), atol=1e-9, rtol=1e-9)


def test_vector_outputs_become_exactly_equivariant():
    model = FrameAveraging(scrambler(out=3), output_action=vector_action)
    assert_equivariant(model, anisotropic(), group=SO3(), output_action=vector_action, atol=1e-9, rtol=1e-9)


def test_higher_order_outputs_with_an_irreps_action():
    irreps = Irreps("1x0 + 1x1 + 1x2")
    model = FrameAveraging(scrambler(out=irreps.dim), output_action=irreps)
    assert_equivariant(model, anisotropic(), group=SO3(), output_action=irreps, atol=1e-9, rtol=1e-9)


def test_o3_needs_all_eight_frames():
    x = anisotropic()
    improper_ok = FrameAveraging(scrambler(), frames=lambda p: pca_frames(p, proper=False))
    assert_invariant(improper_ok, x, group=O3(), atol=1e-9, rtol=1e-9)
    with pytest.raises(AssertionError):
        assert_invariant(FrameAveraging(scrambler()), x, group=O3(), n_samples=16)


def test_the_plane():
    x = anisotropic(d=2)
    assert_invariant(FrameAveraging(scrambler(d=2)), x, group=SO2(), atol=1e-9, rtol=1e-9)


def test_gradients_with_respect_to_the_input_are_equivariant():
    """-dE/dx of a frame-averaged energy rotates with the cloud (the frames are differentiated)."""
    energy = FrameAveraging(scrambler(out=1))

    def forces(p):
        p = p.detach().requires_grad_(True)
        return -torch.autograd.grad(energy(p).sum(), p)[0]

    assert_equivariant(forces, anisotropic(), group=SO3(), output_action=vector_action, atol=1e-8, rtol=1e-8)


def test_input_features_that_do_not_rotate():
    """Points plus a per-point charge: frames from the points, the action on the points only."""
    x = torch.cat([anisotropic(), torch.randn(4, 9, 1, dtype=f64)], dim=-1)  # (B, N, 4)

    def rotate(g, c):
        return torch.cat([SO3.act(g, c[..., :3]), c[..., 3:]], dim=-1)

    net = scrambler(d=4)
    model = FrameAveraging(net, frames=lambda c: pca_frames(c[..., :3]), input_action=rotate)
    assert_invariant(model, x, group=SO3(), input_action=rotate, atol=1e-9, rtol=1e-9)


def test_composes_with_the_latent_objective():
    """The wrapped encoder is invariant, so the latent loss with the trivial action vanishes."""
    encoder = FrameAveraging(scrambler(out=8))
    out = LatentEquivariance(encoder, IdentityTau(), SO3())(anisotropic())
    assert out.loss < 1e-18
    plain = LatentEquivariance(scrambler(out=8), IdentityTau(), SO3())(anisotropic())
    assert plain.loss > 1e-3


def test_frame_average_costs_k_calls_in_one_batch():
    calls = []

    def fn(p):
        calls.append(p.shape[0])
        return p.sum(dim=(1, 2))

    frame_average(fn, anisotropic(b=3))
    frame_average(fn, anisotropic(b=3), frames=canonical_frame)
    assert calls == [12, 3]
