"""assert_invariant / assert_equivariant pass for exact models and fail loudly for wrong ones."""

import pytest
import torch
from hypothesis import given, settings

from latentequiv.groups import SO3
from latentequiv.probes import EquivarianceReport, vector_action
from latentequiv.testing import (
    Tolerance,
    assert_equivariant,
    assert_invariant,
    default_tolerance,
    point_clouds,
)

FAST = settings(max_examples=15, deadline=None)


def pairwise_distance_sum(x):
    return torch.cdist(x, x).sum(dim=(1, 2))


def centred(x):
    return x - x.mean(dim=1, keepdim=True)


@FAST
@given(point_clouds(min_points=2, max_points=10, batch_size=2))
def test_exact_models_pass_and_return_the_report(x):
    report = assert_invariant(pairwise_distance_sum, x, group=SO3(), n_samples=3)
    assert isinstance(report, EquivarianceReport) and report.rel_max < 1e-12
    assert_equivariant(centred, x, group=SO3(), output_action=vector_action, n_samples=3)


@FAST
@given(point_clouds(min_points=3, max_points=10, batch_size=2))
def test_wrong_models_raise_quoting_the_report(x):
    with pytest.raises(AssertionError, match=r"(?s)centred fails the invariance check .*rel mean"):
        assert_invariant(centred, x, group=SO3(), n_samples=3)
    with pytest.raises(AssertionError, match="equivariance"):
        assert_equivariant(lambda p: p + 1.0, x, group=SO3(), output_action=vector_action, n_samples=3)


def test_tolerances_depend_on_precision():
    tight, single, half, brain = (
        default_tolerance(d) for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
    )
    assert tight.rtol < single.rtol < half.rtol <= brain.rtol
    assert isinstance(tight, Tolerance)


def test_float32_model_passes_with_float32_tolerance_but_not_float64():
    """Rounding at float32 is ~1e-7 relative: within float32's tolerance, outside float64's."""
    x = torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(0))
    report = assert_invariant(pairwise_distance_sum, x, group=SO3(), dtype=None)
    assert report.dtype == torch.float32 and report.rel_max > 1e-10
    with pytest.raises(AssertionError):
        assert_invariant(pairwise_distance_sum, x, group=SO3(), dtype=None, atol=1e-12, rtol=1e-12)


def test_explicit_tolerances_loosen_the_check():
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    slightly_broken = lambda p: pairwise_distance_sum(p) + 1e-6 * p[:, 0, 0]  # noqa: E731
    with pytest.raises(AssertionError):
        assert_invariant(slightly_broken, x, group=SO3())
    assert_invariant(slightly_broken, x, group=SO3(), atol=1e-4)
