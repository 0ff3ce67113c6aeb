"""A tau-network that is a known group representation, optionally in a learned orthonormal basis."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from ..representations import Irreps
from ._protocol import check_shapes


class RepresentationTau(nn.Module):
    r"""Act on embeddings with a fixed representation of SO(3) or O(3): ``tau(g, z) = rho(g) z``.

    ``rho`` is the block-diagonal direct sum of real Wigner-D matrices given by ``irreps``
    (:class:`latentequiv.representations.Irreps`; improper elements of O(3) act through each term's
    parity), so ``tau`` is an exact group action:
    ``tau(g, tau(h, z)) = tau(gh, z)`` and ``tau(I, z) = z``. Asking an encoder to satisfy it is asking
    for an equivariant embedding of a *prescribed* type (e.g. ``"8x0 + 4x1"``: eight invariants and
    four vectors).

    With ``learn_basis=True`` the embedding only has to carry ``rho`` in some orthonormal basis ``Q``
    that is learned alongside the encoder: ``tau(g, z) = Q^T rho(g) Q z``. ``Q`` is parametrised
    orthogonal (``torch.nn.utils.parametrizations.orthogonal``) and starts at the identity; it stays
    in the connected component of the identity (``det Q = +1``), which loses nothing because a
    reflection can be absorbed by the encoder. ``tau`` is still an exact group action for every ``Q``.

    Args:
        irreps: an :class:`Irreps`, or anything its constructor takes (``"4x0 + 2x1"``,
            ``[(4, 0), (2, 1)]``). Its ``dim`` must equal the embedding width ``D``.
        learn_basis: learn the orthogonal change of basis ``Q``.

    Shape:
        - g: ``(B, 3, 3)`` rotation (or, for O(3), orthogonal) matrices
        - z: ``(B, D)`` or ``(B, N, D)`` (``rho(g[b])`` acts on every token of ``z[b]``)
        - output: same as ``z``

    Example:
        >>> tau = RepresentationTau("2x0 + 1x1")
        >>> g = torch.eye(3).expand(4, 3, 3)
        >>> z = torch.randn(4, 5)
        >>> bool(torch.allclose(tau(g, z), z))
        True
    """

    def __init__(self, irreps: Irreps | str | list[tuple[int, int]], learn_basis: bool = False) -> None:
        super().__init__()
        self.irreps = irreps if isinstance(irreps, Irreps) else Irreps(irreps)
        self.learn_basis = learn_basis
        self.basis: nn.Module | None = None
        if learn_basis:
            D = self.irreps.dim
            self.basis = orthogonal(nn.Linear(D, D, bias=False))
            with torch.no_grad():
                self.basis.weight = torch.eye(D)

    @property
    def dim(self) -> int:
        """The embedding width ``D`` (``irreps.dim``)."""
        return self.irreps.dim

    def matrix(self, g: torch.Tensor) -> torch.Tensor:
        """The matrices ``Q^T rho(g) Q`` (or ``rho(g)``), shape ``(B, D, D)``, in the dtype of ``g``."""
        rho = self.irreps.D(g)  # (B, D, D)
        if self.basis is None:
            return rho
        q = self.basis.weight.to(dtype=rho.dtype)  # (D, D)
        return q.transpose(0, 1) @ rho @ q

    def forward(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        check_shapes(g, z)
        if z.shape[-1] != self.dim:
            raise ValueError(f"z has width {z.shape[-1]} but irreps {self.irreps} have dim {self.dim}")
        g = g.to(dtype=z.dtype, device=z.device)
        if z.dim() == 3:
            g = g[:, None]  # (B, 1, 3, 3): one element for all tokens of a sample
        # Q^T (rho(g) (Q z)) block by block: O(D^2) per vector, no (B, D, D) matrices
        q = None if self.basis is None else self.basis.weight.to(dtype=z.dtype)  # (D, D)
        z = z if q is None else z @ q.transpose(0, 1)
        z = self.irreps.act(g, z)
        return z if q is None else z @ q

    def extra_repr(self) -> str:
        return f"irreps={self.irreps}, learn_basis={self.learn_basis}"
