"""Fitting the action a group induces on an encoder's embeddings, and testing that it is a representation.

For each group element ``g`` the embeddings of many inputs, ``Z = f(x)`` and ``Z_g = f(g . x)`` (rows),
are related by the best orthogonal map: ``R(g) = argmin_R || Z R^T - Z_g ||_F``, and by the best
linear map (least squares), both on the subspace the rows of ``Z`` span. If ``f`` is equivariant in
some orthonormal basis, the residual is 0 and ``g -> R(g)`` is a representation (in a non-orthonormal
basis, the same holds for the linear map):
``R(g h) = R(g) R(h)``. :func:`representation_consistency` measures how far that fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from .._precision import batch_size_of, cast_callable, cast_input, device_of, working_dtype
from ..groups import Group
from ._procrustes import procrustes


class DiagnosticWarning(UserWarning):
    """A fit ran, but the data cannot support all of what it reports (rank deficiency, too few rows)."""


@dataclass(frozen=True)
class LatentActionFit:
    """Maps fitted between ``f(x)`` and ``f(g . x)`` on the subspace the embeddings span, one per ``g``.

    Two fits are made side by side on the same rows: the best *orthogonal* map (Procrustes) and the
    best *linear* map (least squares). An equivariant embedding in a non-orthonormal basis transforms
    linearly but not orthogonally: the linear residual is then ~0 while the orthogonal one is not.

    Attributes:
        g: ``(K, d, d)`` the group elements.
        action: ``(K, D, D)`` the orthogonal ``R(g)``, acting on embeddings as column vectors
            (``z -> R z``), equal to ``P Q(g) P^T`` with ``Q`` orthogonal on the subspace and zero on
            its complement.
        rel_residual: ``(K,)`` ``|| Z R^T - Z_g ||_F / || Z_g ||_F`` for the orthogonal map.
        n_rows: embeddings per fit (all leading dimensions of ``f(x)``).
        linear_action: ``(K, D, D)`` the least-squares linear map on the same subspace.
        linear_rel_residual: ``(K,)`` its relative residual.
        basis: ``(D, r)`` orthonormal basis ``P`` of the subspace spanned by ``f(x)``.
    """

    g: torch.Tensor
    action: torch.Tensor
    rel_residual: torch.Tensor
    n_rows: int
    linear_action: torch.Tensor | None = None
    linear_rel_residual: torch.Tensor | None = None
    basis: torch.Tensor | None = None

    @property
    def width(self) -> int:
        """The embedding width ``D``."""
        return int(self.action.shape[-1])

    @property
    def rank(self) -> int:
        """``r``, the dimension of the subspace the fit was made on (``D`` when no basis is stored)."""
        return self.width if self.basis is None else int(self.basis.shape[-1])

    def maps(self, *, linear: bool = False) -> torch.Tensor:
        """The fitted ``(K, D, D)`` maps: orthogonal, or the linear ones with ``linear=True``."""
        if not linear:
            return self.action
        if self.linear_action is None:
            raise ValueError("this fit holds no linear maps")
        return self.linear_action

    def __str__(self) -> str:
        rel = self.rel_residual.double()
        text = (
            f"latent action fit ({self.action.shape[0]} elements, width {self.width}, rank {self.rank}, "
            f"{self.n_rows} rows): orthogonal relative residual mean {rel.mean().item():.3e} "
            f"max {rel.max().item():.3e}"
        )
        if self.linear_rel_residual is not None:
            lin = self.linear_rel_residual.double()
            text += f"; linear mean {lin.mean().item():.3e} max {lin.max().item():.3e}"
        return text


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
    rank: int | None = None,
    rank_tol: float = 1e-4,
) -> LatentActionFit:
    """Fit ``R(g)`` between ``f(x)`` and ``f(g . x)`` over all inputs of the batch, for each ``g``.

    The fit is made on the subspace spanned by the embeddings ``f(x)``: trained encoders use a few
    directions of a wide latent, and on the unused ones any map fits, which would make the action,
    its consistency and its irreps arbitrary. The subspace is spanned by the right singular vectors
    of ``f(x)`` whose singular values exceed ``rank_tol`` times the largest (or the top ``rank``).
    What ``f(g . x)`` has outside it counts as residual. It warns (:class:`DiagnosticWarning`) when
    the subspace is smaller than the width, and when there are fewer than ``2 r`` rows for rank ``r``
    (then even a meaningless map fits closely).

    Args:
        encoder: ``f``; an ``nn.Module`` is evaluated on a copy cast to ``dtype``.
        x: a batch of inputs; each ``g[k]`` acts on all of them.
        g: ``(K, d, d)`` group elements.
        input_action: ``(g, x) -> g . x`` with ``g`` ``(B, d, d)``; default the action on row vectors.
        dtype: working precision (default float64); ``None`` keeps the inputs'.
        batch_size: ``B`` when it cannot be read from ``x``.
        rank: the subspace dimension to use; default from ``rank_tol``.
        rank_tol: relative singular-value threshold for the subspace (directions whose variance is
            below ``rank_tol**2`` of the largest count as unused). Raise it (e.g. to ``1e-2``) for
            trained encoders whose spectra decay slowly; ``fit.rank`` says what was used.

    Shape:
        - f(x): ``(B, D)`` or ``(B, N, D)``; every leading index is one row of the fit.

    Returns:
        A :class:`LatentActionFit` with the orthogonal and the linear maps.

    Example:
        >>> x = torch.randn(16, 3, dtype=torch.float64)
        >>> g = torch.linalg.qr(torch.randn(2, 3, 3, dtype=torch.float64))[0]
        >>> fit = fit_latent_action(lambda v: v, x, g)  # the identity encoder: R(g) = g
        >>> torch.allclose(fit.action, g), fit.rank
        (True, 3)
    """
    encoder = cast_callable(encoder, dtype)
    x = cast_input(x, dtype)
    g = g.to(dtype=working_dtype(x, dtype), device=device_of(x))
    act = Group.act if input_action is None else input_action
    n = batch_size_of(x, batch_size)
    z = encoder(x).detach()
    moved = (encoder(act(gk.expand(n, -1, -1), x)).detach() for gk in g)  # one at a time
    fit = _fit(z, moved, g, rank, rank_tol)
    _warn_if_weak(fit.n_rows, fit.width, fit.rank)
    return fit


def fit_embedding_maps(
    z: torch.Tensor,
    z_g: torch.Tensor | Iterable[torch.Tensor],
    g: torch.Tensor,
    *,
    rank: int | None = None,
    rank_tol: float = 1e-4,
    warn: bool = True,
) -> LatentActionFit:
    """The fits of :func:`fit_latent_action` on embeddings already computed: ``z`` and each ``z_g[k]``.

    The same orthogonal and linear fits, on the subspace spanned by the rows of ``z``, for callers
    that hold the embeddings (hooked layer outputs, cached features) rather than an encoder.

    Args:
        z: ``(..., D)`` embeddings of the inputs; every leading index is one row.
        z_g: ``(K, ..., D)`` embeddings of the inputs moved by ``g[k]`` (or an iterable of ``K``
            tensors shaped like ``z``).
        g: ``(K, d, d)`` the group elements (stored in the fit).
        rank: the subspace dimension to use; default from ``rank_tol``.
        rank_tol: relative singular-value threshold for the subspace, as in :func:`fit_latent_action`.
        warn: warn (:class:`DiagnosticWarning`) on rank deficiency and on fewer than ``2 r`` rows.

    Returns:
        A :class:`LatentActionFit`.

    Example:
        >>> z = torch.randn(16, 3, dtype=torch.float64)
        >>> g = torch.linalg.qr(torch.randn(2, 3, 3, dtype=torch.float64))[0]
        >>> fit = fit_embedding_maps(z, z @ g.transpose(-1, -2), g)  # rows map by z -> g z
        >>> torch.allclose(fit.action, g)
        True
    """
    fit = _fit(z.detach(), (m.detach() for m in z_g), g, rank, rank_tol)
    if warn:
        _warn_if_weak(fit.n_rows, fit.width, fit.rank)
    return fit


def _fit(
    z: torch.Tensor, moved: Iterable[torch.Tensor], g: torch.Tensor, rank: int | None, rank_tol: float
) -> LatentActionFit:
    """Orthogonal and linear maps from the rows of ``z`` to those of each ``moved`` tensor, on span(z)."""
    rows = z.reshape(-1, z.shape[-1])  # (M, D)
    basis = _span(rows, rank, rank_tol)  # (D, r)
    a = rows @ basis  # (M, r): coordinates on the subspace
    actions, residuals, linear_actions, linear_residuals = [], [], [], []
    for z_g in moved:
        b_full = z_g.reshape(-1, z_g.shape[-1])  # (M, D)
        b = b_full @ basis
        scale = b_full.norm() + torch.finfo(b.dtype).eps
        q = procrustes(a, b).q  # (r, r), rows map by q
        actions.append(basis @ q.transpose(-1, -2) @ basis.T)  # columns map by q^T
        residuals.append((a @ q @ basis.T - b_full).norm() / scale)
        m = torch.linalg.lstsq(a, b).solution  # (r, r)
        linear_actions.append(basis @ m.transpose(-1, -2) @ basis.T)
        linear_residuals.append((a @ m @ basis.T - b_full).norm() / scale)
    return LatentActionFit(
        g=g,
        action=torch.stack(actions),
        rel_residual=torch.stack(residuals),
        n_rows=rows.shape[0],
        linear_action=torch.stack(linear_actions),
        linear_rel_residual=torch.stack(linear_residuals),
        basis=basis,
    )


def _span(rows: torch.Tensor, rank: int | None, rank_tol: float) -> torch.Tensor:
    """Orthonormal ``(D, r)`` basis of the row space of ``rows`` (``M, D``)."""
    _, s, vh = torch.linalg.svd(rows, full_matrices=False)
    if rank is None:
        rank = int((s > rank_tol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    if not 1 <= rank <= rows.shape[1]:
        raise ValueError(f"the embeddings span no usable subspace (rank {rank} of width {rows.shape[1]})")
    return vh[:rank].transpose(0, 1)


def _warn_if_weak(n_rows: int, width: int, rank: int) -> None:
    if rank < width:
        warnings.warn(
            f"the embeddings span {rank} of {width} dimensions: the maps are fitted on that subspace "
            f"and are zero on the rest, whose action the data does not determine",
            DiagnosticWarning,
            stacklevel=3,
        )
    if n_rows < 2 * rank:
        warnings.warn(
            f"{n_rows} embeddings for a {rank}-dimensional fit: with fewer than {2 * rank} rows even an "
            f"unrelated map fits closely; pass more inputs (or tokens)",
            DiagnosticWarning,
            stacklevel=3,
        )


def representation_consistency(
    r_g: torch.Tensor | LatentActionFit,
    r_h: torch.Tensor | LatentActionFit,
    r_gh: torch.Tensor | LatentActionFit,
    *,
    linear: bool = False,
) -> ConsistencyReport:
    """Measure the homomorphism defect ``|| R(gh) - R(g) R(h) ||_F / || R(gh) ||_F``.

    Args:
        r_g: ``(K, D, D)`` maps for ``g`` (or the :class:`LatentActionFit` holding them).
        r_h: ``(K, D, D)`` maps for ``h``.
        r_gh: ``(K, D, D)`` maps for the products ``g h``.
        linear: use the fits' linear maps instead of the orthogonal ones.

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
    a_g, a_h, a_gh = (
        f.maps(linear=linear) if isinstance(f, LatentActionFit) else f for f in (r_g, r_h, r_gh)
    )
    defect = (a_gh - a_g @ a_h).flatten(1).norm(dim=1)  # (K,)
    rel = (defect / (a_gh.flatten(1).norm(dim=1) + torch.finfo(a_gh.dtype).eps)).double()
    return ConsistencyReport(
        rel_mean=rel.mean().item(), rel_max=rel.max().item(), n=rel.shape[0], element_mismatch=mismatch
    )
