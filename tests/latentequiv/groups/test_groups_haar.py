"""The samplers draw from the Haar (uniform) measure: statistical tests with fixed seeds.

Every test draws a few thousand samples from a seeded generator, so it is deterministic. A sampler
passes a goodness-of-fit test when the p-value exceeds ``ALPHA = 1e-3``. The negative controls
(samplers known not to be Haar) must give ``p < NEGATIVE = 1e-8`` on at least one of the same tests,
which shows the tests have the power to catch a wrong sampler at this sample size.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from latentequiv.groups import (
    O3,
    SO2,
    SO3,
    axis_angle_to_matrix,
    euler_angles_to_matrix,
    matrix_to_axis_angle,
    quaternion_to_matrix,
    so2_log,
)

ALPHA = 1e-3
NEGATIVE = 1e-8
N = 4000


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _angle_cdf(t):
    """CDF of the rotation angle under Haar measure: density (1 - cos t) / pi on [0, pi]."""
    return (t - np.sin(t)) / np.pi


def _sphere_pvalues(u: np.ndarray) -> list[float]:
    """Uniform on S^2 <=> z uniform on [-1, 1] (Archimedes) and azimuth uniform, independent."""
    z = stats.kstest(u[:, 2], stats.uniform(-1, 2).cdf).pvalue
    phi = stats.kstest(np.arctan2(u[:, 1], u[:, 0]), stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue
    return [z, phi]


def _haar_pvalues(R: torch.Tensor) -> dict[str, float]:
    """p-values of the SO(3) Haar tests on rotations ``(n, 3, 3)``."""
    R = R.to(torch.float64)
    trace = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    angle = torch.arccos(((trace - 1) / 2).clamp(-1, 1)).numpy()
    out = {"angle": stats.kstest(angle, _angle_cdf).pvalue}
    for name, v in {"e_z": [0.0, 0.0, 1.0], "oblique": [1.0, -2.0, 0.5]}.items():
        v = torch.tensor(v, dtype=torch.float64)
        u = (R @ (v / v.norm())).numpy()
        out[f"rotated {name} z"], out[f"rotated {name} azimuth"] = _sphere_pvalues(u)
    axis, _ = matrix_to_axis_angle(R)
    out["axis z"], out["axis azimuth"] = _sphere_pvalues(axis.numpy())
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_so3_sampler_passes_every_haar_test(seed):
    R = SO3().sample(N, generator=_gen(seed), dtype=torch.float64)
    pvalues = _haar_pvalues(R)
    assert min(pvalues.values()) > ALPHA, pvalues


def test_so3_sampler_matches_haar_second_moments():
    # Under Haar measure E[R_ij] = 0, E[R_ij R_kl] = delta_ik delta_jl / 3, Var(R_ij^2) = 1/5 - 1/9.
    R = SO3().sample(N, generator=_gen(2), dtype=torch.float64)
    mean = R.mean(0)
    assert mean.abs().max() < 5 * math.sqrt(1 / 3 / N)
    second = torch.einsum("nij,nkl->ijkl", R, R) / N
    expected = torch.einsum("ik,jl->ijkl", torch.eye(3), torch.eye(3)).double() / 3
    assert (second - expected).abs().max() < 5 * math.sqrt(4 / 45 / N)


def _uniform_euler(n, generator):
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    return euler_angles_to_matrix(2 * math.pi * u[:, 0], math.pi * u[:, 1], 2 * math.pi * u[:, 2])


def _uniform_axis_and_angle(n, generator):
    axis = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    return axis_angle_to_matrix(axis, math.pi * torch.rand(n, generator=generator, dtype=torch.float64))


def _normalised_cube_quaternion(n, generator):
    return quaternion_to_matrix(2 * torch.rand(n, 4, generator=generator, dtype=torch.float64) - 1)


@pytest.mark.parametrize("sampler", [_uniform_euler, _uniform_axis_and_angle, _normalised_cube_quaternion])
def test_non_haar_samplers_fail_the_same_tests(sampler):
    pvalues = _haar_pvalues(sampler(N, _gen(0)))
    assert min(pvalues.values()) < NEGATIVE, pvalues


def test_o3_sampler_has_both_components_with_probability_half_and_haar_rotations():
    g = O3().sample(N, generator=_gen(3), dtype=torch.float64)
    det = torch.linalg.det(g)
    assert torch.allclose(det.abs(), torch.ones_like(det))
    n_improper = int((det < 0).sum())
    assert stats.binomtest(n_improper, N, 0.5).pvalue > ALPHA
    proper_parts = g * det.sign()[:, None, None]  # O(3) = SO(3) x {I, -I}
    pvalues = _haar_pvalues(proper_parts)
    assert min(pvalues.values()) > ALPHA, pvalues
    # The component must be independent of the rotation: rotation angles agree across components.
    trace = proper_parts.diagonal(dim1=-2, dim2=-1).sum(-1)
    angle = torch.arccos(((trace - 1) / 2).clamp(-1, 1))
    assert stats.ks_2samp(angle[det > 0].numpy(), angle[det < 0].numpy()).pvalue > ALPHA


def test_o3_sampler_with_a_constant_component_is_caught():
    # Negative control for the component test: a sampler that never reflects.
    g = SO3().sample(N, generator=_gen(3), dtype=torch.float64)
    n_improper = int((torch.linalg.det(g) < 0).sum())
    assert stats.binomtest(n_improper, N, 0.5).pvalue < NEGATIVE


def test_so2_sampler_angle_is_uniform():
    g = SO2().sample(N, generator=_gen(4), dtype=torch.float64)
    angle = so2_log(g).numpy()
    assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > ALPHA
    # Negative control: angles uniform on half the circle.
    assert stats.kstest(angle / 2, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue < NEGATIVE


@pytest.mark.parametrize("group", [SO3(), O3(), SO2()])
def test_sampling_is_reproducible_and_dtype_independent(group):
    a = group.sample(16, generator=_gen(5), dtype=torch.float64)
    b = group.sample(16, generator=_gen(5), dtype=torch.float32)
    c = group.sample(16, generator=_gen(6), dtype=torch.float64)
    assert a.dtype == torch.float64 and b.dtype == torch.float32
    assert a.shape == (16, group.dim, group.dim)
    assert torch.equal(a.to(torch.float32), b)
    assert not torch.allclose(a, c)
