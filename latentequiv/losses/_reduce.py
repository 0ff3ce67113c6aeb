"""Masked per-sample means shared by the latent losses."""

from __future__ import annotations

import torch


def check_mask(mask: torch.Tensor | None, z: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``mask`` is ``None`` or a bool ``(B, N)`` mask for ``z`` ``(B, N, D)``."""
    if mask is None:
        return
    if z.dim() != 3:
        raise ValueError(f"a mask needs token embeddings (B, N, D), got z of shape {tuple(z.shape)}")
    if mask.dtype != torch.bool or mask.shape != z.shape[:2]:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(z.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}"
        )


def zero_padding(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Replace padding tokens by zeros, so that NaN or huge padding values reach no output or gradient."""
    if mask is None:
        return z
    return z.masked_fill(~mask[..., None], 0.0)


def token_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid entries of the token axis.

    Args:
        x: per-token values.
        mask: ``True`` for valid tokens; ``None`` means all valid.

    Shape:
        - x: ``(B, N)`` or ``(B, N, D)``
        - mask: ``(B, N)``
        - output: ``(B,)`` or ``(B, D)``; a sample without valid tokens gives 0
    """
    if mask is None:
        return x.mean(dim=1)
    m = mask.to(x.dtype)
    if x.dim() == 3:
        m = m[..., None]  # (B, N, 1)
    x = torch.where(m > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x.sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
