"""The infinitesimal (Lie-derivative) equivariance error.

For a generator ``A`` of the group's Lie algebra, the Lie derivative of ``fn`` is

    (L_A fn)(x) = d/dt [ rho_out(exp(-t A)) fn(exp(t A) . x) ]  at t = 0,

which vanishes for every ``A`` when ``fn`` is exactly equivariant (Gruver et al., "The Lie derivative
for measuring learned equivariance", ICLR 2023). It is computed with automatic differentiation, never
by finite differences, so it is exact up to rounding:

* ``mode="double_backward"``: the double-backward trick (differentiate the vector-Jacobian product
  ``v -> v^T dy/dt`` with respect to ``v``); one forward and two backward passes, needs second-order
  formulas for every op (``torch.cdist`` for instance has none);
* ``mode="reverse"``: one first-order backward pass per output element; works for any differentiable
  ``fn``, including one that calls ``torch.autograd.grad(..., create_graph=True)`` itself;
* ``mode="forward"``: one forward-mode pass (``torch.func.jvp``); needs forward-AD formulas for every
  op, and torch's first forward-mode call in a process takes seconds to set up;
* ``mode="auto"`` (default): double backward, falling back to reverse when an op cannot do it.

If ``fn`` cuts the graph (``no_grad``, ``detach``) the derivative cannot be taken and torch's error is
raised rather than a misleading zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
from ._actions import as_output_action


@dataclass(frozen=True)
class InfinitesimalReport:
    """Norms of the Lie derivative, one per generator.

    Attributes:
        abs_norms: Frobenius norm of ``L_A fn(x)`` over the whole output, per generator.
        rel_norms: ``abs_norms`` divided by ``|| fn(x) ||`` (plus epsilon).
        abs_max: largest of ``abs_norms``.
        rel_max: largest of ``rel_norms``.
        dtype: the working precision (least precise of the requested dtype, inputs, modules, outputs).
    """

    abs_norms: tuple[float, ...]
    rel_norms: tuple[float, ...]
    abs_max: float
    rel_max: float
    dtype: torch.dtype

    def __str__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        norms = ", ".join(f"{v:.3e}" for v in self.abs_norms)
        return (
            f"Lie-derivative error ({dtype}, {len(self.abs_norms)} generators): abs [{norms}] "
            f"max {self.abs_max:.3e} | rel max {self.rel_max:.3e}"
        )


def lie_derivative(
    fn: Callable,
    x: Any,
    generator: torch.Tensor,
    *,
    input_action: Callable | None = None,
    output_action: object = None,
    output_generator_action: Callable | None = None,
    batch_size: int | None = None,
    mode: Literal["auto", "double_backward", "reverse", "forward"] = "auto",
) -> torch.Tensor:
    """The Lie derivative ``d/dt [rho_out(exp(-tA)) fn(exp(tA) . x)]`` at ``t = 0``.

    Args:
        fn: the function under test (called in the precision of ``x`` and ``generator``).
        x: a batch of inputs, a tensor ``(B, ...)`` or anything ``input_action`` understands.
        generator: ``(d, d)`` Lie-algebra element ``A``.
        input_action: ``(g, x) -> g . x`` with ``g`` ``(B, d, d)``; default ``Group.act``.
        output_action: finite output action (any spelling accepted by ``as_output_action``), which is
            differentiated through; ``None`` means invariance.
        output_generator_action: alternatively, the Lie-algebra action ``(A, y) -> d rho(A) y`` with
            ``A`` ``(B, d, d)``; the derivative is then ``J_fn(x)[A . x] - d rho(A) fn(x)``.
        batch_size: ``B`` when it cannot be read from ``x``.
        mode: how to differentiate (see the module docstring).

    Returns:
        Tensor shaped like ``fn(x)``.

    Example:
        >>> x = torch.randn(2, 5, 3, dtype=torch.float64)
        >>> a = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> d = lie_derivative(lambda p: p[..., 0].sum(dim=1), x, a)  # d/dt sum_i (e^{tA} x_i)_x
        >>> torch.allclose(d, -x[..., 1].sum(dim=1))
        True
    """
    if output_action is not None and output_generator_action is not None:
        raise ValueError("give output_action or output_generator_action, not both")
    act = Group.act if input_action is None else input_action
    rho = as_output_action(output_action)
    n = batch_size_of(x, batch_size)
    a = generator.expand(n, *generator.shape[-2:])  # (B, d, d)

    def along_orbit(t: torch.Tensor) -> torch.Tensor:
        y = fn(act(torch.linalg.matrix_exp(t * a), x))
        if output_generator_action is not None:
            return y
        return rho(torch.linalg.matrix_exp(-t * a), y)

    t0 = torch.zeros((), dtype=generator.dtype, device=generator.device)
    if mode == "forward":
        with warnings.catch_warnings():
            # torch's first forward-AD call scripts its jvp decompositions, which warns about
            # torch.jit.script's deprecation from inside torch; nothing the caller can act on
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
            y, derivative = torch.func.jvp(along_orbit, (t0,), (torch.ones_like(t0),))
    elif mode == "double_backward":
        y, derivative = _double_backward_derivative(along_orbit, t0)
    elif mode == "reverse":
        y, derivative = _reverse_derivative(along_orbit, t0)
    elif mode == "auto":
        try:
            y, derivative = _double_backward_derivative(along_orbit, t0)
        except (NotImplementedError, RuntimeError):
            y, derivative = _reverse_derivative(along_orbit, t0)
    else:
        raise ValueError(f"mode must be 'auto', 'double_backward', 'reverse' or 'forward', got {mode!r}")
    if output_generator_action is not None:
        derivative = derivative - output_generator_action(a, y.detach())
    return derivative.detach()


def _double_backward_derivative(h: Callable, t0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h(t0), dh/dt(t0))``: the gradient of ``v^T dh/dt`` with respect to the dummy cotangent ``v``."""
    t = t0.detach().requires_grad_(True)
    with torch.enable_grad():
        y = h(t)
        v = torch.zeros_like(y, requires_grad=True)
        (vjp,) = torch.autograd.grad(y, t, grad_outputs=v, create_graph=True, allow_unused=True)
        if vjp is None or not vjp.requires_grad:  # y does not depend on t
            return y.detach(), torch.zeros_like(y).detach()
        (derivative,) = torch.autograd.grad(vjp, v, allow_unused=True)
    if derivative is None:
        derivative = torch.zeros_like(y)
    return y.detach(), derivative.detach()


