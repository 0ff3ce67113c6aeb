"""Memory-lean packed attention that can be differentiated twice (conservative-force training).

A drop-in for :func:`transip.model.attend` (same arguments, same :class:`AttentionLayout` buckets),
kept beside the benchmarks rather than in the model: the model does not use it (it is not the
default on CPU, where time counts; see ``docs/performance.md``). ``examples/benchmark.py`` swaps it
in for its ``transip-S (fast_attend)`` runs.
Within one bucket, per head, with ``Q`` already multiplied by ``scale``:

    S = Q K^T + B (+ -inf on padded keys),   P = softmax(S),   O = P V

The forward calls the fused :func:`torch.nn.functional.scaled_dot_product_attention` kernel (on CPU
the flash kernel: no ``(N, N)`` matrix is kept). Its backward, given ``G = dL/dO``, is

    dP = G V^T,   delta = rowsum(P * dP),   dS = P * (dP - delta),
    dQ = dS K,    dK = dS^T Q,   dV = P^T G,   dB = dS,

computed by a second autograd function that keeps only ``Q, K, V, B, G`` and recomputes ``P``.
That function has an analytic backward, so a loss on forces (``create_graph=True``) back-propagates
through attention without storing any ``(N, N)`` tensor between the passes. With upstream gradients
``(U_Q, U_K, U_V, U_B)`` on ``(dQ, dK, dV, dB)``:

    W = U_Q K^T + Q U_K^T + U_B,   A = W - rowsum(P * W),   E = P * A,
    Gbar = (dP - delta) * A + G U_V^T,   Z = P * (Gbar - rowsum(P * Gbar)),
    grad Q = Z K + dS U_K,   grad K = Z^T Q + dS^T U_Q,   grad V = E^T G,
    grad G = E V + P U_V,    grad B = Z.

(Derived by differentiating ``<U, backward(Q, K, V, B, G)>``; terms of ``Gbar`` constant along a row
are dropped since ``Z`` cancels them; checked against autograd of the plain
formula in float64 by ``gradcheck``/``gradgradcheck`` in ``tests/examples/test_fast_attention.py``.)
Third derivatives are not supported.

Measured on CPU (``docs/performance.md``): inside TransIP-S it runs at 0.92-0.99x the speed of
``attend`` and saves 6% of a 1000-atom force step's autograd memory (the position-dependent RBF
bias keeps an ``(H, N, N)`` gradient per layer alive anyway); without the bias it halves it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from transip.model import AttentionLayout

__all__ = ["fast_attend"]


def _probabilities(q, k, mask):
    """``softmax(q k^T + mask)``, ``mask`` additive (``-inf`` on padding) or a bool keep-mask."""
    if mask is None or mask.dtype == torch.bool:
        s = torch.matmul(q, k.transpose(-1, -2))  # (b, H, N, N)
        if mask is not None:
            s.masked_fill_(~mask, -math.inf)
    else:
        s = torch.matmul(q, k.transpose(-1, -2)).add_(mask)
    return torch.softmax(s, dim=-1)


def _logit_mask(bias, keep):
    """One tensor carrying the bias and the padding mask (bias with ``-inf`` on padded keys)."""
    if bias is None:
        return keep
    return bias if keep is None else bias.masked_fill(~keep, -math.inf)


def _reduce_like(x, like):
    """Sum ``x`` over the dimensions where ``like`` broadcasts (size 1)."""
    dims = [d for d in range(x.dim()) if like.shape[d] == 1 and x.shape[d] != 1]
    return (x.sum(dims, keepdim=True) if dims else x).to(like.dtype)


def _rowsum(x):
    return x.sum(-1, keepdim=True)


class _AttentionBackward(torch.autograd.Function):
    """``(Q, K, V, B, G) -> (dQ, dK, dV, dB)`` with an analytic backward (module docstring)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, g, bias_grad):
        ctx.save_for_backward(q, k, v, mask, g)
        p = _probabilities(q, k, mask)
        dp = torch.matmul(g, v.transpose(-1, -2))
        ds = dp.sub_(_rowsum(p * dp)).mul_(p)  # in place: dp is not needed any more
        dq = torch.matmul(ds, k)
        dk = torch.matmul(ds.transpose(-1, -2), q)
        dv = torch.matmul(p.transpose(-1, -2), g)
        if bias_grad:
            return dq, dk, dv, _reduce_like(ds, mask)
        return dq, dk, dv

    @staticmethod
    @once_differentiable
    def backward(ctx, uq, uk, uv, ub=None):
        q, k, v, mask, g = ctx.saved_tensors
        p = _probabilities(q, k, mask)
        r = torch.matmul(g, v.transpose(-1, -2))  # dP
        r.sub_(_rowsum(p * r))  # dP - delta
        ds = p * r
        w = None  # W = U_Q K^T + Q U_K^T + U_B, accumulated in place
        if uq is not None:
            w = torch.matmul(uq, k.transpose(-1, -2))
        if uk is not None:
            term = torch.matmul(q, uk.transpose(-1, -2))
            w = term if w is None else w.add_(term)
        if ub is not None:
            w = ub.expand_as(p).clone() if w is None else w.add_(ub)
        e = gbar = None
        if w is not None:
            a = w.sub_(_rowsum(p * w))  # A
            e = p * a
            # Gbar up to per-row constants, which cancel in Z because the rows of P sum to one.
            gbar = r.mul_(a)
        if uv is not None:
            x = torch.matmul(g, uv.transpose(-1, -2))
            gbar = x if gbar is None else gbar.add_(x)
        z = None if gbar is None else gbar.sub_(_rowsum(p * gbar)).mul_(p)

        def mm(a, b):
            return torch.matmul(a, b)

        def tr(a):
            return a.transpose(-1, -2)

        gq = gk = gv = gb = gg = None
        if ctx.needs_input_grad[0]:
            gq = _add(None if z is None else mm(z, k), None if uk is None else mm(ds, uk), q)
        if ctx.needs_input_grad[1]:
            gk = _add(None if z is None else mm(tr(z), q), None if uq is None else mm(tr(ds), uq), k)
        if ctx.needs_input_grad[2]:
            gv = torch.zeros_like(v) if e is None else mm(tr(e), g)
        if ctx.needs_input_grad[3]:
            gb = torch.zeros_like(mask) if z is None else _reduce_like(z, mask)
        if ctx.needs_input_grad[4]:
            gg = _add(None if e is None else mm(e, v), None if uv is None else mm(p, uv), g)
        return gq, gk, gv, gb, gg, None


