"""Finite-sample probes: ~0 for exact models, clearly non-zero for broken ones."""

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from latentequiv.groups import SO3
from latentequiv.probes import (
    EquivarianceReport,
    as_output_action,
    equivariance_error,
    invariance_error,
    latent_equivariance_error,
    representation_action,
    vector_action,
)
from latentequiv.representations import Irreps
from latentequiv.tau import MLPTau, RepresentationTau
from latentequiv.testing import point_clouds

FAST = settings(max_examples=15, deadline=None)


def pairwise_distance_sum(x):
    """Rotation invariant: (B, N, 3) -> (B,)."""
    return torch.cdist(x, x).sum(dim=(1, 2))


def centroid_weighted_vectors(x):
    """Rotation equivariant: each point's offset from the centroid, weighted by a function of its length."""
    r = x - x.mean(dim=1, keepdim=True)  # (B, N, 3)
    return r * torch.exp(-r.norm(dim=-1, keepdim=True))


def first_coordinate(x):
    """Not invariant: (B, N, 3) -> (B, N)."""
    return x[..., 0]


def scalar_and_vector(x):
    """Features '1x0 + 1x1' per point: (B, N, 4) = [|x_i|, x_i]."""
    return torch.cat([x.norm(dim=-1, keepdim=True), x], dim=-1)


class ScalarPlusVector:
    """Local stand-in for a representation object with ``.D(g)``: block diag(1, g)."""

    def D(self, g):
        out = torch.zeros(g.shape[0], 4, 4, dtype=g.dtype)
        out[:, 0, 0] = 1
        out[:, 1:, 1:] = g
        return out


@FAST
@given(point_clouds(min_points=2, max_points=12, batch_size=3))
def test_invariant_function_has_zero_invariance_error(x):
    report = invariance_error(pairwise_distance_sum, x, group=SO3(), n_samples=4)
    assert report.rel_max < 1e-12
    assert report.kind == "invariance"


@FAST
@given(point_clouds(min_points=2, max_points=12, batch_size=3))
def test_equivariant_function_has_zero_vector_error(x):
    report = equivariance_error(
        centroid_weighted_vectors, x, group=SO3(), output_action=vector_action, n_samples=4
    )
    assert report.rel_max < 1e-12 and report.abs_max < 1e-12


@FAST
@given(point_clouds(min_points=3, max_points=12, batch_size=2))
def test_non_invariant_function_is_clearly_detected(x):
    report = invariance_error(first_coordinate, x, group=SO3(), n_samples=8)
    assert report.rel_max > 0.1


def test_equivariant_function_is_not_invariant():
    x = torch.randn(4, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert invariance_error(centroid_weighted_vectors, x, group=SO3()).rel_mean > 0.1


@pytest.mark.parametrize(
    "spec",
    [
        ScalarPlusVector(),
        ScalarPlusVector().D,
        representation_action(ScalarPlusVector()),
        Irreps("1x0 + 1x1"),
    ],
    ids=["object-with-D", "rho-callable", "explicit-action", "Irreps"],
)
def test_representation_output_actions_agree(spec):
    """The three spellings of a representation give the same (zero) error; the wrong one does not."""
    x = torch.randn(3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    report = equivariance_error(scalar_and_vector, x, group=SO3(), output_action=spec)
    assert report.rel_max < 1e-12
    wrong = equivariance_error(scalar_and_vector, x, group=SO3(), output_action=None)
    assert wrong.rel_max > 0.1


def test_module_output_action_is_cast_with_the_probe():
    """A tau-network with float32 parameters works as the output action of a float64 probe."""
    tau = RepresentationTau("1x1", learn_basis=True)
    x = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(4))
    report = equivariance_error(centroid_weighted_vectors, x, group=SO3(), output_action=tau)
    assert report.rel_max < 1e-12 and report.dtype == torch.float64
    assert tau.basis.weight.dtype == torch.float32


def test_two_argument_callable_is_used_as_an_action():
    action = as_output_action(lambda g, y: 2 * y)
    assert torch.equal(action(torch.eye(3)[None], torch.ones(1, 3)), 2 * torch.ones(1, 3))


def test_relative_error_follows_its_definition():
    """abs = ||f(gx) - tau(g, f(x))|| per item; rel divides by ||f(gx)||: recomputed by hand."""
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    report = latent_equivariance_error(
        lambda v: v, lambda g, z: z, x, group=SO3(), n_samples=3, generator=torch.Generator().manual_seed(7)
    )
    gen = torch.Generator().manual_seed(7)
    abs_errors, rel_errors = [], []
    for _ in range(3):
        g = SO3().sample(5, generator=gen, dtype=torch.float64)
        gx = torch.einsum("bij,bj->bi", g, x)
        abs_errors.append((gx - x).norm(dim=1))
        rel_errors.append((gx - x).norm(dim=1) / gx.norm(dim=1))
    assert report.abs_max == pytest.approx(torch.cat(abs_errors).max().item(), rel=1e-12)
    assert report.rel_mean == pytest.approx(torch.cat(rel_errors).mean().item(), rel=1e-9)
    assert report.kind == "latent equivariance"


def test_latent_error_is_zero_for_the_right_tau_and_not_for_identity():
    encoder = nn.Linear(3, 3, bias=False)  # commutes with rotations only if tau knows the map
    with torch.no_grad():
        encoder.weight.copy_(2.0 * torch.eye(3))
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(3))
    right = latent_equivariance_error(encoder, lambda g, z: vector_action(g, z), x, group=SO3())
    wrong = latent_equivariance_error(encoder, lambda g, z: z, x, group=SO3())
    assert right.rel_max < 1e-12
    assert wrong.rel_mean > 0.1


