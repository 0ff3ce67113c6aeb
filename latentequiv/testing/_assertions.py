"""Assertions over the probes, with tolerances that follow the working precision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..groups import Group
from ..probes import EquivarianceReport, equivariance_error


@dataclass(frozen=True)
class Tolerance:
    """Absolute and relative tolerance; a check passes if all errors are within either."""

    atol: float
    rtol: float


_TOLERANCES = {
    torch.float64: Tolerance(atol=1e-10, rtol=1e-10),
    torch.float32: Tolerance(atol=1e-5, rtol=1e-4),
    torch.float16: Tolerance(atol=1e-2, rtol=1e-2),
    torch.bfloat16: Tolerance(atol=5e-2, rtol=5e-2),
}


def default_tolerance(dtype: torch.dtype) -> Tolerance:
    """The default tolerance for a precision: tight for float64, looser for float32, loose for 16 bits.

    Example:
        >>> default_tolerance(torch.float64)
        Tolerance(atol=1e-10, rtol=1e-10)
    """
    return _TOLERANCES.get(dtype, _TOLERANCES[torch.float32])


def assert_equivariant(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: Callable | None = None,
    output_action: object = None,
    n_samples: int = 8,
    dtype: torch.dtype | None = torch.float64,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Assert ``fn(g . x) == rho_out(g) fn(x)`` for sampled ``g``, within per-dtype tolerances.

    Runs :func:`latentequiv.probes.equivariance_error` (same arguments) and passes when every error is
    within ``atol`` or every relative error is within ``rtol``. Tolerances default to
    :func:`default_tolerance` of the precision the outputs were computed in.

    Returns:
        The report, so a passing test can still log or inspect it.

    Raises:
        AssertionError: quoting the report and the tolerances.

    Example:
        >>> from latentequiv.groups import SO3
        >>> x = torch.randn(2, 7, 3, dtype=torch.float64)
        >>> _ = assert_equivariant(lambda p: p.sum(dim=1), x, group=SO3(), output_action=lambda g: g)
    """
    report = equivariance_error(
        fn,
        x,
        group=group,
        input_action=input_action,
        output_action=output_action,
        n_samples=n_samples,
        dtype=dtype,
        generator=generator,
        batch_size=batch_size,
    )
    _check(fn, report, atol, rtol)
    return report


def assert_invariant(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: Callable | None = None,
    n_samples: int = 8,
    dtype: torch.dtype | None = torch.float64,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Assert ``fn(g . x) == fn(x)`` for sampled ``g``: :func:`assert_equivariant` with scalar outputs.

    Example:
        >>> from latentequiv.groups import SO3
        >>> x = torch.randn(2, 7, 3, dtype=torch.float64)
        >>> _ = assert_invariant(lambda p: torch.cdist(p, p).sum(dim=(1, 2)), x, group=SO3())
    """
    return assert_equivariant(
        fn,
        x,
        group=group,
        input_action=input_action,
        output_action=None,
        n_samples=n_samples,
        dtype=dtype,
        atol=atol,
        rtol=rtol,
        generator=generator,
        batch_size=batch_size,
    )


def _check(fn: Callable, report: EquivarianceReport, atol: float | None, rtol: float | None) -> None:
    default = default_tolerance(report.dtype)
    atol = default.atol if atol is None else atol
    rtol = default.rtol if rtol is None else rtol
    if report.abs_max <= atol or report.rel_max <= rtol:
        return
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    raise AssertionError(f"{name} fails the {report.kind} check (atol={atol:g}, rtol={rtol:g}):\n  {report}")
