"""Wigner-D matrices are orthogonal representations: properties over random rotations."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv.groups import O3, SO3, so3_exp, so3_generators
from latentequiv.representations import irrep_generators, wigner_D

f64 = torch.float64
LS = [0, 1, 2, 3, 4]
seeds = st.integers(0, 2**31 - 1)


def _sample(group, seed, n=4):
    return group.sample(n, generator=torch.Generator().manual_seed(seed), dtype=f64)


def _eye(l, n=1):
    return torch.eye(2 * l + 1, dtype=f64).expand(n, 2 * l + 1, 2 * l + 1)


@pytest.mark.parametrize("l", LS)
@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_homomorphism_orthogonality_and_inverse(l, seed):
    g, h = _sample(SO3(), seed), _sample(SO3(), seed + 1)
    Dg, Dh = wigner_D(l, g), wigner_D(l, h)
    assert Dg.shape == (4, 2 * l + 1, 2 * l + 1)
    assert torch.allclose(wigner_D(l, g @ h), Dg @ Dh, atol=1e-12)  # D(gh) = D(g) D(h)
    assert torch.allclose(Dg @ Dg.mT, _eye(l, 4), atol=1e-12)  # orthogonal
    assert torch.allclose(torch.linalg.det(Dg), torch.ones(4, dtype=f64))  # in SO(2l+1)
    assert torch.allclose(wigner_D(l, g.mT), Dg.mT, atol=1e-12)  # D(g^-1) = D(g)^-1


@pytest.mark.parametrize("l", LS)
def test_identity_maps_to_identity(l):
    assert torch.allclose(wigner_D(l, torch.eye(3, dtype=f64)[None]), _eye(l), atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_degree_one_is_the_rotation_itself(seed):
    R = _sample(SO3(), seed)
    assert torch.equal(wigner_D(1, R), R)
    assert torch.allclose(irrep_generators(1, dtype=f64), so3_generators(dtype=f64), atol=1e-15)


@pytest.mark.parametrize("l", LS)
@settings(max_examples=25, deadline=None)
@given(omega=st.lists(st.floats(-7, 7), min_size=3, max_size=3))
def test_wigner_D_is_the_exponential_of_the_generators(l, omega):
    # Holds for every rotation vector, also beyond the principal ball |omega| <= pi where so3_log
    # returns a different logarithm: integer-l representations are single valued.
    omega = torch.tensor(omega, dtype=f64)
    J = irrep_generators(l, dtype=f64)
    expected = torch.linalg.matrix_exp(torch.einsum("k,kij->ij", omega, J))
    assert torch.allclose(wigner_D(l, so3_exp(omega)), expected, atol=1e-10)


@pytest.mark.parametrize("l", LS)
def test_rotations_by_pi_do_not_depend_on_the_sign_of_the_logarithm(l):
    axis = torch.tensor([[1.0, 2.0, -2.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=f64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    J = irrep_generators(l, dtype=f64)
    plus = torch.linalg.matrix_exp(math.pi * torch.einsum("bk,kij->bij", axis, J))
    minus = torch.linalg.matrix_exp(-math.pi * torch.einsum("bk,kij->bij", axis, J))
    assert torch.allclose(plus, minus, atol=1e-12)
    assert torch.allclose(wigner_D(l, so3_exp(math.pi * axis)), plus, atol=1e-12)
    # and close to pi the map is continuous
    near = wigner_D(l, so3_exp((math.pi - 1e-7) * axis))
    assert torch.allclose(near, plus, atol=1e-6)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4, 6])
def test_generators_are_antisymmetric_and_satisfy_so3_relations(l):
    J = irrep_generators(l, dtype=f64)
    assert J.shape == (3, 2 * l + 1, 2 * l + 1)
    assert torch.allclose(J + J.mT, torch.zeros_like(J))
    for i, j, k in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        assert torch.allclose(J[i] @ J[j] - J[j] @ J[i], J[k], atol=1e-12)
    casimir = (J @ J).sum(0)
    assert torch.allclose(casimir, -l * (l + 1) * _eye(l)[0], atol=1e-12)


@pytest.mark.parametrize("l", LS)
@pytest.mark.parametrize("parity", [1, -1])
@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_parity_representation_of_o3(l, parity, seed):
    g, h = _sample(O3(), seed), _sample(O3(), seed + 1)
    D = wigner_D(l, g, parity=parity)
    assert torch.allclose(wigner_D(l, g @ h, parity=parity), D @ wigner_D(l, h, parity=parity), atol=1e-12)
    R = _sample(SO3(), seed)
    assert torch.allclose(wigner_D(l, -R, parity=parity), parity * wigner_D(l, R), atol=1e-12)
    assert torch.allclose(wigner_D(l, R, parity=parity), wigner_D(l, R), atol=1e-15)


def test_vectors_have_odd_parity_and_pseudovectors_even():
    g = _sample(O3(), 0, n=16)
    det = torch.linalg.det(g)[:, None, None]
    assert torch.allclose(wigner_D(1, g, parity=-1), g)
    assert torch.allclose(wigner_D(1, g, parity=1), det * g)


def test_dtype_and_batch_shape_follow_the_input_and_float32_is_accurate():
    R64 = SO3().sample(12, generator=torch.Generator().manual_seed(0), dtype=f64).reshape(3, 4, 3, 3)
    R32 = R64.float()
    for l in LS:
        D32 = wigner_D(l, R32)
        assert D32.dtype == torch.float32 and D32.shape == (3, 4, 2 * l + 1, 2 * l + 1)
        assert torch.allclose(D32.double(), wigner_D(l, R64), atol=1e-5)


def test_gradients_flow_through_wigner_D():
    omega = torch.tensor([[0.3, -1.1, 0.4], [1e-5, 0.0, 2e-5]], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: wigner_D(2, so3_exp(w)), (omega,))


def test_invalid_arguments_raise():
    R = torch.eye(3)[None]
    with pytest.raises(ValueError):
        wigner_D(-1, R)
    with pytest.raises(ValueError):
        wigner_D(1, R, parity=0)
    with pytest.raises(ValueError):
        irrep_generators(-2)
