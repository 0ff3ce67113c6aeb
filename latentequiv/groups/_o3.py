"""O(3), rotations and improper rotations (reflections) of 3D space."""

from __future__ import annotations

import torch

from ._base import Group
from ._so3 import SO3


class O3(Group):
    """All orthogonal transformations of ``R^3``, ``det = +1`` or ``-1``.

    In odd dimension ``O(3) = SO(3) x {I, -I}`` (a direct product), so the Haar measure is a
    Haar rotation times the identity or the inversion ``-I``, each with probability 1/2.

    Example:
        >>> g = O3().sample(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> sorted(torch.linalg.det(g).round().unique().tolist())
        [-1.0, 1.0]
    """

    dim = 3
    proper = False

    def sample(self, n, *, generator=None, dtype=None, device=None):
        rotations = SO3().sample(n, generator=generator, dtype=torch.float64, device=device)  # (n, 3, 3)
        signs = torch.randint(0, 2, (n,), generator=generator, device=device).to(torch.float64) * 2 - 1
        return (rotations * signs[:, None, None]).to(dtype or torch.get_default_dtype())
