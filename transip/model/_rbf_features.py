"""Gaussian pair features and their projections without storing any ``(N, N, K)`` tensor.

For one bucket, with distances ``r`` (pairs ``p = (b, i, j)``), atom-sum weights ``c`` (the cosine
cutoff, 0 on self and padding pairs), the stacked attention-bias maps ``W`` ``(M, K)`` and
``phi_k(r) = exp(-gamma (r - mu_k)^2)``, :func:`gaussian_pair_features` returns

    Y_pm = sum_k W_mk phi_k(r_p)              (B, N, N, M)   every layer's logit bias at once
    A_bik = sum_j c_bij phi_k(r_bij)           (B, N, K)      the per-atom RBF features

Autograd through the plain formula keeps ``r - mu`` and ``phi`` (two ``(N, N, K)`` tensors, 256 MB
each at 1000 atoms and K = 64) and, for a force loss, three more in the graph of its backward.
Here the forward keeps ``r, c, W`` only and recomputes ``phi`` in row chunks. With
``phi' = -2 gamma (r - mu) phi``, ``phi'' = (4 gamma^2 (r - mu)^2 - 2 gamma) phi`` and upstream
gradients ``(G_Y, G_A)``:

    P_pk = (G_Y W)_pk + c_p G_A,bik
    dr_p = sum_k P_pk phi'_pk,   dc_p = sum_k G_A,bik phi_pk,   dW = G_Y^T phi

That backward is itself an autograd function with an analytic backward (a force loss
differentiates it once more). With upstream gradients ``(U_r, U_c, U_W)`` on ``(dr, dc, dW)``:

    grad G_Y = U_r (phi' W^T) + phi U_W^T
    grad G_A,ik = sum_j (U_r c)_ij phi'_ijk + U_c,ij phi_ijk
    grad W = (U_r G_Y)^T phi'
    grad c_p = U_r,p sum_k G_A,bik phi'_pk
    grad r_p = U_r,p sum_k P_pk phi''_pk + U_c,p sum_k G_A,bik phi'_pk + sum_k (G_Y U_W)_pk phi'_pk

(Derived by differentiating ``<U, backward(r, c, W, G_Y, G_A)>``; checked by ``gradcheck`` and
``gradgradcheck`` in float64 in ``tests/transip/model/test_model_rbf_features.py``.) Third
derivatives are not supported.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

#: elements of one ``(rows, N, K)`` chunk: 16 MB in float32, whatever the molecule size
CHUNK_ELEMENTS = 1 << 22


def _chunks(rows: int, n: int, k: int):
    step = max(1, CHUNK_ELEMENTS // max(n * k, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def exp_floor(dtype: torch.dtype) -> float:
    """Smallest exponent worth evaluating: ``exp`` of anything lower underflows to (almost) 0.

    Clamping the Gaussians' exponents here changes no result (``exp(floor)`` is ``e`` times the
    smallest normal number) but matters for speed: on CPU, ``torch.exp`` of underflowing arguments
    is ~15x slower than of ordinary ones, and most pairs of a large molecule are many widths away
    from most centres (``docs/performance.md``).
    """
    return math.log(torch.finfo(dtype).tiny) + 1.0


def _basis(r: torch.Tensor, centres: torch.Tensor, gamma: float, order: int):
    """``phi`` and, for ``order >= 1``, ``phi'``; for ``order >= 2`` also ``phi''`` (each ``(*, K)``)."""
    d = r[..., None] - centres  # (*, K)
    phi = torch.exp(d.square().mul_(-gamma).clamp_(min=exp_floor(r.dtype)))
    if order == 0:
        return phi, None, None
    d1 = d.mul(-2.0 * gamma).mul_(phi)  # phi' = -2 gamma d phi
    if order == 1:
        return phi, d1, None
    d2 = d.square_().mul_(4.0 * gamma * gamma).sub_(2.0 * gamma).mul_(phi)  # phi''
    return phi, d1, d2


def _rows(x: torch.Tensor | None, shape, like: torch.Tensor) -> torch.Tensor:
    return like.new_zeros(shape) if x is None else x


