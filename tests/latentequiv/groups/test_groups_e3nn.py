"""Cross-check the SO(3) conversions against e3nn (a test-only dependency).

Measured, not assumed: e3nn's quaternions are also ``(w, x, y, z)`` (scalar first), its axis-angle
uses the same right-hand rule, and its random rotations are proper rotations our conversions accept.
"""

import pytest
import torch
from e3nn import o3

from latentequiv.groups import (
    SO3,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_multiply,
    quaternion_to_matrix,
    so3_exp,
    so3_log,
)

f64 = torch.float64


@pytest.fixture(autouse=True)
def _private_global_rng():
    """e3nn's samplers take no generator: tests seed the global RNG inside a fork nobody else sees."""
    with torch.random.fork_rng():
        yield


def _rotations(n=64, seed=0):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=f64)


def test_quaternion_order_and_matrices_agree_with_e3nn():
    torch.manual_seed(0)
    q = o3.rand_quaternion(64, dtype=f64)
    assert torch.allclose(quaternion_to_matrix(q), o3.quaternion_to_matrix(q), atol=1e-14)
    R = _rotations()
    theirs = o3.matrix_to_quaternion(R)
    ours = matrix_to_quaternion(R)
    assert torch.allclose(ours, theirs * theirs[:, :1].sign(), atol=1e-12)  # same up to e3nn's sign


def test_quaternion_product_agrees_with_e3nn():
    torch.manual_seed(1)
    p, q = o3.rand_quaternion(32, dtype=f64), o3.rand_quaternion(32, dtype=f64)
    assert torch.allclose(quaternion_multiply(p, q), o3.compose_quaternion(p, q), atol=1e-14)


def test_axis_angle_agrees_with_e3nn():
    torch.manual_seed(2)
    axis, angle = o3.rand_axis_angle(64, dtype=f64)
    assert torch.allclose(axis_angle_to_matrix(axis, angle), o3.axis_angle_to_matrix(axis, angle), atol=1e-14)
    R = _rotations(seed=3)
    our_axis, our_angle = matrix_to_axis_angle(R)
    their_axis, their_angle = o3.matrix_to_axis_angle(R)
    assert torch.allclose(our_angle, their_angle, atol=1e-12)
    assert torch.allclose(our_axis, their_axis, atol=1e-10)
    assert torch.allclose(so3_log(R), their_axis * their_angle[:, None], atol=1e-10)
    assert torch.allclose(so3_exp(their_axis * their_angle[:, None]), R, atol=1e-14)


def test_e3nn_random_rotations_are_members_and_round_trip():
    torch.manual_seed(4)
    R = o3.rand_matrix(64, dtype=f64)
    assert SO3().contains(R).all()
    assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-14)