def test_latent_error_of_an_untrained_mlp_tau_in_float64():
    """A float32 tau-network is probed on a float64 copy; the original stays float32."""
    torch.manual_seed(0)
    tau = MLPTau(8, identity_init=False)
    encoder = nn.Sequential(nn.Linear(3, 8), nn.Tanh())
    x = torch.randn(5, 4, 3)
    report = latent_equivariance_error(encoder, tau, x, group=SO3(), n_samples=2)
    assert report.dtype == torch.float64 and 0.01 < report.rel_mean < float("inf")
    assert all(p.dtype == torch.float32 for p in tau.parameters())


def test_float64_by_default_and_module_left_untouched():
    module = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(2, 3)
    report = invariance_error(module, x, group=SO3())
    assert report.dtype == torch.float64
    assert "float64" in str(report)
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert report.rel_max > 1e-3  # a generic MLP on raw coordinates is not invariant


def test_dtype_none_keeps_input_precision():
    x = torch.randn(2, 6, 3)
    report = invariance_error(pairwise_distance_sum, x, group=SO3(), dtype=None)
    assert report.dtype == torch.float32
    assert report.rel_max < 1e-5


def test_reported_dtype_is_the_least_precise_part():
    """A float64 output computed from float32 parts is reported as float32 (tolerances follow it)."""
    report = invariance_error(
        lambda x: pairwise_distance_sum(x["points"]).double(),
        {"points": torch.randn(2, 5, 3)},
        group=SO3(),
        dtype=None,
        input_action=lambda g, x: {"points": x["points"] @ g.transpose(-1, -2)},
        batch_size=2,
    )
    assert report.dtype == torch.float32
    module = nn.Linear(3, 1).double()
    report = invariance_error(module, torch.randn(2, 3), group=SO3(), dtype=torch.float32)
    assert report.dtype == torch.float32


def test_non_tensor_inputs_with_custom_action_and_batch_size():
    """Probes are domain-free: any input works given an input action and the batch size."""
    points = torch.randn(3, 4, 3, dtype=torch.float64)
    x = {"points": points, "labels": torch.arange(3)}

    def act(g, inputs):
        return {"points": inputs["points"] @ g.transpose(-1, -2), "labels": inputs["labels"]}

    def fn(inputs):
        return pairwise_distance_sum(inputs["points"]) + inputs["labels"]

    report = invariance_error(fn, x, group=SO3(), input_action=act, batch_size=3)
    assert isinstance(report, EquivarianceReport)
    assert report.rel_max < 1e-12


def test_seeded_generator_makes_probes_reproducible():
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    a = invariance_error(first_coordinate, x, group=SO3(), generator=torch.Generator().manual_seed(5))
    b = invariance_error(first_coordinate, x, group=SO3(), generator=torch.Generator().manual_seed(5))
    assert a == b


def test_zero_samples_is_an_argument_error():
    with pytest.raises(ValueError, match="n_samples"):
        invariance_error(first_coordinate, torch.zeros(1, 2, 3), group=SO3(), n_samples=0)


def test_worst_element_is_reported_and_packed_outputs_do_not_break_it():
    x = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    report = invariance_error(first_coordinate, x, group=SO3(), n_samples=3)
    assert 0 <= report.worst_item < 3 and 0 <= report.worst_sample < 3
    assert torch.tensor(report.worst_g).shape == (3, 3)
    packed = invariance_error(lambda p: p.reshape(-1, 3), x, group=SO3(), n_samples=3)  # 12 rows, 3 inputs
    assert 0 <= packed.worst_item < 12 and packed.worst_g is None
