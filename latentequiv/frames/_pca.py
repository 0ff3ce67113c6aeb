"""Frames from principal axes: group elements that move a point cloud to a canonical orientation.

A *frame* of a cloud ``x`` (``N`` points in ``R^d``) is an orthogonal matrix ``F`` whose columns are
the principal axes: the eigenvectors of the centred second moment ``C = mean_i (x_i - c)(x_i - c)^T``,
in decreasing order of eigenvalue. Each axis is defined up to sign, so a cloud has a *set* of frames
``{F S : S = diag(+-1)}``: ``2^d`` of them in O(d), ``2^(d-1)`` with ``det = +1`` in SO(d). The set is
equivariant, ``frames(g . x) = g frames(x)``, because ``C(g . x) = g C(x) g^T``; averaging over it
(Puny et al., "Frame averaging for invariant and equivariant network design", ICLR 2022) therefore
gives exact symmetry. :func:`canonical_frame` picks one frame per cloud by the signs of the third
moments along the axes (canonicalisation, Kaba et al., ICML 2023): one evaluation instead of ``2^(d-1)``.

Both need the eigenvalues to be distinct (an anisotropic cloud); near a tie the axes, and hence the
canonical orientation, jump. The canonical frame also needs non-zero third moments.
"""

from __future__ import annotations

import itertools

import torch


def principal_axes(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (decreasing) and eigenvectors (columns) of each cloud's centred second moment.

    Args:
        x: ``(B, N, d)`` points.
        mask: ``(B, N)`` bool, ``True`` for real points (padding is ignored).

    Returns:
        ``(values (B, d), axes (B, d, d))`` with ``axes[b, :, k]`` the ``k``-th principal axis.
    """
    w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
    w = w / w.sum(dim=1, keepdim=True).clamp(min=1)  # (B, N)
    centred = x - (w[..., None] * x).sum(dim=1, keepdim=True)  # (B, N, d)
    cov = torch.einsum("bn,bni,bnj->bij", w, centred, centred)  # (B, d, d)
    values, axes = torch.linalg.eigh(cov)  # increasing
    return values.flip(-1), axes.flip(-1)


def sign_flips(d: int, *, proper: bool = True, dtype=None, device=None) -> torch.Tensor:
    """The ``2^d`` sign patterns ``diag(+-1)`` (``2^(d-1)`` with ``det = +1`` when ``proper``), ``(K, d)``."""
    patterns = [
        s for s in itertools.product((1.0, -1.0), repeat=d) if not proper or torch.tensor(s).prod() > 0
    ]
    return torch.tensor(patterns, dtype=dtype or torch.get_default_dtype(), device=device)


def pca_frames(x: torch.Tensor, *, proper: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """All principal-axis frames of each cloud: ``(B, K, d, d)``, ``K = 2^(d-1)`` (SO(d)) or ``2^d`` (O(d)).

    Args:
        x: ``(B, N, d)`` points.
        proper: only frames with ``det = +1`` (for SO(d)); ``False`` for O(d).
        mask: ``(B, N)`` bool, ``True`` for real points.

    Example:
        >>> scales = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
        >>> f = pca_frames(torch.randn(2, 10, 3, dtype=torch.float64) * scales)
        >>> f.shape, bool(torch.allclose(torch.linalg.det(f), torch.ones(2, 4, dtype=torch.float64)))
        (torch.Size([2, 4, 3, 3]), True)
    """
    _, axes = principal_axes(x, mask)  # (B, d, d)
    d = x.shape[-1]
    det = torch.linalg.det(axes).sign()  # (B,)
    axes = torch.cat([axes[..., :-1], axes[..., -1:] * det[:, None, None]], dim=-1)  # det = +1
    flips = sign_flips(d, proper=proper, dtype=x.dtype, device=x.device)  # (K, d)
    return axes[:, None] * flips[None, :, None, :]  # (B, K, d, d): column k times its sign


def canonical_frame(x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One frame per cloud, ``(B, 1, d, d)`` with ``det = +1``: each axis but the last oriented so the
    third moment of the centred points along it is positive, the last one fixed by the determinant.

    Example:
        >>> from latentequiv.groups import SO3
        >>> scales = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
        >>> x = torch.randn(1, 20, 3, dtype=torch.float64).pow(2) * scales  # skewed: third moments != 0
        >>> g = SO3().sample(1, dtype=torch.float64)
        >>> bool(torch.allclose(canonical_frame(SO3.act(g, x)), g[:, None] @ canonical_frame(x)))
        True
    """
    _, axes = principal_axes(x, mask)  # (B, d, d)
    w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
    mean = (w[..., None] * x).sum(dim=1, keepdim=True) / w.sum(dim=1)[:, None, None].clamp(min=1)
    coords = (x - mean) @ axes  # (B, N, d): coordinates along the axes
    skew = (w[..., None] * coords.pow(3)).sum(dim=1)  # (B, d)
    signs = torch.where(skew < 0, -1.0, 1.0).to(x.dtype)
    axes = axes * signs[:, None, :]
    det = torch.linalg.det(axes).sign()  # (B,)
    axes = torch.cat([axes[..., :-1], axes[..., -1:] * det[:, None, None]], dim=-1)
    return axes[:, None]  # (B, 1, d, d)
