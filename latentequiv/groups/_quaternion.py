"""Unit quaternions as rotations of ``R^3``.

Quaternions are stored as ``(..., 4)`` tensors in ``(w, x, y, z)`` order (scalar part first), the
same order as e3nn's ``o3.quaternion_to_matrix``. The unit quaternions double-cover SO(3): ``q`` and
``-q`` give the same rotation. :func:`matrix_to_quaternion` returns the canonical representative with
``w >= 0``; for rotations by exactly ``pi`` (``w = 0``) both signs remain valid.

A unit quaternion ``q = (cos(t/2), sin(t/2) n)`` is the rotation by angle ``t`` about the unit axis
``n`` (right-hand rule), and the Hamilton product composes rotations:
``quaternion_to_matrix(quaternion_multiply(p, q)) == quaternion_to_matrix(p) @ quaternion_to_matrix(q)``.
"""

from __future__ import annotations

import torch


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of quaternions.

    ``q`` need not be normalised: ``q`` and ``c q`` (``c != 0``) give the same rotation.

    Args:
        q: quaternions in ``(w, x, y, z)`` order.

    Shape:
        - q: ``(..., 4)``
        - output: ``(..., 3, 3)``

    Example:
        >>> quaternion_to_matrix(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # pi about z
        tensor([[-1.,  0.,  0.],
                [ 0., -1.,  0.],
                [ 0.,  0.,  1.]])
    """
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)  # 2 / |q|^2 makes the formula exact for non-unit q
    row0 = torch.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)], -1)
    row1 = torch.stack([s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)], -1)
    row2 = torch.stack([s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1)
    return torch.stack([row0, row1, row2], -2)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Canonical unit quaternions (``w >= 0``) of rotation matrices.

    Numerically stable for every rotation (Shepperd's method: the quaternion is read off the
    row of ``4 q q^T`` with the largest diagonal entry, so nothing is divided by a small number).

    Args:
        R: rotation matrices.

    Shape:
        - R: ``(..., 3, 3)``
        - output: ``(..., 4)`` in ``(w, x, y, z)`` order, unit norm, ``w >= 0``.

    Example:
        >>> matrix_to_quaternion(torch.eye(3))
        tensor([1., 0., 0., 0.])
    """
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # The symmetric matrix 4 q q^T, every entry linear in R.
    ww = 1 + r00 + r11 + r22
    xx = 1 + r00 - r11 - r22
    yy = 1 - r00 + r11 - r22
    zz = 1 - r00 - r11 + r22
    wx, wy, wz = r21 - r12, r02 - r20, r10 - r01
    xy, xz, yz = r01 + r10, r02 + r20, r12 + r21
    outer = torch.stack(
        [
            torch.stack([ww, wx, wy, wz], -1),
            torch.stack([wx, xx, xy, xz], -1),
            torch.stack([wy, xy, yy, yz], -1),
            torch.stack([wz, xz, yz, zz], -1),
        ],
        -2,
    )  # (..., 4, 4)
    diag = torch.stack([ww, xx, yy, zz], -1)  # (..., 4)
    # Row i of 4 q q^T divided by 2 sqrt(4 q_i^2) is sign(q_i) q. The clamp only guards rows that
    # are not selected, so no inf/nan leaks into gradients.
    candidates = outer / (2 * diag.clamp(min=0.1).sqrt()).unsqueeze(-1)  # (..., 4, 4)
    best = diag.argmax(-1, keepdim=True)  # (..., 1)
    q = torch.gather(candidates, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return quaternion_standardize(q)


def quaternion_standardize(q: torch.Tensor) -> torch.Tensor:
    """Flip the sign of quaternions with ``w < 0`` so that ``w >= 0``. Shape ``(..., 4)``."""
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``p q`` (the rotation ``q`` followed by ``p``).

    Args:
        p: quaternions ``(..., 4)`` in ``(w, x, y, z)`` order.
        q: quaternions ``(..., 4)``, broadcastable with ``p``.

    Returns:
        ``(..., 4)``, not standardised (``w`` may be negative).

    Example:
        >>> i = torch.tensor([0.0, 1.0, 0.0, 0.0])
        >>> quaternion_multiply(i, i)
        tensor([-1.,  0.,  0.,  0.])
    """
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    pv, qv = torch.broadcast_tensors(pv, qv)
    w = pw * qw - (pv * qv).sum(-1, keepdim=True)
    v = pw * qv + qw * pv + torch.linalg.cross(pv, qv, dim=-1)
    return torch.cat([w, v], -1)


def quaternion_invert(q: torch.Tensor) -> torch.Tensor:
    """Inverse of unit quaternions (the conjugate ``(w, -x, -y, -z)``). Shape ``(..., 4)``."""
    return torch.cat([q[..., :1], -q[..., 1:]], -1)
