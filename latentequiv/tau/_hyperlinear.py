"""A tau-network that is linear in the embedding, with the linear map predicted from the group element."""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from ._protocol import check_group_dim, check_shapes, resolve_group_dim


class HyperLinearTau(nn.Module):
    r"""``tau(g, z) = M(g) z`` with ``M(g)`` predicted from ``vec(g)`` by a small hypernetwork.

    ``M(g) = I + A(g)`` where ``A(g)`` is either a full ``(D, D)`` matrix (``rank=None``) or the low-rank
    product ``U(g) V(g)^T`` with ``U, V`` of shape ``(D, rank)``. Being linear in ``z``, this tau cannot
    be satisfied by shrinking embeddings (the latent loss scales with them) and it is cheaper than
    :class:`MLPTau` for wide embeddings; unlike :class:`RepresentationTau` it does not force ``M`` to be
    a group homomorphism. The hypernetwork's last layer (the ``U`` half when low-rank) starts at zero,
    so ``tau`` starts as the identity.

    Args:
        dim: embedding width ``D``.
        group_dim: dimension ``d`` of the space the group acts on, or the group itself.
        rank: rank of ``A(g)``; ``None`` predicts all ``D * D`` entries.
        hidden: width of the hypernetwork's hidden layers.
        depth: number of linear layers of the hypernetwork (1 makes ``A`` affine in ``vec(g)``, which is
            exact for actions built from copies of ``g`` itself).
        activation: activation module class between the hypernetwork's layers.

    Shape:
        - g: ``(B, d, d)``
        - z: ``(B, D)`` or ``(B, N, D)`` (``M(g[b])`` acts on every token of ``z[b]``)
        - output: same as ``z``

    Example:
        >>> tau = HyperLinearTau(16, rank=4)
        >>> g = torch.eye(3).expand(2, 3, 3)
        >>> tau(g, torch.randn(2, 10, 16)).shape
        torch.Size([2, 10, 16])
    """

    def __init__(
        self,
        dim: int,
        group_dim: int | Group = 3,
        rank: int | None = 8,
        hidden: int = 64,
        depth: int = 2,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if rank is not None and rank < 1:
            raise ValueError(f"rank must be positive or None, got {rank}")
        self.dim = dim
        self.group_dim = group_dim = resolve_group_dim(group_dim)
        self.rank = rank
        self.hidden = hidden
        self.depth = depth
        n_out = dim * dim if rank is None else 2 * dim * rank
        widths = [group_dim * group_dim] + [hidden] * (depth - 1) + [n_out]
        layers: list[nn.Module] = []
        for i, (n_in, n_next) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i > 0:
                layers.append(activation())
            layers.append(nn.Linear(n_in, n_next))
        self.hypernet = nn.Sequential(*layers)
        last = self.hypernet[-1]
        with torch.no_grad():
            # Zero only U when low-rank: U = V = 0 would be a saddle with zero gradient for both.
            n_zero = n_out if rank is None else dim * rank
            last.weight[:n_zero].zero_()
            last.bias[:n_zero].zero_()

    def factors(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``U(g), V(g)``, each ``(B, D, rank)``, with ``A(g) = U(g) V(g)^T`` (low-rank only)."""
        if self.rank is None:
            raise ValueError("a full-rank HyperLinearTau has no factors; use matrix()")
        a = self.hypernet(g.reshape(g.shape[0], -1))  # (B, 2 D r)
        u, v = a.reshape(-1, 2, self.dim, self.rank).unbind(1)  # (B, D, r) each
        return u, v

    def matrix(self, g: torch.Tensor) -> torch.Tensor:
        """The linear map ``M(g) = I + A(g)``, shape ``(B, D, D)``."""
        D = self.dim
        if self.rank is None:
            a = self.hypernet(g.reshape(g.shape[0], -1)).reshape(-1, D, D)  # (B, D, D)
        else:
            u, v = self.factors(g)
            a = u @ v.transpose(-1, -2)  # (B, D, D)
        return a + torch.eye(D, dtype=a.dtype, device=a.device)

    def forward(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        check_shapes(g, z)
        check_group_dim(g, self.group_dim, "HyperLinearTau")
        g = g.to(dtype=z.dtype, device=z.device)
        if self.rank is None:
            return torch.einsum("bij,b...j->b...i", self.matrix(g), z)  # (B, D, D) maps
        # z + U (V^T z): O(D r) per vector, the (B, D, D) matrices are never formed
        u, v = self.factors(g)  # (B, D, r) each
        rows = z.reshape(z.shape[0], -1, self.dim)  # (B, N, D), N = 1 for pooled embeddings
        return torch.baddbmm(rows, torch.bmm(rows, v), u.transpose(1, 2)).reshape(z.shape)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, group_dim={self.group_dim}, rank={self.rank}, hidden={self.hidden}, "
            f"depth={self.depth}"
        )
