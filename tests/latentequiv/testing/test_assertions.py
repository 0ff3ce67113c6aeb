"""assert_invariant / assert_equivariant pass for exact models and fail loudly for wrong ones."""

import pytest
import torch
from hypothesis import given, settings

from latentequiv.groups import O3, SO3
from latentequiv.probes import EquivarianceReport, invariance_error, vector_action
from latentequiv.representations import Irreps
from latentequiv.testing import (
    Tolerance,
    assert_equivariant,
    assert_invariant,
    assert_translation_equivariant,
    assert_translation_invariant,
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


# --- issue 12, item 3 ---


class Float32Model(torch.nn.Module):
    """A float32 model whose symmetric output is a method, as in the README (``model.energy``)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.radial = torch.nn.Linear(1, 1)

    def energy(self, x):
        return self.radial(torch.cdist(x, x)[..., None]).sum(dim=(1, 2, 3))


@FAST
@given(point_clouds(min_points=2, max_points=8, batch_size=2))
def test_bound_methods_of_float32_modules_are_cast(x):
    model = Float32Model()
    report = assert_invariant(model.energy, x, group=SO3(), n_samples=2)
    assert report.dtype == torch.float64
    assert model.radial.weight.dtype == torch.float32  # the caller's model is untouched


def test_plain_functions_over_float32_modules_get_an_explanation():
    model = Float32Model()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="dtype=None"):
        assert_invariant(lambda p: model.energy(p), x, group=SO3())
    assert_invariant(lambda p: model.energy(p), x.float(), group=SO3(), dtype=None)


def test_failures_name_the_item_and_element_and_reproduce():
    def bent(p):
        return p[:, 0, 0] * torch.arange(1, p.shape[0] + 1, dtype=p.dtype)

    x = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with pytest.raises(AssertionError) as info:
        assert_invariant(bent, x, group=SO3(), generator=torch.Generator().manual_seed(0))
    text = str(info.value)
    report = invariance_error(bent, x, group=SO3(), generator=torch.Generator().manual_seed(0))
    assert f"item {report.worst_item} of the batch" in text and "group element g = [[" in text
    code = text.split("reproduce (paste;")[1].split("\n", 1)[1]
    code = "\n".join(line.strip().split("  #")[0] for line in code.splitlines())
    printed = []
    exec(code, {"bent": lambda p: p[:, 0, 0] * (report.worst_item + 1), "print": printed.append})
    assert float(printed[0]) == pytest.approx(report.abs_max, rel=1e-9)


def test_translation_assertions():
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    assert_translation_invariant(pairwise_distance_sum, x)
    assert_translation_equivariant(lambda p: p.mean(dim=1), x)
    assert_translation_equivariant(lambda p: p, x)
    with pytest.raises(AssertionError, match=r"(?s)translation invariance.*translation t = "):
        assert_translation_invariant(lambda p: p.mean(dim=1), x)
    with pytest.raises(AssertionError, match="translation equivariance"):
        assert_translation_equivariant(centred, x)


def cross(a, b):
    return torch.linalg.cross(a, b)


def test_several_inputs_and_parity():
    """The cross product of two polar vectors is an axial vector: 1x1e, not 1x1o, under O(3)."""
    a, b = (torch.randn(4, 3, dtype=torch.float64) for _ in range(2))
    assert_equivariant(cross, (a, b), group=O3(), output_action=Irreps("1x1e"), n_samples=16)
    assert_equivariant(cross, (a, b), group=SO3(), output_action=vector_action)
    with pytest.raises(AssertionError):
        assert_equivariant(cross, (a, b), group=O3(), output_action=Irreps("1x1o"), n_samples=16)


def test_inputs_that_do_not_move_and_tuple_outputs():
    x, charges = torch.randn(3, 5, 3, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)

    def dipole_and_norm(p, q):
        d = (q[..., None] * p).sum(dim=1)
        return d.norm(dim=-1), d

    assert_equivariant(
        dipole_and_norm,
        (x, charges),
        group=SO3(),
        input_action=(vector_action, None),
        output_action=(None, vector_action),
    )
    with pytest.raises(AssertionError):
        assert_equivariant(
            dipole_and_norm,
            (x, charges),
            group=SO3(),
            input_action=(vector_action, None),
            output_action=(None, None),  # the dipole is not invariant
        )
