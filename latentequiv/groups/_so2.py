"""SO(2), the rotations of the plane."""

from __future__ import annotations

import math

import torch

from ._base import Group


def so2_exp(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of the plane, ``[[cos t, -sin t], [sin t, cos t]]`` (counter-clockwise).

    Shape:
        - angle: ``(...)``
        - output: ``(..., 2, 2)``

    Example:
        >>> so2_exp(torch.tensor(0.0))
        tensor([[1., -0.],
                [0., 1.]])
    """
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def so2_log(g: torch.Tensor) -> torch.Tensor:
    """Angles in ``(-pi, pi]`` of planar rotation matrices; ``so2_log(so2_exp(t)) == t`` there.

    Shape:
        - g: ``(..., 2, 2)``
        - output: ``(...)``
    """
    return torch.atan2(g[..., 1, 0] - g[..., 0, 1], g[..., 0, 0] + g[..., 1, 1])


class SO2(Group):
    """Proper rotations of the plane ``R^2``; Haar sampling draws the angle uniformly in ``[0, 2 pi)``.

    Example:
        >>> g = SO2().sample(3, generator=torch.Generator().manual_seed(0))
        >>> g.shape
        torch.Size([3, 2, 2])
    """

    dim = 2

    def sample(self, n, *, generator=None, dtype=None, device=None):
        angle = torch.rand(n, generator=generator, dtype=torch.float64, device=device) * (2 * math.pi)
        return so2_exp(angle).to(dtype or torch.get_default_dtype())