def _add(a, b, like):
    if a is None and b is None:
        return torch.zeros_like(like)
    return b if a is None else a if b is None else a + b


class _Attention(torch.autograd.Function):
    """Fused forward; backward through :class:`_AttentionBackward` (differentiable once more)."""

    @staticmethod
    def forward(ctx, q, k, v, mask):
        ctx.save_for_backward(q, k, v, mask)
        # Detached: SDPA picks its slow math backend for a mask that requires grad, even here.
        fused_mask = None if mask is None else mask.detach()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=fused_mask, scale=1.0)

    @staticmethod
    def backward(ctx, g):
        q, k, v, mask = ctx.saved_tensors
        bias_grad = mask is not None and mask.dtype != torch.bool and ctx.needs_input_grad[3]
        grads = _AttentionBackward.apply(q, k, v, mask, g, bias_grad)
        return grads[0], grads[1], grads[2], grads[3] if bias_grad else None


def fast_attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: AttentionLayout,
    bias: list[torch.Tensor] | None = None,
    *,
    dropout_p: float = 0.0,
    double_backward: bool = False,
) -> torch.Tensor:
    """Scaled dot-product attention within each molecule, twice differentiable and memory-lean.

    Same contract as :func:`transip.model.attend`; the result is always differentiable twice, so
    ``double_backward`` is accepted and ignored. With ``dropout_p > 0`` the buckets use the plain
    autograd formula instead (a fused forward could not replay its dropout mask in the backward).

    Args:
        q, k, v: packed per-head queries, keys and values.
        layout: the batch's :class:`AttentionLayout`.
        bias: optional additive logits, one ``(B_b, H, N_b, N_b)`` tensor per bucket (may require grad).
        dropout_p: attention-weight dropout probability.
        double_backward: ignored (kept for signature compatibility).

    Shape:
        - q, k, v: ``(T, H, E)``
        - output: ``(T, H, E)``

    Example:
        >>> layout = AttentionLayout.from_ptr(torch.tensor([0, 2, 5]))
        >>> q = torch.randn(5, 2, 4)
        >>> fast_attend(q, q, q, layout).shape
        torch.Size([5, 2, 4])
    """
    del double_backward
    q = q * q.shape[-1] ** -0.5  # scale once on (T, H, E) rather than on every (N, N) logit matrix
    blocks = []
    for i, bucket in enumerate(layout.buckets):
        # (T, H, E) -> (B_b, N_b, H, E) -> (B_b, H, N_b, E)
        qb, kb, vb = (bucket.gather(x).transpose(1, 2) for x in (q, k, v))
        keep = bucket.mask[:, None, None, :] if bucket.padded else None  # (B_b, 1, 1, N_b)
        # (B_b, H, N_b, N_b) additive, (B_b, 1, 1, N_b) bool, or None
        mask = _logit_mask(None if bias is None else bias[i].to(q.dtype), keep)
        if dropout_p > 0.0:
            out = torch.matmul(F.dropout(_probabilities(qb, kb, mask), dropout_p, training=True), vb)
        else:
            out = _Attention.apply(qb, kb, vb, mask)
        blocks.append(out.transpose(1, 2))  # (B_b, N_b, H, E)
    return layout.scatter(blocks)  # (T, H, E)
