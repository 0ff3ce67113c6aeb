"""Finite-sample equivariance, invariance and latent-equivariance errors.

For sampled group elements ``g`` the probes compare ``fn(g . x)`` with ``rho_out(g) fn(x)``:

    abs = || fn(g . x) - rho_out(g) fn(x) ||,      rel = abs / (|| fn(g . x) || + eps)

per item (leading dimension of the output). For the latent error of the paper
(``|| tau(g, f(x)) - f(g . x) ||``) the output action is a tau-network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._precision import (
    batch_size_of,
    cast_callable,
    cast_input,
    device_of,
    reported_dtype,
    working_dtype,
)
from ..groups import Group
from ._actions import OutputAction, as_output_action, scalar_action
from ._report import EquivarianceReport, item_norms, summarise

InputAction = Callable[[torch.Tensor, Any], Any]


def equivariance_error(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: InputAction | None = None,
    output_action: object = None,
    n_samples: int = 8,
    dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Measure how far ``fn`` is from equivariant: ``fn(g . x)`` against ``rho_out(g) fn(x)``.

    Args:
        fn: the function or module under test; an ``nn.Module`` is evaluated on a copy cast to ``dtype``
            (put it in ``eval()`` mode first if it uses dropout). A plain function is called as it is:
            cast the modules it closes over yourself, or pass ``dtype=None``.
        x: a batch of inputs: a tensor ``(B, ...)`` or any object ``input_action`` understands.
        group: the group to sample from.
        input_action: ``(g, x) -> g . x`` with ``g`` ``(B, d, d)``; default ``group.act`` (points/vectors).
        output_action: ``None`` (invariance), a representation (``.D(g)`` or ``rho(g) -> (B, m, m)``)
            or a callable ``(g, y) -> y'``; see ``latentequiv.probes.as_output_action``.
        n_samples: group elements drawn per input.
        dtype: working precision (default float64); ``None`` keeps the inputs' precision.
        generator: random generator for reproducible sampling.
        batch_size: ``B`` when it cannot be read from ``x.shape[0]`` or ``len(x)``.

    Shape:
        - x: ``(B, ...)``; each input gets its own group element in every sample.
        - fn(x): ``(B, ...)``, norms over all but the first dimension.

    Returns:
        An :class:`EquivarianceReport`; the probe never raises on large errors.

    Example:
        >>> from latentequiv.groups import SO3
        >>> x = torch.randn(4, 10, 3, dtype=torch.float64)
        >>> centroid = lambda p: p.mean(dim=1)  # equivariant: (B, N, 3) -> (B, 3)
        >>> report = equivariance_error(centroid, x, group=SO3(), output_action=lambda g: g)
        >>> report.rel_max < 1e-12
        True
    """
    return _measure(
        fn,
        x,
        group=group,
        input_action=input_action,
        output_action=as_output_action(cast_callable(output_action, dtype)),
        n_samples=n_samples,
        dtype=dtype,
        generator=generator,
        batch_size=batch_size,
        kind="equivariance" if output_action is not None else "invariance",
    )


def invariance_error(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: InputAction | None = None,
    n_samples: int = 8,
    dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Measure ``|| fn(g . x) - fn(x) ||``: :func:`equivariance_error` with the trivial output action.

    Example:
        >>> from latentequiv.groups import SO3
        >>> x = torch.randn(3, 6, 3, dtype=torch.float64)
        >>> radius = lambda p: p.norm(dim=-1).sum(dim=1)  # (B, N, 3) -> (B,)
        >>> print(invariance_error(radius, x, group=SO3()).rel_max < 1e-12)
        True
    """
    return _measure(
        fn,
        x,
        group=group,
        input_action=input_action,
        output_action=scalar_action,
        n_samples=n_samples,
        dtype=dtype,
        generator=generator,
        batch_size=batch_size,
        kind="invariance",
    )


def latent_equivariance_error(
    encoder: Callable,
    tau: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: Any,
    *,
    group: Group,
    input_action: InputAction | None = None,
    n_samples: int = 8,
    dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Measure the latent error ``|| tau(g, f(x)) - f(g . x) ||`` (absolute and relative to ``||f(g.x)||``).

    Args:
        encoder: ``f``, mapping a batch to embeddings ``(B, D)`` or ``(B, N, D)``.
        tau: ``tau(g, z) -> z'``, the learned action on embeddings (a module is cast to ``dtype``).
        x, group, input_action, n_samples, dtype, generator, batch_size: as in :func:`equivariance_error`.

    Returns:
        An :class:`EquivarianceReport` of kind ``"latent equivariance"``.
    """
    return _measure(
        encoder,
        x,
        group=group,
        input_action=input_action,
        output_action=cast_callable(tau, dtype),
        n_samples=n_samples,
        dtype=dtype,
        generator=generator,
        batch_size=batch_size,
        kind="latent equivariance",
    )


def _measure(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: InputAction | None,
    output_action: OutputAction,
    n_samples: int,
    dtype: torch.dtype | None,
    generator: torch.Generator | None,
    batch_size: int | None,
    kind: str,
) -> EquivarianceReport:
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    fn = cast_callable(fn, dtype)
    x = cast_input(x, dtype)
    act = group.act if input_action is None else input_action
    n = batch_size_of(x, batch_size)
    sample_dtype = working_dtype(x, dtype)
    y = fn(x).detach()
    eps = torch.finfo(y.dtype).eps if y.is_floating_point() else torch.finfo(sample_dtype).eps
    abs_errors, rel_errors = [], []
    for _ in range(n_samples):
        g = group.sample(n, generator=generator, dtype=sample_dtype, device=device_of(x))
        reference = fn(act(g, x)).detach()
        expected = output_action(g, y).detach()
        err = item_norms(reference - expected)  # (B,)
        abs_errors.append(err)
        rel_errors.append(err / (item_norms(reference) + eps))
    precision = reported_dtype(dtype, x, fn, output_action, y)
    return summarise(abs_errors, rel_errors, n_samples=n_samples, dtype=precision, kind=kind)
