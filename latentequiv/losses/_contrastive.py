"""InfoNCE variant of the latent loss: the predicted embedding must pick out its own partner."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..tau import Tau
from ._reduce import check_mask, token_mean, zero_padding


def contrastive_latent_loss(
    tau: Tau,
    z: torch.Tensor,
    z_transformed: torch.Tensor,
    g: torch.Tensor,
    *,
    temperature: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""InfoNCE with in-batch negatives between ``tau(g, z)`` and ``z_transformed``.

    With ``p_i = tau(g_i, z_i)``, ``q_j = z^g_j`` and cosine similarities
    ``s_ij = cos(p_i, q_j) / temperature``, the loss is the cross-entropy of picking ``j = i``:

    .. math::
        \mathcal{L} = -\frac{1}{B} \sum_i \log \frac{\exp s_{ii}}{\sum_j \exp s_{ij}}

    (van den Oord et al., 2018). The positive of sample ``i`` is its own transformed embedding; the
    negatives are the transformed embeddings of the other samples of the batch. Unlike the squared
    error it ignores the embedding scale and cannot be won by collapsing all embeddings to one point:
    uninformative embeddings give exactly ``log B``.

    Token embeddings ``(B, N, D)`` are mean-pooled over their valid tokens **after** ``tau``, so each
    sample is one item. Treating tokens as items would make other tokens of the same sample (which may
    legitimately look alike, e.g. symmetric copies) negatives. Samples without valid tokens are dropped.

    Args:
        tau: the tau-network, ``tau(g, z) -> z'``.
        z: embeddings of the original inputs.
        z_transformed: embeddings of the transformed inputs ``g . x``.
        g: the group elements that transformed the inputs.
        temperature: softmax temperature of the cosine similarities.
        mask: ``True`` for valid tokens (token embeddings only).

    Shape:
        - z, z_transformed: ``(B, D)`` or ``(B, N, D)``
        - g: ``(B, d, d)``
        - mask: ``(B, N)`` bool
        - output: scalar (mean over samples)

    Example:
        >>> from latentequiv.tau import IdentityTau
        >>> z, g = torch.ones(8, 4), torch.eye(3).expand(8, 3, 3)
        >>> round(float(contrastive_latent_loss(IdentityTau(), z, z, g)), 4)  # log(8)
        2.0794
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if z.shape != z_transformed.shape:
        raise ValueError(f"z {tuple(z.shape)} and z_transformed {tuple(z_transformed.shape)} differ")
    check_mask(mask, z)
    z = zero_padding(z, mask)
    z_transformed = zero_padding(z_transformed, mask)
    p = tau(g, z)  # (B, [N,] D)
    q = z_transformed
    keep = None
    if z.dim() == 3:
        p, q = token_mean(p, mask), token_mean(q, mask)  # (B, D)
        if mask is not None:
            keep = mask.any(dim=1)  # (B,) items with at least one token
    logits = F.normalize(p, dim=-1) @ F.normalize(q, dim=-1).transpose(0, 1) / temperature  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    if keep is not None:
        # empty items take no part, neither as anchors nor as negatives; masking instead of
        # dropping them keeps the shapes fixed, so the host never reads the mask
        logits = logits.masked_fill(~keep[None, :], -math.inf)
        target = target.masked_fill(~keep, -100)  # cross_entropy's ignore_index
    return F.cross_entropy(logits, target, ignore_index=-100)
