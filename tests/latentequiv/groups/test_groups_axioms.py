"""Group axioms and the action, as properties over random elements of SO(3), O(3) and SO(2)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv.groups import O3, SO2, SO3, Group

GROUPS = [SO3(), O3(), SO2()]
seeds = st.integers(0, 2**31 - 1)
f64 = torch.float64


def _sample(group: Group, seed: int, n: int = 6) -> torch.Tensor:
    return group.sample(n, generator=torch.Generator().manual_seed(seed), dtype=f64)


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_closure_orthogonality_and_determinant(group, seed):
    g, h = _sample(group, seed), _sample(group, seed + 1)
    assert group.contains(g).all() and group.contains(h).all()
    assert group.contains(group.compose(g, h)).all()
    assert group.contains(group.inverse(g)).all()
    det = torch.linalg.det(g)
    if group.proper:
        assert torch.allclose(det, torch.ones_like(det))
    else:
        assert torch.allclose(det.abs(), torch.ones_like(det))


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_associativity_identity_and_inverse(group, seed):
    g, h, k = _sample(group, seed), _sample(group, seed + 1), _sample(group, seed + 2)
    e = group.identity(len(g), dtype=f64)
    compose, inverse = group.compose, group.inverse
    assert torch.allclose(compose(compose(g, h), k), compose(g, compose(h, k)))
    assert torch.equal(compose(e, g), g) and torch.equal(compose(g, e), g)
    assert torch.allclose(compose(g, inverse(g)), e) and torch.allclose(compose(inverse(g), g), e)
    assert torch.allclose(inverse(compose(g, h)), compose(inverse(h), inverse(g)))


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@settings(max_examples=30, deadline=None)
@given(seed=seeds, n_points=st.integers(1, 5))
def test_action_is_a_left_action_on_vectors_and_point_sets(group, seed, n_points):
    g, h = _sample(group, seed), _sample(group, seed + 1)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(g), group.dim, generator=gen, dtype=f64)  # (B, d)
    points = torch.randn(len(g), n_points, group.dim, generator=gen, dtype=f64)  # (B, N, d)
    # act(g h, x) == act(g, act(h, x)), for vectors and for point sets
    assert torch.allclose(group.act(group.compose(g, h), x), group.act(g, group.act(h, x)))
    assert torch.allclose(group.act(group.compose(g, h), points), group.act(g, group.act(h, points)))
    # a point set is acted on point by point, each point as the vector g x
    for i in range(n_points):
        assert torch.allclose(group.act(g, points)[:, i], group.act(g, points[:, i]))
    assert torch.allclose(group.act(g, x), torch.einsum("bij,bj->bi", g, x))
    # orthogonal: norms and inner products are kept
    assert torch.allclose(group.act(g, points).norm(dim=-1), points.norm(dim=-1))
    assert torch.equal(group.act(group.identity(len(g), dtype=f64), points), points)


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_identity_shape_dtype_and_equality(group):
    e = group.identity(4, dtype=torch.float32)
    assert e.shape == (4, group.dim, group.dim) and e.dtype == torch.float32
    assert group == type(group)() and hash(group) == hash(type(group)())
    assert group != SO3() or isinstance(group, SO3)


def test_contains_rejects_non_members():
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=f64))[None]
    shear = torch.tensor([[[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=f64)
    assert not SO3().contains(reflection).item() and O3().contains(reflection).item()
    assert not SO3().contains(shear).item() and not O3().contains(shear).item()
    assert not SO2().contains(torch.eye(3, dtype=f64)[None]).item()
    assert not SO2().contains(torch.diag(torch.tensor([1.0, -1.0], dtype=f64))[None]).item()
