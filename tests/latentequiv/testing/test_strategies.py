"""The hypothesis strategies produce valid objects, validate their options and shrink."""

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis.errors import InvalidArgument

from latentequiv.groups import O3, SO3, Group
from latentequiv.testing import embeddings, group_elements, point_clouds, rotations, seeded_gaussian

FAST = settings(max_examples=20, deadline=None)


class PlaneRotations(Group):
    """Local stand-in for any other group: rotations of the plane."""

    dim = 2

    def sample(self, n, *, generator=None, dtype=torch.float32, device=None):
        t = 2 * torch.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        c, s = torch.cos(t), torch.sin(t)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2).to(dtype)


@FAST
@given(rotations(batch_size=3))
def test_rotations_are_proper_orthogonal_float64(g):
    assert g.shape == (3, 3, 3) and g.dtype == torch.float64
    assert torch.allclose(g @ g.transpose(1, 2), torch.eye(3, dtype=g.dtype).expand(3, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(g), torch.ones(3, dtype=g.dtype), atol=1e-12)


@FAST
@given(rotations(dtype=torch.float32))
def test_rotations_follow_the_requested_dtype(g):
    assert g.dtype == torch.float32 and g.shape == (1, 3, 3)


@FAST
@given(group_elements(PlaneRotations(), batch_size=2))
def test_group_elements_of_any_group(g):
    assert g.shape == (2, 2, 2)
    assert torch.allclose(g @ g.transpose(1, 2), torch.eye(2, dtype=g.dtype).expand(2, 2, 2), atol=1e-12)


@FAST
@given(group_elements(O3(), batch_size=16))
def test_group_elements_of_o3_include_reflections(g):
    dets = torch.linalg.det(g)
    assert torch.allclose(dets.abs(), torch.ones(16, dtype=g.dtype), atol=1e-12)


@FAST
@given(point_clouds(min_points=3, max_points=7, dim=2, scale=5.0, batch_size=2, dtype=torch.float32))
def test_point_clouds_respect_their_options(x):
    assert x.dtype == torch.float32 and x.shape[0] == 2 and 3 <= x.shape[1] <= 7 and x.shape[2] == 2
    assert torch.isfinite(x).all()


@FAST
@given(embeddings(dim=6, batch_size=4), embeddings(dim=5, tokens=3))
def test_embeddings_shapes(z, tokens):
    assert z.shape == (4, 6) and tokens.shape == (1, 3, 5)


def test_shrinking_reaches_the_smallest_seed_and_size():
    """The minimal example is the sample from seed 0 (and the smallest cloud), so failures reproduce."""
    g = find(rotations(), lambda g: True)
    assert torch.equal(g, SO3().sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    x = find(point_clouds(min_points=2, max_points=9), lambda x: True)
    assert x.shape == (1, 2, 3)


def test_scale_sets_the_spread():
    x = find(point_clouds(min_points=2000, max_points=2000, scale=3.0), lambda x: True)
    assert x.std().item() == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: rotations(batch_size=0),
        lambda: rotations(dtype=torch.int64),
        lambda: group_elements("SO3"),
        lambda: point_clouds(min_points=5, max_points=2),
        lambda: point_clouds(min_points=0),
        lambda: point_clouds(scale=-1.0),
        lambda: point_clouds(dim=True),
        lambda: embeddings(dim=0),
        lambda: embeddings(dim=4, tokens=0),
    ],
)
def test_invalid_options_are_rejected_when_built(build):
    with pytest.raises(InvalidArgument):
        build()


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        rotations(2)  # noqa
    with pytest.raises(TypeError):
        point_clouds(1, 4)  # noqa


def test_falsifying_examples_print_as_calls_to_paste():
    """Hypothesis reports the shrunk example as a public call (it used to be a private lambda)."""

    @settings(max_examples=20, deadline=None, database=None)
    @given(point_clouds(min_points=2, max_points=9), rotations())
    def fails(x, g):
        assert x.shape[1] < 3

    with pytest.raises(AssertionError) as info:
        fails()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "x=seeded_gaussian(" in notes and "shape=(1, 3, 3)" in notes
    assert "g=seeded_group_elements(" in notes
    x = seeded_gaussian(shape=(1, 3, 3), seed=0, scale=1.0, dtype=torch.float64)
    assert torch.equal(x, find(point_clouds(min_points=3, max_points=3), lambda x: True))
