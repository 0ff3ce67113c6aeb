"""The orthogonal Procrustes problem.

Given paired rows ``a`` and ``b`` (``M`` points in ``R^C``), find the orthogonal ``Q`` minimising
``|| a Q - b ||_F``. With the SVD ``a^T b = U S V^T`` the minimiser is ``Q = U V^T`` (Schönemann,
"A generalized solution of the orthogonal Procrustes problem", Psychometrika 1966). Restricting to
``det Q = +1`` flips the singular vector of the smallest singular value (Kabsch, 1976).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ProcrustesFit:
    """The best orthogonal map between two sets of rows.

    Attributes:
        q: ``(..., C, C)`` orthogonal matrices with ``a @ q ~ b``.
        residual: ``(...,)`` ``|| a q - b ||_F``.
        rel_residual: ``(...,)`` ``residual / || b ||_F``; 0 when ``b`` is an exact rotation of ``a``.
    """

    q: torch.Tensor
    residual: torch.Tensor
    rel_residual: torch.Tensor

    def __str__(self) -> str:
        rel = self.rel_residual.double()
        return (
            f"Procrustes fit (q {tuple(self.q.shape)}, {str(self.q.dtype).removeprefix('torch.')}): "
            f"relative residual mean {rel.mean().item():.3e} max {rel.max().item():.3e}"
        )


def procrustes(a: torch.Tensor, b: torch.Tensor, *, special: bool = False) -> ProcrustesFit:
    """Best orthogonal ``Q`` with ``a @ Q ~ b`` in the Frobenius norm.

    Args:
        a: ``(..., M, C)`` source rows.
        b: ``(..., M, C)`` target rows.
        special: restrict to rotations (``det Q = +1``).

    Shape:
        - q: ``(..., C, C)``; residuals ``(...)``.

    Returns:
        A :class:`ProcrustesFit`.

    Example:
        >>> a = torch.randn(50, 4, dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
        >>> fit = procrustes(a, a @ q)
        >>> torch.allclose(fit.q, q), fit.rel_residual.item() < 1e-12
        (True, True)
    """
    m = a.transpose(-1, -2) @ b  # (..., C, C)
    u, _, vh = torch.linalg.svd(m)
    if special:
        sign = torch.sign(torch.linalg.det(u @ vh))  # (...,)
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        u = torch.cat([u[..., :-1], u[..., -1:] * sign[..., None, None]], dim=-1)
    q = u @ vh
    residual = (a @ q - b).flatten(-2).norm(dim=-1)
    scale = b.flatten(-2).norm(dim=-1)
    rel = residual / (scale + torch.finfo(b.dtype).eps)
    return ProcrustesFit(q=q, residual=residual, rel_residual=rel)
