"""Parametrisations of SO(3): axis-angle, Euler angles and the continuous 6D representation.

Quaternions live in :mod:`._quaternion` and rotation vectors (exp/log) in :mod:`._lie`; all of
them agree on the right-hand rule: a positive angle about ``n`` turns ``x`` towards ``y`` when
``n = z``.

Euler angles use the intrinsic ZYZ convention (the usual one for Wigner-D matrices)::

    R(alpha, beta, gamma) = Rz(alpha) @ Ry(beta) @ Rz(gamma)

i.e. rotate by ``alpha`` about z, then by ``beta`` about the new y, then by ``gamma`` about the
new z (equivalently: extrinsic z, y, z by ``gamma``, ``beta``, ``alpha``). The inverse returns
``alpha, gamma`` in ``[-pi, pi)`` and ``beta`` in ``[0, pi]``.

The 6D representation (Zhou et al., "On the Continuity of Rotation Representations in Neural
Networks", CVPR 2019) is the first two columns of ``R``, concatenated: ``(R[:, 0], R[:, 1])``.
Any 6-vector with two independent halves maps back to a rotation by Gram-Schmidt.
"""

from __future__ import annotations

import math

import torch

from ._quaternion import matrix_to_quaternion, quaternion_to_matrix


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` (radians, right-hand rule) about ``axis``.

    Args:
        axis: rotation axes; normalised here, so any non-zero length works.
        angle: rotation angles, broadcastable with ``axis[..., 0]``.

    Shape:
        - axis: ``(..., 3)``
        - angle: ``(...)``
        - output: ``(..., 3, 3)``

    Example:
        >>> R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 2.0]), torch.tensor(torch.pi))
        >>> torch.allclose(R, torch.diag(torch.tensor([-1.0, -1.0, 1.0])), atol=1e-6)
        True
    """
    axis, angle = torch.broadcast_tensors(axis, angle.unsqueeze(-1))
    n = axis / axis.norm(dim=-1, keepdim=True)
    half = angle[..., :1] / 2
    return quaternion_to_matrix(torch.cat([torch.cos(half), torch.sin(half) * n], -1))


def matrix_to_axis_angle(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit axis and angle of rotation matrices, with the angle in ``[0, pi]``.

    For the identity the axis is arbitrary; ``(0, 0, 1)`` is returned. For angle ``pi`` the axis
    is defined up to sign.

    Shape:
        - R: ``(..., 3, 3)``
        - output: axis ``(..., 3)`` of unit norm, angle ``(...)``.
    """
    q = matrix_to_quaternion(R)
    w, v = q[..., 0], q[..., 1:]
    s = v.norm(dim=-1)  # sin(angle / 2) >= 0
    angle = 2 * torch.atan2(s, w)
    z = torch.zeros_like(v)
    z[..., 2] = 1
    axis = torch.where((s > 0)[..., None], v / torch.where(s > 0, s, 1)[..., None], z)
    return axis, angle


def _rotation_about(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """Elementary rotation about coordinate axis ``axis`` (0, 1, 2). ``(...)`` -> ``(..., 3, 3)``."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:  # axis == 2
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def euler_angles_to_matrix(alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``Rz(alpha) @ Ry(beta) @ Rz(gamma)`` (intrinsic ZYZ Euler angles).

    Shape:
        - alpha, beta, gamma: ``(...)``, broadcastable.
        - output: ``(..., 3, 3)``

    Example:
        >>> a, b, g = torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.3)
        >>> R = euler_angles_to_matrix(a, b, g)
        >>> torch.allclose(torch.stack(matrix_to_euler_angles(R)), torch.tensor([0.1, 0.2, 0.3]))
        True
    """
    alpha, beta, gamma = torch.broadcast_tensors(alpha, beta, gamma)
    return _rotation_about(2, alpha) @ _rotation_about(1, beta) @ _rotation_about(2, gamma)


def matrix_to_euler_angles(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intrinsic ZYZ Euler angles ``(alpha, beta, gamma)`` of rotation matrices.

    Read off the canonical quaternion, whose components are
    ``(cos(b/2) cos((a+g)/2), -sin(b/2) sin((a-g)/2), sin(b/2) cos((a-g)/2), cos(b/2) sin((a+g)/2))``,
    so the result is accurate everywhere, including next to the gimbal-lock poses ``beta = 0, pi``.
    At exactly ``beta = 0`` only ``alpha + gamma`` is determined (at ``beta = pi`` only
    ``alpha - gamma``); the angles returned then still reproduce ``R``.

    Shape:
        - R: ``(..., 3, 3)``
        - output: three ``(...)`` tensors; ``alpha, gamma`` in ``[-pi, pi)``, ``beta`` in ``[0, pi]``.
    """
    w, x, y, z = matrix_to_quaternion(R).unbind(-1)
    plus = torch.atan2(z, w)  # (alpha + gamma) / 2
    minus = torch.atan2(-x, y)  # (alpha - gamma) / 2
    beta = 2 * torch.atan2(torch.hypot(x, y), torch.hypot(w, z))
    return _wrap(plus + minus), beta, _wrap(plus - minus)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Map angles to ``[-pi, pi)``.

    ``remainder(a + pi, 2 pi) - pi`` alone can round up to ``pi`` itself (when the remainder lies
    within half an ulp of ``2 pi``); those values are the same angle as ``-pi``.
    """
    wrapped = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
    return torch.where(wrapped >= math.pi, wrapped - 2 * math.pi, wrapped)


def matrix_to_6d(R: torch.Tensor) -> torch.Tensor:
    """The 6D representation: the first two columns of ``R``, concatenated.

    Shape:
        - R: ``(..., 3, 3)``
        - output: ``(..., 6)``, ``[R[:, 0], R[:, 1]]``.
    """
    return torch.cat([R[..., :, 0], R[..., :, 1]], -1)


def sixd_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from 6D vectors by Gram-Schmidt (Zhou et al. 2019).

    ``b1 = a1 / |a1|``, ``b2`` is ``a2`` minus its ``b1`` part, normalised, and ``b3 = b1 x b2``;
    the columns of the result are ``(b1, b2, b3)``. ``sixd_to_matrix(matrix_to_6d(R)) == R``.

    Shape:
        - x: ``(..., 6)``, the two halves linearly independent.
        - output: ``(..., 3, 3)`` with ``det = +1``.
    """
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)
