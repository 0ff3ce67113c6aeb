"""The Lie-derivative probe: zero for exact symmetries, the analytic derivative otherwise."""

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from latentequiv.groups import so3_generators
from latentequiv.probes import infinitesimal_error, lie_derivative, vector_action
from latentequiv.representations import Irreps
from latentequiv.testing import point_clouds

FAST = settings(max_examples=10, deadline=None)


def rotation_generators(dtype=torch.float64):
    """(3, 3, 3) basis of so(3); exp(t G_z) rotates x towards y."""
    return so3_generators(dtype=dtype)


def pairwise_distance_sum(x):
    return torch.cdist(x, x).sum(dim=(1, 2))


def centroid_weighted_vectors(x):
    r = x - x.mean(dim=1, keepdim=True)
    return r * torch.exp(-r.norm(dim=-1, keepdim=True))


def test_generators_rotate_x_towards_y():
    lz = rotation_generators()[2]
    r = torch.linalg.matrix_exp(0.5 * torch.pi * lz)
    assert torch.allclose(
        r @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0, 1.0, 0]).double()
    )


@settings(max_examples=5, deadline=None)  # cdist forces the per-element reverse fallback
@given(point_clouds(min_points=2, max_points=10, batch_size=2))
def test_invariant_function_has_zero_lie_derivative(x):
    report = infinitesimal_error(pairwise_distance_sum, x, generators=rotation_generators())
    assert len(report.abs_norms) == 3
    assert report.abs_max < 1e-10 and report.rel_max < 1e-12


@FAST
@given(point_clouds(min_points=2, max_points=10, batch_size=2))
def test_equivariant_function_has_zero_lie_derivative_both_ways(x):
    finite = infinitesimal_error(
        centroid_weighted_vectors, x, generators=rotation_generators(), output_action=vector_action
    )
    algebra = infinitesimal_error(
        centroid_weighted_vectors,
        x,
        generators=rotation_generators(),
        output_generator_action=lambda a, y: y @ a.transpose(-1, -2),
    )
    assert finite.abs_max < 1e-12
    assert algebra.abs_max < 1e-12
    plain = infinitesimal_error(centroid_weighted_vectors, x, generators=rotation_generators())
    assert plain.rel_max > 1e-3  # vectors are not invariant


@FAST
@given(point_clouds(min_points=1, max_points=10, batch_size=3))
def test_lie_derivative_of_coordinate_sum_is_analytic(x):
    """d/dt sum_i (exp(tA) x_i)_0 at t=0 equals sum_i (A x_i)_0, for every generator A."""
    for a in rotation_generators():
        derivative = lie_derivative(lambda p: p[..., 0].sum(dim=1), x, a)
        expected = (x @ a.T)[..., 0].sum(dim=1)
        assert torch.allclose(derivative, expected, atol=1e-12)


def test_lie_derivative_matches_a_central_difference():
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fn = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    a = rotation_generators()[0]
    h = 1e-5
    plus = fn(x @ torch.linalg.matrix_exp(h * a).T)
    minus = fn(x @ torch.linalg.matrix_exp(-h * a).T)
    assert torch.allclose(lie_derivative(fn, x, a), (plus - minus) / (2 * h), atol=1e-8)


def test_report_norms_and_dtype():
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1))
    report = infinitesimal_error(lambda p: p[..., 0], x, generators=rotation_generators(torch.float32))
    assert report.dtype == torch.float64
    assert report.abs_norms[0] < 1e-12  # rotations about x leave the x-coordinate alone
    assert min(report.abs_norms[1:]) > 1e-3
    assert report.rel_max == max(report.rel_norms)
    assert "generators" in str(report)


def test_all_differentiation_modes_agree():
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fn = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 3)).double()
    a = rotation_generators()[1]
    results = {
        mode: lie_derivative(fn, x, a, mode=mode, output_action=vector_action)
        for mode in ("auto", "double_backward", "reverse", "forward")
    }
    assert results["reverse"].abs().max() > 1e-3
    for mode, derivative in results.items():
        assert torch.allclose(derivative, results["reverse"], atol=1e-12), mode


def test_auto_mode_falls_back_when_second_derivatives_are_missing():
    """torch.cdist has no double backward; auto mode still returns the exact derivative."""
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a = rotation_generators()[0]
    shifted = lambda p: torch.cdist(p, p + 1.0).sum(dim=(1, 2))  # noqa: E731 - not invariant
    with pytest.raises((NotImplementedError, RuntimeError)):
        lie_derivative(shifted, x, a, mode="double_backward")
    assert torch.allclose(lie_derivative(shifted, x, a), lie_derivative(shifted, x, a, mode="reverse"))
    assert lie_derivative(shifted, x, a).abs().max() > 1e-3


def test_a_cut_graph_raises_instead_of_reporting_zero():
    x = torch.randn(1, 3, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        lie_derivative(lambda p: p.detach().sum(dim=(1, 2)), x, rotation_generators()[0])


def test_gradient_of_an_invariant_potential_is_equivariant_through_autograd_grad():
    """fn itself calls torch.autograd.grad (as a conservative-force model does); auto mode copes."""

    def gradient_field(p):
        with torch.enable_grad():
            if not p.requires_grad:
                p = p.requires_grad_(True)
            potential = torch.tanh((p[:, :, None] - p[:, None]).pow(2).sum(-1)).sum()
            return -torch.autograd.grad(potential, p, create_graph=True)[0]

    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    report = infinitesimal_error(
        gradient_field, x, generators=rotation_generators(), output_action=vector_action
    )
    assert report.abs_max < 1e-12
    broken = infinitesimal_error(
        lambda p: gradient_field(p) + p[..., :1],
        x,
        generators=rotation_generators(),
        output_action=vector_action,
    )
    assert broken.rel_max > 1e-3


def test_lie_derivative_through_an_irreps_representation():
    """The output action Irreps('1x0 + 1x1') is differentiated through its Wigner-D matrices."""
    x = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def scalar_and_vector(p):
        return torch.cat([p.norm(dim=-1, keepdim=True), p], dim=-1)  # (B, N, 1 + 3)

    right = infinitesimal_error(
        scalar_and_vector, x, generators=rotation_generators(), output_action=Irreps("1x0 + 1x1")
    )
    wrong = infinitesimal_error(
        scalar_and_vector, x, generators=rotation_generators(), output_action=Irreps("4x0")
    )
    assert right.abs_max < 1e-12
    assert wrong.rel_max > 1e-2


def test_generators_follow_the_input_precision_when_dtype_is_none():
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(6))  # float32
    report = infinitesimal_error(
        pairwise_distance_sum, x, generators=so3_generators(dtype=torch.float64), dtype=None
    )
    assert report.dtype == torch.float32
    assert report.rel_max < 1e-5
