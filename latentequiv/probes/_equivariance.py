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
    call_in_precision,
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
    input_action: InputAction | tuple | None = None,
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
        x: a batch of inputs: a tensor ``(B, ...)`` or any object ``input_action`` understands; a
            tuple means several inputs, ``fn(*x)``, each with leading dimension ``B``.
        group: the group to sample from.
        input_action: ``(g, x) -> g . x`` with ``g`` ``(B, d, d)``; default ``group.act`` (points/vectors).
            For several inputs, a tuple with one action per input (``None``: that input does not move).
        output_action: ``None`` (invariance), a representation (``.D(g)`` or ``rho(g) -> (B, m, m)``,
            or an ``Irreps``) or a callable ``(g, y) -> y'``; see ``latentequiv.probes.as_output_action``.
            For a tuple of outputs, a tuple with one action per output; errors are then taken over
            all outputs of an item together.
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
        output_action=output_action_for(output_action, dtype),
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
    input_action: InputAction | tuple | None = None,
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
    input_action: InputAction | tuple | None = None,
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


def input_action_for(group: Group, x: Any, input_action: object) -> Callable[[torch.Tensor, Any], Any]:
    """The action on the inputs: ``group.act``, the given callable, or one action per input of a tuple.

    With several inputs (``x`` a tuple, ``fn(*x)``) ``input_action`` may be a tuple with one entry per
    input in any output-action spelling (``None``: the input does not change, ``vector_action``, an
    ``Irreps``, ...); ``None`` for the whole tuple moves every input by ``group.act``.
    """
    if isinstance(input_action, tuple):
        if not isinstance(x, tuple) or len(x) != len(input_action):
            raise ValueError("a tuple of input actions needs a tuple of inputs of the same length")
        actions = tuple(as_output_action(a) for a in input_action)
        return lambda g, xs: tuple(a(g, xi) for a, xi in zip(actions, xs, strict=True))
    if isinstance(x, tuple) and input_action is None:
        return lambda g, xs: tuple(group.act(g, xi) for xi in xs)
    return group.act if input_action is None else input_action


def output_action_for(output_action: object, dtype: torch.dtype | None) -> OutputAction:
    """One action, or a tuple of actions for a tuple of outputs (applied component by component)."""
    if isinstance(output_action, tuple) and not callable(getattr(output_action, "D_from_matrix", None)):
        actions = tuple(as_output_action(cast_callable(a, dtype)) for a in output_action)

        def act(g: torch.Tensor, ys: Any) -> tuple:
            if not isinstance(ys, tuple) or len(ys) != len(actions):
                raise ValueError(
                    f"{len(actions)} output actions for an output that is not a {len(actions)}-tuple"
                )
            return tuple(a(g, y) for a, y in zip(actions, ys, strict=True))

        return act
    return as_output_action(cast_callable(output_action, dtype))


def _detach(y: Any) -> Any:
    return tuple(_detach(part) for part in y) if isinstance(y, tuple) else y.detach()


def _difference(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(_difference(p, q) for p, q in zip(a, b, strict=True))
    return a - b


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, tuple) and not hasattr(x, "_fields") else x


def _measure(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: object,
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
    act = input_action_for(group, x, input_action)
    several = isinstance(x, tuple) and not hasattr(x, "_fields")

    def call(inputs: Any) -> Any:
        return _detach(call_in_precision(fn, tuple(inputs) if several else (inputs,), dtype))

    n = batch_size_of(_first(x), batch_size)
    sample_dtype = working_dtype(x, dtype)
    y = call(x)
    y_dtype = _first(y).dtype if isinstance(_first(y), torch.Tensor) else sample_dtype
    eps = torch.finfo(y_dtype if y_dtype.is_floating_point else sample_dtype).eps
    abs_errors, rel_errors, elements = [], [], []
    for _ in range(n_samples):
        g = group.sample(n, generator=generator, dtype=sample_dtype, device=device_of(_first(x)))
        reference = call(act(g, x))
        expected = _detach(output_action(g, y))
        err = item_norms(_difference(reference, expected))  # (B,)
        abs_errors.append(err)
        rel_errors.append(err / (item_norms(reference) + eps))
        elements.append(g)
    precision = reported_dtype(dtype, x, fn, output_action, y)
    return summarise(
        abs_errors, rel_errors, n_samples=n_samples, dtype=precision, kind=kind, elements=elements
    )
