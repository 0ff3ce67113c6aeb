"""Translation invariance and equivariance: ``fn(x + t)`` against ``fn(x)`` or ``fn(x) + t``.

Translations are not compact, so there is no uniform distribution to sample; ``t`` is Gaussian with
standard deviation ``scale`` per coordinate, one vector per item, shifting every point of that item.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._precision import call_in_precision, cast_callable, cast_input, reported_dtype
from ._report import EquivarianceReport, item_norms, summarise


def translation_error(
    fn: Callable,
    x: torch.Tensor,
    *,
    equivariant: bool = False,
    n_samples: int = 8,
    scale: float = 1.0,
    dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    """Measure ``|| fn(x + t) - fn(x) ||`` (invariance) or ``|| fn(x + t) - (fn(x) + t) ||`` (equivariance).

    Args:
        fn: the function or module (a module, or a method bound to one, runs on a copy cast to ``dtype``).
        x: ``(B, N, d)`` point sets or ``(B, d)`` points.
        equivariant: outputs are positions that move with the input (last dimension ``d``).
        n_samples: translations drawn per item.
        scale: standard deviation of each coordinate of ``t``.
        dtype: working precision (default float64); ``None`` keeps the inputs'.
        generator: random generator for reproducible sampling.

    Returns:
        An :class:`EquivarianceReport` of kind ``"translation invariance"`` or ``"translation
        equivariance"``; ``worst_g`` holds the translation vector of the worst item.

    Example:
        >>> x = torch.randn(4, 6, 3, dtype=torch.float64)
        >>> centroid = lambda p: p.mean(dim=1)
        >>> translation_error(centroid, x, equivariant=True).rel_max < 1e-12
        True
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    fn = cast_callable(fn, dtype)
    x = cast_input(x, dtype)
    y = call_in_precision(fn, (x,), dtype).detach()
    eps = torch.finfo(y.dtype if y.is_floating_point() else x.dtype).eps
    abs_errors, rel_errors, shifts = [], [], []
    for _ in range(n_samples):
        t = scale * torch.randn(x.shape[0], x.shape[-1], generator=generator, dtype=torch.float64)
        t = t.to(dtype=x.dtype, device=x.device)  # (B, d)
        moved = x + t.reshape(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
        reference = call_in_precision(fn, (moved,), dtype).detach()
        expected = y + t.reshape(y.shape[0], *([1] * (y.dim() - 2)), t.shape[-1]) if equivariant else y
        err = item_norms(reference - expected)
        abs_errors.append(err)
        rel_errors.append(err / (item_norms(reference) + eps))
        shifts.append(t)
    kind = "translation equivariance" if equivariant else "translation invariance"
    return summarise(
        abs_errors,
        rel_errors,
        n_samples=n_samples,
        dtype=reported_dtype(dtype, x, fn, y),
        kind=kind,
        elements=shifts,
    )
