"""The Lie algebra so(3): generators, hat/vee, and the exponential and logarithm maps.

A rotation vector ``omega`` (``(..., 3)``) stands for the rotation by angle ``|omega|`` about the
axis ``omega / |omega|``. ``hat(omega)`` is the antisymmetric matrix with ``hat(omega) @ x ==
cross(omega, x)``, and ``so3_exp(omega) = expm(hat(omega))`` (Rodrigues' formula)::

    R = I + sin(t)/t hat(omega) + (1 - cos t)/t^2 hat(omega)^2,    t = |omega|

``so3_log`` is its inverse on the principal branch ``|omega| <= pi``.
"""

from __future__ import annotations

import torch

from ._quaternion import matrix_to_quaternion

# Below this angle (radians) the Taylor series replace the closed forms; their truncation error
# there is below float64 round-off, and they keep gradients finite at omega = 0.
_SMALL_ANGLE = 1e-3


def hat(omega: torch.Tensor) -> torch.Tensor:
    """Antisymmetric matrices of rotation vectors, ``hat(omega) @ x == cross(omega, x)``.

    Shape:
        - omega: ``(..., 3)``
        - output: ``(..., 3, 3)``

    Example:
        >>> omega, x = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 2.0, 3.0])
        >>> hat(omega) @ x
        tensor([-2.,  1.,  0.])
    """
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def vee(A: torch.Tensor) -> torch.Tensor:
    """Rotation vector of the antisymmetric part of ``A``; ``vee(hat(omega)) == omega``.

    Shape:
        - A: ``(..., 3, 3)``
        - output: ``(..., 3)``
    """
    return 0.5 * torch.stack(
        [A[..., 2, 1] - A[..., 1, 2], A[..., 0, 2] - A[..., 2, 0], A[..., 1, 0] - A[..., 0, 1]], -1
    )


def so3_generators(
    *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """The basis ``G_k = hat(e_k)`` of so(3), the infinitesimal rotations about x, y and z.

    They satisfy ``[G_x, G_y] = G_z`` (cyclically) and ``so3_exp(omega) = expm(sum_k omega_k G_k)``.

    Returns:
        ``(3, 3, 3)``; ``G[k]`` is the generator about axis ``k``.

    Example:
        >>> G = so3_generators()
        >>> bool(torch.equal(G[0] @ G[1] - G[1] @ G[0], G[2]))
        True
    """
    return hat(torch.eye(3, dtype=dtype, device=device))


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of rotation vectors (the exponential map of so(3)).

    Args:
        omega: rotation vectors; any length (angles beyond ``pi`` wrap around).

    Shape:
        - omega: ``(..., 3)``
        - output: ``(..., 3, 3)``

    Example:
        >>> R = so3_exp(torch.tensor([0.0, 0.0, torch.pi / 2]))
        >>> torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))  # x to y
        True
    """
    t2 = (omega * omega).sum(-1)  # (...,)
    small = t2 < _SMALL_ANGLE**2
    t = torch.where(small, torch.ones_like(t2), t2).sqrt()  # safe: never sqrt(0) in the used branch
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / (t * t))
    K = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation vectors of rotation matrices (the logarithm map, principal branch).

    Goes through the canonical quaternion ``(cos(t/2), sin(t/2) n)`` with ``w >= 0``, which is
    well conditioned for every angle: the result is accurate near ``0`` and near ``pi``. For a
    rotation by exactly ``pi`` both ``pi n`` and ``-pi n`` are logarithms; either may be returned.

    Shape:
        - R: ``(..., 3, 3)``
        - output: ``(..., 3)`` with norm in ``[0, pi]``.

    Example:
        >>> so3_log(so3_exp(torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)))
        tensor([ 0.3000, -0.2000,  1.0000], dtype=torch.float64)
    """
    q = matrix_to_quaternion(R)
    w, v = q[..., 0], q[..., 1:]
    s2 = (v * v).sum(-1)  # sin^2(t/2)
    small = s2 < (_SMALL_ANGLE / 2) ** 2
    s = torch.where(small, torch.ones_like(s2), s2).sqrt()
    # t / sin(t/2) with t = 2 atan2(s, w); series in (s/w)^2 near the identity, where w ~ 1.
    u = s2 / (w * w).clamp(min=0.5)
    factor = torch.where(small, (2 / w.clamp(min=0.5)) * (1 - u / 3 + u * u / 5), 2 * torch.atan2(s, w) / s)
    return factor[..., None] * v