class _FeaturesBackward(torch.autograd.Function):
    """``(r, c, W, G_Y, G_A) -> (dr, dc, dW)`` with an analytic backward (module docstring)."""

    @staticmethod
    def forward(ctx, r, c, w, gy, ga, centres, gamma, weight_grad):
        ctx.save_for_backward(r, c, w, gy, ga, centres)
        ctx.gamma = gamma
        rows, n = r.shape
        dr, dc, dw = torch.empty_like(r), torch.empty_like(c), torch.zeros_like(w)
        for s in _chunks(rows, n, centres.numel()):
            phi, d1, _ = _basis(r[s], centres, gamma, 1)  # (rows, N, K)
            p = torch.matmul(gy[s], w).addcmul_(c[s, :, None], ga[s, None, :])  # P
            dr[s] = (p * d1).sum(-1)
            dc[s] = torch.matmul(phi, ga[s, :, None]).squeeze(-1)
            if weight_grad:  # skipped when only forces are asked for (inference)
                dw.addmm_(gy[s].flatten(0, 1).t(), phi.flatten(0, 1))
        return dr, dc, dw

    @staticmethod
    @once_differentiable
    def backward(ctx, ur, uc, uw):
        r, c, w, gy, ga, centres = ctx.saved_tensors
        gamma = ctx.gamma
        rows, n = r.shape
        ur, uc, uw = _rows(ur, r.shape, r), _rows(uc, r.shape, r), _rows(uw, w.shape, w)
        need = ctx.needs_input_grad
        gr = torch.empty_like(r) if need[0] else None
        gc = torch.empty_like(c) if need[1] else None
        gw = torch.zeros_like(w) if need[2] else None
        ggy = torch.empty_like(gy) if need[3] else None
        gga = torch.empty_like(ga) if need[4] else None
        for s in _chunks(rows, n, centres.numel()):
            phi, d1, d2 = _basis(r[s], centres, gamma, 2)  # (rows, N, K)
            u_r, u_c = ur[s], uc[s]  # (rows, N)
            ga_d1 = torch.matmul(d1, ga[s, :, None]).squeeze(-1)  # sum_k G_A,ik phi'_ijk
            if gr is not None:
                p = torch.matmul(gy[s], w).addcmul_(c[s, :, None], ga[s, None, :])  # P
                term = torch.matmul(gy[s], uw).mul_(d1).sum(-1)  # sum_k (G_Y U_W)_k phi'_k
                gr[s] = p.mul_(d2).sum(-1).mul_(u_r) + u_c * ga_d1 + term
            if gc is not None:
                gc[s] = u_r * ga_d1
            if gw is not None:
                gw.addmm_((gy[s] * u_r[..., None]).flatten(0, 1).t(), d1.flatten(0, 1))
            if ggy is not None:
                ggy[s] = torch.matmul(d1, w.t()).mul_(u_r[..., None]).add_(torch.matmul(phi, uw.t()))
            if gga is not None:
                gga[s] = (
                    torch.matmul((u_r * c[s])[:, None, :], d1) + torch.matmul(u_c[:, None, :], phi)
                ).squeeze(1)
        return gr, gc, gw, ggy, gga, None, None, None


class _Features(torch.autograd.Function):
    """``(r, c, W) -> (Y, A)`` computed in row chunks; backward through :class:`_FeaturesBackward`."""

    @staticmethod
    def forward(ctx, r, c, w, centres, gamma):
        ctx.save_for_backward(r, c, w, centres)
        ctx.gamma = gamma
        rows, n = r.shape
        y = r.new_empty(rows, n, w.shape[0])
        a = r.new_empty(rows, centres.numel())
        for s in _chunks(rows, n, centres.numel()):
            phi, _, _ = _basis(r[s], centres, gamma, 0)  # (rows, N, K)
            y[s] = torch.matmul(phi, w.t())
            a[s] = torch.matmul(c[s, None, :], phi).squeeze(1)
        return y, a

    @staticmethod
    def backward(ctx, gy, ga):
        r, c, w, centres = ctx.saved_tensors
        gy = _rows(gy, (*r.shape, w.shape[0]), r)
        ga = _rows(ga, (r.shape[0], centres.numel()), r)
        need_w = ctx.needs_input_grad[2]
        dr, dc, dw = _FeaturesBackward.apply(r, c, w, gy, ga, centres, ctx.gamma, need_w)
        return dr, dc, dw if need_w else None, None, None


def gaussian_pair_features(
    r: torch.Tensor, c: torch.Tensor, weight: torch.Tensor, centres: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected Gaussian pair features and per-atom sums, memory-lean and twice differentiable.

    Args:
        r: pair distances of one bucket.
        c: weight of each pair in the per-atom sum (cutoff times the real-pair mask).
        weight: stacked projections ``W`` of the pair features (e.g. every layer's logit-bias map).
        centres: the Gaussians' centres ``mu``.
        gamma: their width parameter.

    Shape:
        - r, c: ``(B, N, N)``; weight: ``(M, K)``; centres: ``(K,)``
        - output: ``Y (B, N, N, M)`` and ``A (B, N, K)`` (module docstring)
    """
    b, n, _ = r.shape
    centres = centres.to(r.dtype)
    y, a = _Features.apply(r.reshape(b * n, n), c.reshape(b * n, n), weight, centres, float(gamma))
    return y.view(b, n, n, -1), a.view(b, n, -1)
