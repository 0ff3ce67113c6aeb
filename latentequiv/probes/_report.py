"""The report every finite-sample probe returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EquivarianceReport:
    """Summary of ``||fn(g.x) - rho(g) fn(x)||`` over sampled group elements.

    Norms are taken per item (over all but the leading dimension of the output); the relative error
    divides by the norm of the reference ``fn(g.x)`` plus the machine epsilon of ``dtype``.

    Attributes:
        abs_mean: mean absolute error over items and samples.
        abs_max: largest absolute error.
        rel_mean: mean relative error.
        rel_max: largest relative error.
        n_samples: how many group elements were drawn per item.
        dtype: the working precision: the least precise of the requested dtype and the floating
            tensors of the inputs, the modules and the outputs.
        kind: what was measured: ``"equivariance"``, ``"invariance"`` or ``"latent equivariance"``
            (``"translation invariance"``, ``"translation equivariance"`` for translations).
        worst_item: index in the batch of the item with the largest absolute error (the row of the
            output's leading dimension, for packed outputs whose rows are not the inputs).
        worst_sample: which of the ``n_samples`` draws gave it.
        worst_g: the group element of that draw for that item as nested tuples of floats, ``d x d``
            (for translations the vector, ``d``); ``torch.tensor(report.worst_g)`` rebuilds it.
            ``None`` when the output's rows are not the batch's items (packed outputs).
    """

    abs_mean: float
    abs_max: float
    rel_mean: float
    rel_max: float
    n_samples: int
    dtype: torch.dtype
    kind: str = "equivariance"
    worst_item: int | None = None
    worst_sample: int | None = None
    worst_g: tuple | None = None

    def __str__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"{self.kind} error ({dtype}, {self.n_samples} samples): "
            f"abs mean {self.abs_mean:.3e} max {self.abs_max:.3e} | "
            f"rel mean {self.rel_mean:.3e} max {self.rel_max:.3e}"
        )


def item_norms(t: torch.Tensor | tuple) -> torch.Tensor:
    """Per-item Euclidean norms ``(B,)`` over all but the leading dimension (a 0-d tensor is one item);
    for a tuple of outputs, the norm over all of them together."""
    if isinstance(t, tuple):
        return torch.stack([item_norms(part).double() for part in t]).pow(2).sum(dim=0).sqrt()
    if t.dim() == 0:
        return t.abs().reshape(1)
    return t.reshape(t.shape[0], -1).norm(dim=1)


def summarise(
    abs_errors: list[torch.Tensor],
    rel_errors: list[torch.Tensor],
    *,
    n_samples: int,
    dtype: torch.dtype,
    kind: str,
    elements: list[torch.Tensor] | None = None,
) -> EquivarianceReport:
    """Collect per-sample ``(B,)`` error tensors (and the ``(B, ...)`` elements drawn) into a report."""
    a = torch.cat(abs_errors).double()
    r = torch.cat(rel_errors).double()
    worst = int(a.argmax())
    sample, item = divmod(worst, abs_errors[0].numel())
    worst_g = None
    if elements is not None and elements[sample].shape[0] == abs_errors[sample].numel():
        worst_g = _nested(elements[sample][item].detach().double().tolist())
    return EquivarianceReport(
        abs_mean=a.mean().item(),
        abs_max=a.max().item(),
        rel_mean=r.mean().item(),
        rel_max=r.max().item(),
        n_samples=n_samples,
        dtype=dtype,
        kind=kind,
        worst_item=item,
        worst_sample=sample,
        worst_g=worst_g,
    )


def _nested(values: list | float) -> tuple | float:
    return tuple(_nested(v) for v in values) if isinstance(values, list) else values
