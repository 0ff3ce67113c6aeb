"""SO(3), the rotations of 3D space."""

from __future__ import annotations

import torch

from ._base import Group
from ._quaternion import quaternion_to_matrix


class SO3(Group):
    """Proper rotations of ``R^3`` (orthogonal, ``det = +1``).

    Sampling is exactly Haar-uniform: a standard normal 4-vector, normalised, is uniform on
    the unit 3-sphere, and the double cover ``S^3 -> SO(3)`` pushes that measure forward to
    the Haar measure (Shoemake, "Uniform random rotations", Graphics Gems III, 1992). Samples are
    drawn in float64 and then cast, so a seed gives the same rotations in every dtype.

    Example:
        >>> g = SO3().sample(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> g.shape
        torch.Size([5, 3, 3])
        >>> bool(torch.allclose(torch.linalg.det(g), torch.ones(5, dtype=torch.float64)))
        True
    """

    dim = 3

    def sample(self, n, *, generator=None, dtype=None, device=None):
        q = torch.randn(n, 4, generator=generator, dtype=torch.float64, device=device)  # uniform on S^3
        return quaternion_to_matrix(q).to(dtype or torch.get_default_dtype())
