"""How a group element acts on a function's output.

An *output action* is a callable ``(g, y) -> y'`` with ``g`` of shape ``(B, d, d)`` and ``y`` whose
leading dimension is ``B``. Probes accept three spellings and turn them into that callable with
:func:`as_output_action`:

* ``None`` -- the trivial action (scalars, invariant outputs), :func:`scalar_action`;
* a *representation*: an object with a ``.D(g) -> (B, m, m)`` method (such as
  ``latentequiv.representations.Irreps``), an ``e3nn.o3.Irreps`` (same basis) or a callable
  taking exactly one argument ``rho(g) -> (B, m, m)``; it acts on the last dimension of ``y``
  (size ``m``) as ``y @ rho(g).T``;
* any other callable ``(g, y) -> y'`` (for instance a tau-network), used as it is.

:func:`vector_action` is the defining representation: ``g`` itself acts on the last dimension.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

OutputAction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def apply_matrices(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Act with one matrix per leading entry on the last dimension of ``y``.

    Args:
        m: ``(B, k, k)`` matrices (``B`` may be 1 to broadcast).
        y: ``(B, ..., k)`` tensor.

    Returns:
        ``y`` with ``y[b, ..., :] -> m[b] @ y[b, ..., :]``, same shape as ``y``.
    """
    flat = y.reshape(y.shape[0], -1, y.shape[-1])  # (B, M, k)
    return (flat @ m.to(y.dtype).transpose(-1, -2)).reshape(y.shape)


def scalar_action(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The trivial action: outputs are invariant."""
    return y


def vector_action(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The defining action: ``g`` acts on the last dimension of ``y`` (size ``d``), ``y -> y @ g.T``."""
    return apply_matrices(g, y)


def representation_action(rho: Callable[[torch.Tensor], torch.Tensor]) -> OutputAction:
    """The output action of a representation ``rho(g) -> (B, m, m)`` on the last dimension of ``y``.

    Args:
        rho: a callable returning representation matrices, or an object with a ``.D`` method.

    Example:
        >>> action = representation_action(lambda g: g)  # the defining representation
        >>> g = torch.eye(3)[None]
        >>> action(g, torch.ones(1, 5, 3)).shape
        torch.Size([1, 5, 3])
    """
    matrices = rho.D if _has_D(rho) else rho

    def action(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return apply_matrices(matrices(g), y)

    return action


def as_output_action(spec: object) -> OutputAction:
    """Turn any accepted spelling of an output action (see the module docstring) into ``(g, y) -> y'``."""
    if spec is None:
        return scalar_action
    if _is_e3nn_irreps(spec):
        from ..representations import Irreps

        return representation_action(Irreps(spec))
    if _has_D(spec):
        return representation_action(spec)
    if not callable(spec):
        raise TypeError(f"output action must be None, a representation or a callable, got {spec!r}")
    if _required_positional(spec) == 1:
        return representation_action(spec)
    return spec


def _is_e3nn_irreps(obj: object) -> bool:
    """An ``e3nn.o3.Irreps`` (recognised without importing e3nn): a tuple with ``D_from_matrix``."""
    return isinstance(obj, tuple) and callable(getattr(obj, "D_from_matrix", None))


def _has_D(obj: object) -> bool:
    return callable(getattr(obj, "D", None))


def _required_positional(fn: Callable) -> int:
    """Number of required positional parameters; 2 (an action) when it cannot be told."""
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in positional and p.default is inspect.Parameter.empty)
