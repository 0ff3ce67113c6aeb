"""SO(3) parametrisations: round trips, composition, exp/log near 0 and pi, and an independent
check of the quaternion order and Euler convention against scipy's Rotation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from latentequiv.groups import (
    SO3,
    axis_angle_to_matrix,
    euler_angles_to_matrix,
    hat,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_euler_angles,
    matrix_to_quaternion,
    quaternion_invert,
    quaternion_multiply,
    quaternion_standardize,
    quaternion_to_matrix,
    sixd_to_matrix,
    so2_exp,
    so2_log,
    so3_exp,
    so3_generators,
    so3_log,
    vee,
)

f64 = torch.float64
ATOL = 1e-12

# Components in [-1, 1] make hypothesis hit the awkward cases: zeros (rotations by pi when w = 0),
# the identity, and quaternions with several equal components.
quaternions = st.lists(st.floats(-1, 1), min_size=4, max_size=4).map(lambda v: torch.tensor(v, dtype=f64))
quaternions = quaternions.filter(lambda q: q.norm() > 1e-2)
rotations = quaternions.map(quaternion_to_matrix)
vectors = st.lists(st.floats(-4, 4), min_size=3, max_size=3).map(lambda v: torch.tensor(v, dtype=f64))


def _is_rotation(R, atol=ATOL):
    eye = torch.eye(3, dtype=R.dtype)
    return torch.allclose(R.mT @ R, eye, atol=atol) and torch.allclose(torch.linalg.det(R), R.new_ones(()))


def _same_up_to_sign(a, b, atol=ATOL):
    return torch.allclose(a, b, atol=atol) or torch.allclose(a, -b, atol=atol)


@settings(max_examples=100, deadline=None)
@given(q=quaternions)
def test_quaternion_matrix_round_trip_and_canonical_sign(q):
    R = quaternion_to_matrix(q)
    assert _is_rotation(R)
    q2 = matrix_to_quaternion(R)
    assert q2[0] >= 0 and torch.allclose(q2.norm(), torch.ones((), dtype=f64))
    unit = q / q.norm()
    assert _same_up_to_sign(q2, unit)
    if q[0].abs() > 1e-6 * q.norm():  # away from w = 0 the canonical form is unique
        assert torch.allclose(q2, quaternion_standardize(unit), atol=ATOL)
    assert torch.allclose(quaternion_to_matrix(q2), R, atol=ATOL)


@settings(max_examples=100, deadline=None)
@given(p=quaternions, q=quaternions)
def test_hamilton_product_composes_rotations(p, q):
    Rp, Rq = quaternion_to_matrix(p), quaternion_to_matrix(q)
    assert torch.allclose(quaternion_to_matrix(quaternion_multiply(p, q)), Rp @ Rq, atol=ATOL)
    unit = q / q.norm()
    assert torch.allclose(quaternion_to_matrix(quaternion_invert(unit)), Rq.mT, atol=ATOL)
    identity = torch.tensor([1.0, 0, 0, 0], dtype=f64)
    assert torch.allclose(quaternion_multiply(unit, quaternion_invert(unit)), identity, atol=ATOL)


@settings(max_examples=100, deadline=None)
@given(R=rotations)
def test_exp_of_log_is_identity_on_so3(R):
    omega = so3_log(R)
    assert omega.norm() <= math.pi + 1e-12
    assert torch.allclose(so3_exp(omega), R, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(omega=vectors)
def test_log_of_exp_is_identity_on_the_principal_ball(omega):
    R = so3_exp(omega)
    assert _is_rotation(R)
    assert torch.allclose(R, torch.linalg.matrix_exp(hat(omega)), atol=1e-12)
    if omega.norm() < math.pi - 1e-6:
        assert torch.allclose(so3_log(R), omega, atol=1e-10)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-5, 1e-3, math.pi - 1e-3, math.pi - 1e-7, math.pi])
def test_exp_log_accuracy_near_zero_and_pi(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=f64)
    axis = axis / axis.norm()
    omega = angle * axis
    R = so3_exp(omega)
    expected = axis_angle_to_matrix(axis, torch.tensor(angle, dtype=f64))
    assert torch.allclose(R, expected, atol=1e-15)
    log = so3_log(R)
    if angle == math.pi:  # both pi n and -pi n are logarithms
        assert _same_up_to_sign(log, omega, atol=1e-14)
    else:
        assert torch.allclose(log, omega, atol=1e-14)


def test_float32_exp_log_near_pi_and_zero():
    axis = torch.tensor([0.6, 0.0, 0.8])
    for angle in [1e-6, 0.5, math.pi - 1e-3]:
        omega = angle * axis
        assert torch.allclose(so3_log(so3_exp(omega)), omega, atol=2e-6)
        assert so3_log(so3_exp(omega)).dtype == torch.float32


def test_exp_and_log_have_finite_gradients_at_zero_and_pass_gradcheck():
    zero = torch.zeros(3, dtype=f64, requires_grad=True)
    (jac,) = torch.autograd.grad(so3_exp(zero).sum(), zero)
    assert torch.isfinite(jac).all()
    R = torch.eye(3, dtype=f64, requires_grad=True)
    (jac,) = torch.autograd.grad(so3_log(R).sum(), R)
    assert torch.isfinite(jac).all()
    omegas = torch.tensor([[1e-4, 2e-4, -1e-4], [0.3, -1.2, 0.7], [0.0, 0.0, 2.9]], dtype=f64)
    assert torch.autograd.gradcheck(so3_exp, (omegas.clone().requires_grad_(),))
    # so3_log on matrices near the manifold: perturbations stay inside the same Shepperd branch
    assert torch.autograd.gradcheck(so3_log, (so3_exp(omegas).requires_grad_(),))


@settings(max_examples=100, deadline=None)
@given(omega=vectors, x=vectors)
def test_hat_vee_and_generators(omega, x):
    assert torch.allclose(hat(omega) @ x, torch.linalg.cross(omega, x), atol=1e-12)
    assert torch.equal(vee(hat(omega)), omega)
    G = so3_generators(dtype=f64)
    assert torch.allclose(torch.einsum("k,kij->ij", omega, G), hat(omega))


def test_generators_satisfy_the_so3_commutation_relations():
    G = so3_generators(dtype=f64)
    for i, j, k in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        assert torch.equal(G[i] @ G[j] - G[j] @ G[i], G[k])
    assert torch.equal(G + G.mT, torch.zeros_like(G))


@settings(max_examples=100, deadline=None)
@given(R=rotations)
def test_axis_angle_round_trip(R):
    axis, angle = matrix_to_axis_angle(R)
    assert 0 <= angle <= math.pi and torch.allclose(axis.norm(), torch.ones((), dtype=f64))
    assert torch.allclose(axis_angle_to_matrix(axis, angle), R, atol=ATOL)
    assert _same_up_to_sign(angle * axis, so3_log(R), atol=1e-10) if angle > 1e-9 else True


@settings(max_examples=100, deadline=None)
@given(R=rotations)
def test_euler_round_trip_from_matrices(R):
    alpha, beta, gamma = matrix_to_euler_angles(R)
    assert 0 <= beta <= math.pi and -math.pi <= alpha < math.pi and -math.pi <= gamma < math.pi
    assert torch.allclose(euler_angles_to_matrix(alpha, beta, gamma), R, atol=ATOL)


def test_euler_angles_stay_below_pi_where_wrapping_rounds_up():
    """A rotation hypothesis found: ``alpha + gamma`` just under ``2 pi`` wrapped to exactly ``pi``."""
    R = quaternion_to_matrix(torch.tensor([0.0, -0.5, 2.220446049250313e-16, 0.5], dtype=f64))
    alpha, beta, gamma = matrix_to_euler_angles(R)
    assert -math.pi <= alpha < math.pi and -math.pi <= gamma < math.pi
    assert torch.allclose(euler_angles_to_matrix(alpha, beta, gamma), R, atol=ATOL)


angles = st.floats(-math.pi, math.pi - 1e-3)


@settings(max_examples=100, deadline=None)
@given(alpha=angles, beta=st.floats(1e-3, math.pi - 1e-3), gamma=angles)
def test_euler_round_trip_from_angles(alpha, beta, gamma):
    abg = torch.tensor([alpha, beta, gamma], dtype=f64)
    back = torch.stack(matrix_to_euler_angles(euler_angles_to_matrix(*abg)))
    assert torch.allclose(back, abg, atol=1e-9)


@pytest.mark.parametrize("beta", [0.0, 1e-9, math.pi - 1e-9, math.pi])
def test_euler_angles_at_gimbal_lock_reproduce_the_matrix(beta):
    abg = torch.tensor([0.7, beta, -2.1], dtype=f64)
    R = euler_angles_to_matrix(*abg)
    assert torch.allclose(euler_angles_to_matrix(*matrix_to_euler_angles(R)), R, atol=1e-14)


def test_euler_convention_is_intrinsic_zyz_as_in_scipy():
    rng = np.random.default_rng(0)
    abg = rng.uniform([-np.pi, 0, -np.pi], [np.pi, np.pi, np.pi], size=(50, 3))
    ours = euler_angles_to_matrix(*torch.from_numpy(abg).unbind(-1))
    theirs = Rotation.from_euler("ZYZ", abg).as_matrix()  # upper case = intrinsic
    assert np.allclose(ours.numpy(), theirs, atol=1e-13)
    back = torch.stack(matrix_to_euler_angles(ours), -1).numpy()
    assert np.allclose(back, abg, atol=1e-10)


def test_quaternion_order_is_scalar_first_as_in_scipy():
    R = SO3().sample(50, generator=torch.Generator().manual_seed(0), dtype=f64)
    theirs = Rotation.from_matrix(R.numpy()).as_quat(scalar_first=True)
    ours = matrix_to_quaternion(R).numpy()
    signs = np.sign(theirs[:, :1])  # scipy's sign choice is its own; compare canonical forms
    assert np.allclose(ours, theirs * signs, atol=1e-13)
    rotvec = Rotation.from_matrix(R.numpy()).as_rotvec()
    assert np.allclose(so3_log(R).numpy(), rotvec, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(R=rotations)
def test_6d_round_trip(R):
    x = matrix_to_6d(R)
    assert x.shape == (6,) and torch.equal(x[:3], R[:, 0]) and torch.equal(x[3:], R[:, 1])
    assert torch.allclose(sixd_to_matrix(x), R, atol=ATOL)


@settings(max_examples=100, deadline=None)
@given(a=vectors, b=vectors, scale=st.floats(0.1, 10))
def test_6d_gram_schmidt_gives_a_rotation_with_the_first_column_along_a1(a, b, scale):
    # the 6D map needs two independent halves
    assume(
        a.norm() > 1e-2 and b.norm() > 1e-2 and torch.linalg.cross(a, b).norm() > 1e-2 * a.norm() * b.norm()
    )
    R = sixd_to_matrix(torch.cat([a, b]))
    assert _is_rotation(R, atol=1e-10)
    assert torch.allclose(R[:, 0], a / a.norm())
    assert torch.allclose(sixd_to_matrix(torch.cat([scale * a, scale * b])), R, atol=1e-10)


def test_so2_exp_log_round_trip():
    t = torch.linspace(-math.pi + 1e-6, math.pi, 101, dtype=f64)
    g = so2_exp(t)
    assert torch.allclose(so2_log(g), t, atol=1e-12)
    assert torch.allclose(g @ g.mT, torch.eye(2, dtype=f64).expand(101, 2, 2))
    assert torch.allclose(so2_exp(t[:50] + t[50:100]), so2_exp(t[:50]) @ so2_exp(t[50:100]))


def test_conversions_follow_input_dtype_and_batch_shape():
    R = SO3().sample(6, generator=torch.Generator().manual_seed(0)).reshape(2, 3, 3, 3)
    assert matrix_to_quaternion(R).shape == (2, 3, 4) and matrix_to_quaternion(R).dtype == torch.float32
    assert so3_log(R).shape == (2, 3, 3) and so3_exp(so3_log(R)).shape == R.shape
    assert matrix_to_6d(R).shape == (2, 3, 6) and sixd_to_matrix(matrix_to_6d(R)).shape == R.shape
    assert all(a.shape == (2, 3) for a in matrix_to_euler_angles(R))
    assert torch.allclose(euler_angles_to_matrix(*matrix_to_euler_angles(R)), R, atol=1e-5)
