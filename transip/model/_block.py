"""Pre-norm Transformer block on packed tokens: ``h + Attn(LN(h))``, then ``h + MLP(LN(h))``."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._attention import AttentionLayout, attend


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

    Shape:
        - h: ``(T, D)``; pair_phi: ``[(B_b, N_b, N_b, K)]`` per bucket or ``None``
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
        pair_phi: list[torch.Tensor] | None = None,
        *,
        double_backward: bool = False,
    ) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(h), "t (three h e) -> three t h e", three=3, h=self.n_heads)
        bias = None
        if self.rbf_bias is not None and pair_phi is not None:
            bias = [rearrange(self.rbf_bias(phi), "b i j h -> b h i j") for phi in pair_phi]
        p = self.attn_dropout if self.training else 0.0
        out = attend(q, k, v, layout, bias, dropout_p=p, double_backward=double_backward)  # (T, H, E)
        return self.dropout(self.out(rearrange(out, "t h e -> t (h e)")))

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, attn_dropout={self.attn_dropout}"


class TransformerBlock(nn.Module):
    """One pre-norm block with a GELU MLP of width ``mlp_ratio * D``.

    Shape:
        - h: ``(T, D)``
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
        pair_phi: list[torch.Tensor] | None = None,
        *,
        double_backward: bool = False,
    ) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), layout, pair_phi, double_backward=double_backward)
        return h + self.mlp(self.norm2(h))
