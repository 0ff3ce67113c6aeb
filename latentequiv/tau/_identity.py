"""The trivial action: asking for an invariant embedding."""

from __future__ import annotations

import torch
from torch import nn

from ._protocol import check_shapes


class IdentityTau(nn.Module):
    r"""``tau(g, z) = z``: the group acts trivially, so the latent loss asks for **invariance**.

    Use it when the embedding should not change at all under the group (an invariant readout such
    as an energy), or as a baseline that shows how much an encoder's embedding moves under the group.

    Shape:
        - g: ``(B, d, d)`` (only checked, never used)
        - z: ``(B, D)`` or ``(B, N, D)``
        - output: ``z`` itself

    Example:
        >>> z = torch.randn(2, 5, 8)
        >>> IdentityTau()(torch.eye(3).expand(2, 3, 3), z) is z
        True
    """

    def forward(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        check_shapes(g, z)
        return z
