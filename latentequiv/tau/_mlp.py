"""The paper's tau-network: an MLP on the flattened group element and the embedding."""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from ._protocol import check_group_dim, group_features, resolve_group_dim


class MLPTau(nn.Module):
    r"""Learn a group action on embeddings with an MLP, ``tau(g, z) = MLP(concat(vec(g), z))``.

    This is the transformation network of TransIP (Elhag et al., 2025, Sec. 3.2): nothing about the
    action is assumed, not even linearity in ``z``. With ``residual=True`` the network predicts a
    correction, ``tau(g, z) = z + MLP(concat(vec(g), z))``, and with ``identity_init=True`` (the default
    when residual) its last layer starts at zero, so ``tau`` starts as the identity (the invariant
    action) and has to learn every departure from it.

    Args:
        dim: embedding width ``D``.
        group_dim: dimension ``d`` of the space the group acts on (3 for SO(3)), or the group itself
            (``MLPTau(D, group_dim=SO2())``); ``vec(g)`` has ``d*d`` entries.
        hidden: width of the hidden layers. Default: ``2 * dim``.
        depth: number of linear layers (``depth - 1`` hidden layers); the paper uses 2.
        activation: activation module class placed between linear layers.
        residual: add ``z`` to the MLP output.
        identity_init: zero the last layer so that ``tau(g, z) == z`` at initialisation. Default:
            ``residual``. Only valid with ``residual=True``.

    Shape:
        - g: ``(B, d, d)``
        - z: ``(B, D)`` or ``(B, N, D)`` (``g[b]`` is broadcast over the tokens of ``z[b]``)
        - output: same as ``z``

    Example:
        >>> tau = MLPTau(16, hidden=32)
        >>> g, z = torch.eye(3).expand(4, 3, 3), torch.randn(4, 16)
        >>> tau(g, z).shape
        torch.Size([4, 16])
        >>> bool(torch.equal(tau(g, z), z))  # identity at initialisation
        True
    """

    def __init__(
        self,
        dim: int,
        group_dim: int | Group = 3,
        hidden: int | None = None,
        depth: int = 2,
        activation: type[nn.Module] = nn.GELU,
        residual: bool = True,
        identity_init: bool | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        identity_init = residual if identity_init is None else identity_init
        if identity_init and not residual:
            raise ValueError("identity_init=True needs residual=True")
        self.dim = dim
        self.group_dim = group_dim = resolve_group_dim(group_dim)
        self.hidden = 2 * dim if hidden is None else hidden
        self.depth = depth
        self.residual = residual
        widths = [group_dim * group_dim + dim] + [self.hidden] * (depth - 1) + [dim]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i > 0:
                layers.append(activation())
            layers.append(nn.Linear(n_in, n_out))
        self.mlp = nn.Sequential(*layers)
        if identity_init:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        check_group_dim(g, self.group_dim, "MLPTau")
        h = torch.cat([group_features(g, z), z], dim=-1)  # (B, [N,] d*d + D)
        out = self.mlp(h)  # (B, [N,] D)
        return z + out if self.residual else out

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, group_dim={self.group_dim}, hidden={self.hidden}, depth={self.depth}, "
            f"residual={self.residual}"
        )