def _reverse_derivative(h: Callable, t0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h(t0), dh/dt(t0))`` for a scalar ``t`` by one backward pass per output element."""
    t = t0.detach().requires_grad_(True)
    with torch.enable_grad():
        y = h(t)
        flat = y.reshape(-1)
        columns = []
        for i in range(flat.shape[0]):
            (d,) = torch.autograd.grad(flat[i], t, retain_graph=True, allow_unused=True)
            columns.append(torch.zeros_like(t) if d is None else d)
    derivative = torch.stack(columns).reshape(y.shape) if columns else torch.zeros_like(y)
    return y.detach(), derivative.detach()


def infinitesimal_error(
    fn: Callable,
    x: Any,
    *,
    generators: torch.Tensor,
    input_action: Callable | None = None,
    output_action: object = None,
    output_generator_action: Callable | None = None,
    dtype: torch.dtype | None = torch.float64,
    batch_size: int | None = None,
    mode: Literal["auto", "double_backward", "reverse", "forward"] = "auto",
) -> InfinitesimalReport:
    """Norms of the Lie derivative of ``fn`` along each generator: 0 for an exactly equivariant ``fn``.

    Args:
        fn: the function or module under test (a module is evaluated on a copy cast to ``dtype``).
        x: a batch of inputs.
        generators: ``(k, d, d)`` (or one ``(d, d)``) Lie-algebra basis, e.g. the three rotation generators.
        input_action, output_action, output_generator_action, batch_size, mode: as in
            :func:`lie_derivative`.
        dtype: working precision (default float64); ``None`` keeps the inputs' precision.

    Returns:
        An :class:`InfinitesimalReport`.
    """
    fn = cast_callable(fn, dtype)
    output_action = cast_callable(output_action, dtype)
    x = cast_input(x, dtype)
    gens = generators.to(dtype=working_dtype(x, dtype), device=device_of(x))
    gens = gens.reshape(-1, *gens.shape[-2:])  # (k, d, d)
    y = fn(x).detach()
    scale = y.norm().item()
    eps = torch.finfo(y.dtype).eps
    abs_norms = []
    for a in gens:
        d = lie_derivative(
            fn,
            x,
            a,
            input_action=input_action,
            output_action=output_action,
            output_generator_action=output_generator_action,
            batch_size=batch_size,
            mode=mode,
        )
        abs_norms.append(d.norm().item())
    rel_norms = [v / (scale + eps) for v in abs_norms]
    return InfinitesimalReport(
        abs_norms=tuple(abs_norms),
        rel_norms=tuple(rel_norms),
        abs_max=max(abs_norms),
        rel_max=max(rel_norms),
        dtype=reported_dtype(dtype, x, fn, gens, y),
    )
