"""Pre-norm Transformer block on packed tokens: ``h + Attn(LN(h))``, then ``h + MLP(LN(h))``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._attention import AttentionLayout, attend


def rbf_logit_biases(pair_phi: list[torch.Tensor], weights: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Every layer's RBF attention bias ``w_l . phi(r_ij)`` from one matmul per bucket.

    Stacking the layers' ``(H, K)`` maps into one ``(L H, K)`` matrix reads the ``(N, N, K)`` pair
    features once instead of once per layer, and their gradient arrives as one tensor instead of
    ``L`` tensors summed (at 1000 atoms, each is 256 MB). :class:`~transip.model.TransIP` goes one
    step further and never stores the pair features (:meth:`RadialBasis.projected`), then splits
    the projection with :func:`split_layers`.

    Shape:
        - pair_phi: ``[(B_b, N_b, N_b, K)]`` per bucket; weights: ``L`` tensors ``(H, K)``
        - output: ``L`` lists (one per layer) of ``(B_b, H, N_b, N_b)`` per bucket (views)
    """
    w = torch.cat(weights)  # (L H, K)
    return split_layers([F.linear(phi, w) for phi in pair_phi], len(weights))


def split_layers(projected: list[torch.Tensor], n_layers: int) -> list[list[torch.Tensor]]:
    """``[(B_b, N_b, N_b, L H)]`` per bucket to ``L`` lists of ``(B_b, H, N_b, N_b)`` views.

    ``unbind`` (not slicing) so that the layers' gradients are stacked once, not each written into
    a zero tensor of the full size.
    """
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    for y in projected:
        y = y.unflatten(-1, (n_layers, -1))  # (B_b, N_b, N_b, L, H)
        for layer, bias in zip(per_layer, y.permute(3, 0, 4, 1, 2).unbind(0), strict=True):
            layer.append(bias)  # (B_b, H, N_b, N_b)
    return per_layer


class SelfAttention(nn.Module):
    """Multi-head self-attention within each molecule, with an optional RBF logit bias.

    The bias of head ``h`` on pair ``(i, j)`` is ``w_h . phi(r_ij)`` (paper, Eq. 10); each layer
    owns its own ``w``. It carries no constant term: softmax ignores a shift shared by all keys.

    Args:
        d_model: width ``D``.
        n_heads: heads ``H``.
        num_rbf: RBF channels ``K`` of the logit bias (0: no bias).
        dropout: dropout after the output projection.
        attn_dropout: dropout on the attention weights.

    ``forward`` takes the logit bias already projected (:func:`rbf_logit_biases`, for all layers
    at once, as :class:`~transip.model.TransIP` does).

    Shape:
        - h: ``(T, D)``; bias: ``[(B_b, H, N_b, N_b)]`` per bucket or ``None``
        - output: ``(T, D)``
    """

    def __init__(
        self, d_model: int, n_heads: int, num_rbf: int = 0, dropout: float = 0.0, attn_dropout: float = 0.0
    ):
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.rbf_bias = nn.Linear(num_rbf, n_heads, bias=False) if num_rbf > 0 else None
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        h: torch.Tensor,
        layout: AttentionLayout,
        bias: list[torch.Tensor] | None = None,
        *,
        double_backward: bool = False,
    ) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(h), "t (three h e) -> three t h e", three=3, h=self.n_heads)
        p = self.attn_dropout if self.training else 0.0
        out = attend(q, k, v, layout, bias, dropout_p=p, double_backward=double_backward)  # (T, H, E)
        return self.dropout(self.out(rearrange(out, "t h e -> t (h e)")))

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, attn_dropout={self.attn_dropout}"


class TransformerBlock(nn.Module):
    """One pre-norm block with a GELU MLP of width ``mlp_ratio * D``.

    Shape:
        - h: ``(T, D)``; bias: attention logit bias, see :class:`SelfAttention`
        - output: ``(T, D)``
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        num_rbf: int = 0,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ):
        super().__init__()
        hidden = int(round(mlp_ratio * d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, num_rbf, dropout, attn_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout)
        )

    def forward(
        self,
        h: torch.Tensor,
        layout: AttentionLayout,
        bias: list[torch.Tensor] | None = None,
        *,
        double_backward: bool = False,
    ) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), layout, bias, double_backward=double_backward)
        return h + self.mlp(self.norm2(h))
