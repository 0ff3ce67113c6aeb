"""Fitting the action a group induces on an encoder's embeddings, and testing that it is a representation.

For each group element ``g`` the embeddings of many inputs, ``Z = f(x)`` and ``Z_g = f(g . x)`` (rows),
are related by the best orthogonal map: ``R(g) = argmin_R || Z R^T - Z_g ||_F``. If ``f`` is
equivariant in some basis, the residual is 0 and ``g -> R(g)`` is a representation:
``R(g h) = R(g) R(h)``. :func:`representation_consistency` measures how far that fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._precision import batch_size_of, cast_callable, cast_input, device_of, working_dtype
from ..groups import Group
from ._procrustes import procrustes


@dataclass(frozen=True)
class LatentActionFit:
    """Orthogonal maps fitted between ``f(x)`` and ``f(g . x)``, one per group element.

    Attributes:
        g: ``(K, d, d)`` the group elements.
        action: ``(K, D, D)`` ``R(g)``, acting on embeddings as column vectors (``z -> R z``).
        rel_residual: ``(K,)`` ``|| Z R^T - Z_g ||_F / || Z_g ||_F``.
        n_rows: embeddings per fit (all leading dimensions of ``f(x)``); fewer than ``D`` overfits.
    """

    g: torch.Tensor
    action: torch.Tensor
    rel_residual: torch.Tensor
    n_rows: int

    def __str__(self) -> str:
        rel = self.rel_residual.double()
        return (
            f"latent action fit ({self.action.shape[0]} elements, width {self.action.shape[-1]}, "
            f"{self.n_rows} rows): relative residual mean {rel.mean().item():.3e} "
            f"max {rel.max().item():.3e}"
        )


@dataclass(frozen=True)
class ConsistencyReport:
    """How far fitted maps are from a representation: ``|| R(gh) - R(g) R(h) ||_F / || R(gh) ||_F``.

    Attributes:
        rel_mean: mean over the triples.
        rel_max: largest over the triples.
        n: number of ``(g, h, gh)`` triples.
        element_mismatch: largest ``|| g_gh - g_g g_h ||_F`` when fits were passed (``nan`` for bare
            matrices); nonzero means the triples were not built as products.
    """

    rel_mean: float
    rel_max: float
    n: int
    element_mismatch: float = float("nan")

    def __str__(self) -> str:
        return (
            f"representation consistency ({self.n} triples): rel mean {self.rel_mean:.3e} "
            f"max {self.rel_max:.3e} (element mismatch {self.element_mismatch:.1e})"
        )


def fit_latent_action(
    encoder: Callable,
    x: Any,
    g: torch.Tensor,
    *,
    input_action: Callable | None = None,
    dtype: torch.dtype | None = torch.float64,
    batch_size: int | None = None,
) -> LatentActionFit:
    """Fit ``R(g)`` between ``f(x)`` and ``f(g . x)`` over all inputs of the batch, for each ``g``.

    Args:
        encoder: ``f``; an ``nn.Module`` is evaluated on a copy cast to ``dtype``.
        x: a batch of inputs; each ``g[k]`` acts on all of them.
        g: ``(K, d, d)`` group elements.
        input_action: ``(g, x) -> g . x`` with ``g`` ``(B, d, d)``; default the action on row vectors.
        dtype: working precision (default float64); ``None`` keeps the inputs'.
        batch_size: ``B`` when it cannot be read from ``x``.

    Shape:
        - f(x): ``(B, D)`` or ``(B, N, D)``; every leading index is one row of the fit.

    Returns:
        A :class:`LatentActionFit`.

    Example:
        >>> x = torch.randn(16, 3, dtype=torch.float64)
        >>> g = torch.linalg.qr(torch.randn(2, 3, 3, dtype=torch.float64))[0]
        >>> fit = fit_latent_action(lambda v: v, x, g)  # the identity encoder: R(g) = g
        >>> torch.allclose(fit.action, g)
        True
    """
    encoder = cast_callable(encoder, dtype)
    x = cast_input(x, dtype)
    g = g.to(dtype=working_dtype(x, dtype), device=device_of(x))
    act = Group.act if input_action is None else input_action
    n = batch_size_of(x, batch_size)
    z = encoder(x).detach()
    rows = z.reshape(-1, z.shape[-1])  # (M, D)
    actions, residuals = [], []
    for gk in g:
        z_g = encoder(act(gk.expand(n, -1, -1), x)).detach()
        fit = procrustes(rows, z_g.reshape(-1, z_g.shape[-1]))
        actions.append(fit.q.transpose(-1, -2))  # rows map by q, columns by q^T
        residuals.append(fit.rel_residual)
    return LatentActionFit(
        g=g, action=torch.stack(actions), rel_residual=torch.stack(residuals), n_rows=rows.shape[0]
    )


def representation_consistency(
    r_g: torch.Tensor | LatentActionFit,
    r_h: torch.Tensor | LatentActionFit,
    r_gh: torch.Tensor | LatentActionFit,
) -> ConsistencyReport:
    """Measure the homomorphism defect ``|| R(gh) - R(g) R(h) ||_F / || R(gh) ||_F``.

    Args:
        r_g: ``(K, D, D)`` maps for ``g`` (or the :class:`LatentActionFit` holding them).
        r_h: ``(K, D, D)`` maps for ``h``.
        r_gh: ``(K, D, D)`` maps for the products ``g h``.

    Returns:
        A :class:`ConsistencyReport`: about 0 for a representation, about ``sqrt(2)`` for unrelated
        orthogonal maps.

    Example:
        >>> g = torch.linalg.qr(torch.randn(4, 3, 3, dtype=torch.float64))[0]
        >>> h = torch.linalg.qr(torch.randn(4, 3, 3, dtype=torch.float64))[0]
        >>> representation_consistency(g, h, g @ h).rel_max < 1e-12
        True
    """
    mismatch = float("nan")
    if all(isinstance(f, LatentActionFit) for f in (r_g, r_h, r_gh)):
        mismatch = (r_gh.g - r_g.g @ r_h.g).flatten(1).norm(dim=1).max().item()
    a_g, a_h, a_gh = (f.action if isinstance(f, LatentActionFit) else f for f in (r_g, r_h, r_gh))
    defect = (a_gh - a_g @ a_h).flatten(1).norm(dim=1)  # (K,)
    rel = (defect / (a_gh.flatten(1).norm(dim=1) + torch.finfo(a_gh.dtype).eps)).double()
    return ConsistencyReport(
        rel_mean=rel.mean().item(), rel_max=rel.max().item(), n=rel.shape[0], element_mismatch=mismatch
    )
