"""Estimating which SO(3) irreps a learned action contains, from its characters.

The character ``chi(g) = tr R(g)`` of a representation of SO(3) depends only on the rotation angle
``t`` of ``g`` (``cos t = (tr g - 1) / 2``) and decomposes into irreducible characters,

    chi(t) = sum_l m_l chi_l(t),     chi_l(t) = sin((2l + 1) t / 2) / sin(t / 2) = 1 + 2 sum_{k=1}^l cos(k t),

with non-negative integer multiplicities ``m_l``. The ``chi_l`` are orthonormal under the Haar
measure, whose density on the angle is ``(1 - cos t) / pi`` on ``[0, pi]``. Two estimates are
returned: a non-negative least-squares fit of the observed characters (valid for any sample of
rotations) and the Monte Carlo Haar projection ``m_l ~ mean_k chi(g_k) chi_l(g_k)`` (valid when the
``g_k`` are Haar-distributed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import nnls

from ._latent_action import LatentActionFit


@dataclass(frozen=True)
class IrrepsEstimate:
    """Multiplicities of ``l = 0..max_l`` in a representation of SO(3).

    Attributes:
        multiplicities: rounded non-negative integer estimates, one per ``l``.
        estimates: real-valued non-negative least-squares estimates.
        projection: Monte Carlo Haar projections ``mean chi chi_l`` (unbiased only for Haar samples).
        residual: ``|| chi - sum_l m_l chi_l || / || chi ||`` with the rounded multiplicities.
        dim: the representation's dimension: ``D``, or the rank of the subspace a fit was made on;
            compare with ``sum_l m_l (2l + 1)``.
        n_samples: number of group elements used.
    """

    multiplicities: tuple[int, ...]
    estimates: tuple[float, ...]
    projection: tuple[float, ...]
    residual: float
    dim: int
    n_samples: int

    @property
    def explained_dim(self) -> int:
        """``sum_l m_l (2l + 1)``: equal to :attr:`dim` when ``l <= max_l`` explains everything."""
        return sum(m * (2 * l + 1) for l, m in enumerate(self.multiplicities))

    def __str__(self) -> str:
        terms = " + ".join(f"{m}x{l}" for l, m in enumerate(self.multiplicities) if m) or "0"
        est = ", ".join(f"{v:.3f}" for v in self.estimates)
        return (
            f"irreps estimate: {terms} (dim {self.explained_dim} of {self.dim}); estimates [{est}]; "
            f"character residual {self.residual:.3e} over {self.n_samples} samples"
        )


def rotation_angle(g: torch.Tensor) -> torch.Tensor:
    """Rotation angle ``t`` in ``[0, pi]`` of ``(..., 3, 3)`` rotations, from ``cos t = (tr g - 1) / 2``."""
    cos = (g.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1.0, 1.0))


def so3_characters(angle: torch.Tensor, max_l: int) -> torch.Tensor:
    """Irreducible characters ``chi_l(t) = 1 + 2 sum_{k<=l} cos(k t)`` for ``l = 0..max_l``.

    Args:
        angle: ``(K,)`` rotation angles.
        max_l: the largest degree.

    Returns:
        ``(K, max_l + 1)``; the cosine sum is the ``sin((2l+1)t/2) / sin(t/2)`` form without its 0/0.

    Example:
        >>> so3_characters(torch.tensor([0.0]), 2)  # at the identity, chi_l = 2l + 1
        tensor([[1., 3., 5.]])
    """
    k = torch.arange(1, max_l + 1, dtype=angle.dtype, device=angle.device)
    cosines = torch.cos(angle[:, None] * k)  # (K, max_l)
    partial = torch.cumsum(cosines, dim=-1)
    return torch.cat([torch.ones_like(angle)[:, None], 1 + 2 * partial], dim=-1)


def estimate_irreps(
    action: torch.Tensor | LatentActionFit,
    g: torch.Tensor | None = None,
    *,
    max_l: int = 4,
    linear: bool = False,
) -> IrrepsEstimate:
    """Estimate the multiplicities of SO(3) irreps ``l = 0..max_l`` in ``g -> R(g)`` from characters.

    Args:
        action: ``(K, D, D)`` matrices ``R(g_k)``, or a :class:`LatentActionFit`: then its elements
            are used for ``g``, and its ``rank`` (the subspace it was fitted on) as the dimension.
        g: ``(K, 3, 3)`` the rotations they belong to; only their angles are used.
        max_l: the largest degree considered; higher content shows up as residual.
        linear: with a fit, read the characters of its linear maps (for an equivariant embedding in
            a non-orthonormal basis) instead of the orthogonal ones.

    Returns:
        An :class:`IrrepsEstimate`.

    Example:
        >>> from latentequiv.groups import SO3
        >>> g = SO3().sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> eye = torch.eye(2, dtype=torch.float64).expand(64, 2, 2)
        >>> r = torch.cat([torch.cat([eye, torch.zeros(64, 2, 3, dtype=g.dtype)], 2),
        ...                torch.cat([torch.zeros(64, 3, 2, dtype=g.dtype), g], 2)], 1)  # 2x0 + 1x1
        >>> estimate_irreps(r, g, max_l=2).multiplicities
        (2, 1, 0)
    """
    dim = None
    if isinstance(action, LatentActionFit):
        g = action.g if g is None else g
        dim = action.rank
        action = action.maps(linear=linear)
    if g is None:
        raise ValueError("pass the group elements g (or a LatentActionFit, which holds them)")
    chi = action.detach().diagonal(dim1=-2, dim2=-1).sum(-1).double()  # (K,)
    basis = so3_characters(rotation_angle(g.detach().double()), max_l)  # (K, L)
    x_np, chi_np = basis.cpu().numpy(), chi.cpu().numpy()
    estimates, _ = nnls(x_np, chi_np)
    rounded = np.rint(estimates).astype(np.int64)
    residual = np.linalg.norm(chi_np - x_np @ rounded) / (np.linalg.norm(chi_np) + np.finfo(np.float64).eps)
    projection = (basis * chi[:, None]).mean(dim=0)
    return IrrepsEstimate(
        multiplicities=tuple(int(m) for m in rounded),
        estimates=tuple(float(v) for v in estimates),
        projection=tuple(float(v) for v in projection),
        residual=float(residual),
        dim=int(action.shape[-1]) if dim is None else dim,
        n_samples=int(chi.shape[0]),
    )
