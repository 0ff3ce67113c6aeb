"""SO(3), the rotations of 3D space."""

from __future__ import annotations

import torch

from ._base import Group


def _quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` in ``(w, x, y, z)`` order to rotation matrices ``(..., 3, 3)``."""
    w, x, y, z = q.unbind(-1)
    two = 2.0
    row0 = torch.stack(
        [1 - two * (y * y + z * z), two * (x * y - z * w), two * (x * z + y * w)], -1
    )
    row1 = torch.stack(
        [two * (x * y + z * w), 1 - two * (x * x + z * z), two * (y * z - x * w)], -1
    )
    row2 = torch.stack(
        [two * (x * z - y * w), two * (y * z + x * w), 1 - two * (x * x + y * y)], -1
    )
    return torch.stack([row0, row1, row2], -2)


class SO3(Group):
    """Proper rotations of ``R^3``.

    Sampling is exactly Haar-uniform: a standard normal 4-vector, normalised, is uniform on
    the unit 3-sphere, and the double cover ``S^3 -> SO(3)`` pushes that measure forward to
    the Haar measure (Shoemake, "Uniform random rotations", Graphics Gems III, 1992).

    Example:
        >>> g = SO3().sample(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> g.shape
        torch.Size([5, 3, 3])
        >>> bool(torch.allclose(torch.linalg.det(g), torch.ones(5, dtype=torch.float64)))
        True
    """

    dim = 3

    def sample(self, n, *, generator=None, dtype=torch.float32, device=None):
        q = torch.randn(n, 4, generator=generator, dtype=torch.float64, device=device)
        q = q / q.norm(dim=-1, keepdim=True)
        return _quaternion_to_matrix(q).to(dtype)
