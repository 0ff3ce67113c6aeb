"""The latent-equivariance loss of TransIP: does a tau-network explain how the embedding moves?"""

from __future__ import annotations

import torch

from ..tau import Tau
from ._reduce import check_mask, token_mean, zero_padding

_REDUCTIONS = ("mean", "sum", "none")


def latent_equivariance_loss(
    tau: Tau,
    z: torch.Tensor,
    z_transformed: torch.Tensor,
    g: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    normalize: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Squared error between the predicted and the actual embedding of a transformed input.

    .. math::
        \ell_b = \operatorname{mean}_{n \in \text{valid}(b)}
            \lVert \tau(g_b, z_{b,n}) - z^{g}_{b,n} \rVert^2

    where ``z = f(x)`` and ``z_transformed = f(g . x)`` for an encoder ``f`` (Elhag et al., 2025,
    "TransIP", Eq. 3): the squared norm is summed over the width ``D``, averaged over the valid tokens
    of each sample, then reduced over the batch. Padding tokens (``mask == False``) are zeroed before
    ``tau`` sees them, so their values, even NaN, reach neither the loss nor its gradient.

    ``normalize=True`` divides by the embedding scale
    ``s = mean_{b,n} (||z_{b,n}||^2 + ||z^g_{b,n}||^2) / 2`` over the valid tokens of the batch, **not**
    detached. The raw loss can be won by an encoder that shrinks its embeddings toward zero; the
    normalised one cannot: for a tau linear in ``z`` it is exactly invariant to rescaling the
    embeddings, and for a nonlinear tau ``tau(g, 0) != 0`` makes shrinking costly. Normalising does not
    prevent a collapse to a constant non-zero embedding (with ``tau`` the identity); a task loss or
    :func:`contrastive_latent_loss` does.

    For packed token layouts without padding (``T`` tokens of ``B`` samples with a sample index
    ``idx`` of shape ``(T,)``) call it with ``g[idx]`` ``(T, d, d)`` and ``z`` ``(T, D)``: each token is then
    one item, so the mean weights samples by their number of tokens.

    Args:
        tau: the tau-network, ``tau(g, z) -> z'``.
        z: embeddings of the original inputs.
        z_transformed: embeddings of the transformed inputs ``g . x``.
        g: the group elements that transformed the inputs.
        mask: ``True`` for valid tokens (token embeddings only). A sample without valid tokens gives 0
            and is left out of ``"mean"``.
        normalize: divide by the embedding scale (see above).
        reduction: ``"mean"`` over samples, ``"sum"``, or ``"none"`` for per-sample values.

    Shape:
        - z, z_transformed: ``(B, D)`` or ``(B, N, D)``
        - g: ``(B, d, d)``
        - mask: ``(B, N)`` bool
        - output: scalar, or ``(B,)`` for ``reduction="none"``

    Example:
        >>> from latentequiv.tau import IdentityTau
        >>> z = torch.randn(4, 8)
        >>> g = torch.eye(3).expand(4, 3, 3)
        >>> float(latent_equivariance_loss(IdentityTau(), z, z, g))
        0.0
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if z.shape != z_transformed.shape:
        raise ValueError(f"z {tuple(z.shape)} and z_transformed {tuple(z_transformed.shape)} differ")
    check_mask(mask, z)
    z = zero_padding(z, mask)
    z_transformed = zero_padding(z_transformed, mask)
    err = (tau(g, z) - z_transformed).pow(2).sum(dim=-1)  # (B,) or (B, N)
    valid = torch.ones(z.shape[0], dtype=torch.bool, device=z.device) if mask is None else mask.any(dim=1)
    if z.dim() == 3:
        err = token_mean(err, mask)  # (B,)
    if normalize:
        sq = 0.5 * (z.pow(2).sum(dim=-1) + z_transformed.pow(2).sum(dim=-1))  # (B,) or (B, N)
        if z.dim() == 3:
            sq = token_mean(sq, mask)  # (B,)
        scale = (sq * valid).sum() / valid.sum().clamp(min=1)
        err = err / scale.clamp(min=torch.finfo(err.dtype).eps)
    if reduction == "none":
        return err
    if reduction == "sum":
        return err.sum()
    return err.sum() / valid.sum().clamp(min=1)
