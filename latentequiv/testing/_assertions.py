"""Assertions over the probes, with tolerances that follow the working precision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..groups import Group
from ..probes import EquivarianceReport, equivariance_error, translation_error
from ._settings import current_settings


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
    input_action: Callable | tuple | None = None,
    output_action: object = None,
    n_samples: int | None = None,
    dtype: torch.dtype | None = torch.float64,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> EquivarianceReport:
    """Assert ``fn(g . x) == rho_out(g) fn(x)`` for sampled ``g``, within per-dtype tolerances.

    Runs :func:`latentequiv.probes.equivariance_error` (same arguments: several inputs as a tuple
    ``x`` with a tuple ``input_action``, tuple outputs with a tuple ``output_action``, parity through
    ``O3()`` and an ``Irreps`` such as ``"1x1e"``) and passes when every error is within ``atol`` or
    every relative error is within ``rtol``. Tolerances default to :func:`default_tolerance` of the
    precision the outputs were computed in. ``n_samples`` and ``generator`` default to the current
    settings (``--equivariance-samples`` / ``--equivariance-seed`` under pytest, see
    :func:`equivariance_settings`).

    Returns:
        The report, so a passing test can still log or inspect it.

    Raises:
        AssertionError: quoting the report, the tolerances, the failing item and group element, and a
            reproduction to paste.

    Example:
        >>> from latentequiv.groups import SO3
        >>> x = torch.randn(2, 7, 3, dtype=torch.float64)
        >>> _ = assert_equivariant(lambda p: p.sum(dim=1), x, group=SO3(), output_action=lambda g: g)
    """
    n_samples, generator = _defaults(n_samples, generator)
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
    _check(fn, report, atol, rtol, x=x, group=group, custom_action=input_action is not None)
    return report


def assert_invariant(
    fn: Callable,
    x: Any,
    *,
    group: Group,
    input_action: Callable | tuple | None = None,
    n_samples: int | None = None,
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


def assert_translation_invariant(
    fn: Callable,
    x: torch.Tensor,
    *,
    n_samples: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype | None = torch.float64,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    """Assert ``fn(x + t) == fn(x)`` for Gaussian shifts ``t`` of every point of an item
    (:func:`latentequiv.probes.translation_error`).

    Example:
        >>> x = torch.randn(2, 7, 3, dtype=torch.float64)
        >>> _ = assert_translation_invariant(lambda p: torch.cdist(p, p).sum(dim=(1, 2)), x)
    """
    n_samples, generator = _defaults(n_samples, generator)
    report = translation_error(fn, x, n_samples=n_samples, scale=scale, dtype=dtype, generator=generator)
    _check(fn, report, atol, rtol, x=x)
    return report


def assert_translation_equivariant(
    fn: Callable,
    x: torch.Tensor,
    *,
    n_samples: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype | None = torch.float64,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    """Assert ``fn(x + t) == fn(x) + t``: outputs are positions (last dimension ``d``) that move with
    the input.

    Example:
        >>> x = torch.randn(2, 7, 3, dtype=torch.float64)
        >>> _ = assert_translation_equivariant(lambda p: p.mean(dim=1), x)
    """
    n_samples, generator = _defaults(n_samples, generator)
    report = translation_error(
        fn, x, equivariant=True, n_samples=n_samples, scale=scale, dtype=dtype, generator=generator
    )
    _check(fn, report, atol, rtol, x=x)
    return report


def _defaults(n_samples: int | None, generator: torch.Generator | None) -> tuple[int, torch.Generator | None]:
    settings = current_settings()
    if n_samples is None:
        n_samples = settings.samples
    if generator is None and settings.seed is not None:
        generator = torch.Generator().manual_seed(settings.seed)
    return n_samples, generator


def _check(
    fn: Callable,
    report: EquivarianceReport,
    atol: float | None,
    rtol: float | None,
    *,
    x: Any,
    group: Group | None = None,
    custom_action: bool = False,
) -> None:
    default = default_tolerance(report.dtype)
    atol = default.atol if atol is None else atol
    rtol = default.rtol if rtol is None else rtol
    if report.abs_max <= atol or report.rel_max <= rtol:
        return
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    lines = [f"{name} fails the {report.kind} check (atol={atol:g}, rtol={rtol:g}):", f"  {report}"]
    call = getattr(fn, "__name__", "")
    lines += _culprit(call if call.isidentifier() else "fn", report, x, group, custom_action)
    raise AssertionError("\n".join(lines))


def _culprit(call: str, report: EquivarianceReport, x: Any, group: Group | None, custom: bool) -> list[str]:
    """Where the largest error is, and lines that reproduce it on that one item (``call``: a name to
    call the function by)."""
    if report.worst_item is None or report.worst_g is None:
        return []
    i, element = report.worst_item, torch.tensor(report.worst_g, dtype=torch.float64)
    what = "translation t" if element.dim() == 1 else "group element g"
    lines = [
        f"  largest error: item {i} of the batch, sample {report.worst_sample} of {report.n_samples}, "
        f"{what} = {element.tolist()}"
    ]
    item = x[i : i + 1] if isinstance(x, torch.Tensor) else None
    if item is None or item.numel() > _REPRO_NUMBERS:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        lines.append(f"  reproduce it on item {i} of your input ({shape}) with that element")
        return lines
    dtype = str(item.dtype)
    lines += [f"  reproduce (paste; {call} is the function under test, cast as the check cast it):"]
    lines.append("    import torch")
    lines.append(f"    x = torch.tensor({item.tolist()!r}, dtype={dtype})")
    if element.dim() == 1:
        lines.append(f"    t = torch.tensor({element.tolist()!r}, dtype={dtype})")
        moved = "x + t" if item.dim() == 2 else "x + t[None, None]"
        expected = f"{call}(x)" if report.kind == "translation invariance" else f"({call}(x) + t)"
        lines.append(f"    print(({call}({moved}) - {expected}).norm())  # {report.abs_max:.6g} here")
        return lines
    lines.append(f"    g = torch.tensor([{element.tolist()!r}], dtype={dtype})  # (1, d, d)")
    moved = f"{call}(<your input_action>(g, x))" if custom or group is None else f"{call}(x @ g.mT)"
    if report.kind == "invariance":
        lines.append(f"    print(({moved} - {call}(x)).norm())  # f(g.x) - f(x), {report.abs_max:.6g} here")
    else:
        lines.append(f"    print({moved}, {call}(x))  # f(g.x) against rho_out(g) applied to f(x)")
    return lines


_REPRO_NUMBERS = 600  # largest item printed in full
