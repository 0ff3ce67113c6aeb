"""Per-layer equivariance of a backbone, read through forward hooks.

For each hooked submodule ``l`` and a sampled ``g`` (one element shared by the whole batch) the probe
compares the layer's output on the rotated input, ``h_l(g . x)``, with its output on ``x``:

* invariance: ``|| h_l(g . x) - h_l(x) || / || h_l(g . x) ||`` per item;
* Procrustes: rows of ``h_l(x)`` and ``h_l(g . x)`` (all leading dimensions flattened, the last one
  kept) are related by the best orthogonal map and by the best linear map, fitted on the subspace
  the rows of ``h_l(x)`` span (:func:`latentequiv.procrustes.fit_embedding_maps`, the fit of
  ``fit_latent_action``); the relative residual is 0 when the layer transforms by *some* orthogonal
  (or linear) representation, learned or not.

This tells which layers of a network are invariant, which are equivariant in some basis, and where
the symmetry is lost.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._precision import (
    batch_size_of,
    cast_callable,
    cast_input,
    device_of,
    reported_dtype,
    working_dtype,
)
from ..groups import Group
from ..procrustes import DiagnosticWarning, fit_embedding_maps
from ._report import item_norms


@dataclass(frozen=True)
class LayerEquivariance:
    """Equivariance of one layer's output.

    Attributes:
        name: qualified module name (``"#k"`` appended for the k-th extra call of a reused module).
        shape: output shape on the unrotated input.
        invariance: mean relative invariance error over items and samples.
        procrustes: mean relative residual of the best orthogonal map on the subspace the rows span
            (what the moved rows have outside it counts as residual).
        n_rows: rows used by the fit (all leading dimensions of the output).
        width: feature dimension (the last one).
        linear: mean relative residual of the best linear map on the same subspace.
        rank: dimension of that subspace (0 for an all-zero output, whose residuals are 0 when the
            moved output is zero too and 1 otherwise). With fewer than ``2 rank`` rows even an
            unrelated map fits closely: the probe then warns (:class:`DiagnosticWarning`).
    """

    name: str
    shape: tuple[int, ...]
    invariance: float
    procrustes: float
    n_rows: int
    width: int
    linear: float = float("nan")
    rank: int = 0

    def __str__(self) -> str:
        return (
            f"{self.name:<32} {str(self.shape):<18} invariance {self.invariance:.3e}  "
            f"procrustes {self.procrustes:.3e}  linear {self.linear:.3e}  rank {self.rank}/{self.width}"
        )


@dataclass(frozen=True)
class LayerwiseReport:
    """Per-layer errors in forward order.

    Attributes:
        layers: one entry per layer call; ``report[name]`` finds one by name.
        n_samples: group elements drawn.
        dtype: the working precision (least precise of the requested dtype, inputs and model).
    """

    layers: tuple[LayerEquivariance, ...]
    n_samples: int
    dtype: torch.dtype

    def __getitem__(self, name: str) -> LayerEquivariance:
        """The entry of the layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __str__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        head = f"layerwise equivariance ({dtype}, {self.n_samples} samples)"
        return "\n".join([head, *(str(layer) for layer in self.layers)])


def layerwise_equivariance(
    model: nn.Module,
    x: Any,
    *,
    group: Group,
    input_action: Callable | None = None,
    modules: Iterable[str] | None = None,
    n_samples: int = 4,
    dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> LayerwiseReport:
    """Invariance and best-orthogonal-map errors of every hooked submodule's output.

    Args:
        model: the network (evaluated on a copy cast to ``dtype``; call ``eval()`` first for dropout).
        x: a batch of inputs.
        group: the group to sample from.
        input_action: ``(g, x) -> g . x``; default ``group.act``.
        modules: qualified names of submodules to hook; default all submodules. Modules whose output
            is not a floating tensor (or a tuple starting with one) are left out.
        n_samples: group elements drawn (each shared by the whole batch).
        dtype: working precision (default float64); ``None`` keeps the model's.
        generator: random generator for reproducible sampling.
        batch_size: ``B`` when it cannot be read from ``x``.

    Returns:
        A :class:`LayerwiseReport` with one entry per layer call, in forward order. Layers with fewer
        than ``2 r`` rows for a rank-``r`` output are named in one :class:`DiagnosticWarning`.

    Example:
        >>> from latentequiv.groups import SO3
        >>> net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh())
        >>> report = layerwise_equivariance(net, torch.randn(2, 8, 3), group=SO3())
        >>> [layer.name for layer in report.layers]
        ['0', '1']
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    model = cast_callable(model, dtype)
    x = cast_input(x, dtype)
    act = group.act if input_action is None else input_action
    n = batch_size_of(x, batch_size)
    names = None if modules is None else set(modules)
    base = _record(model, x, names)
    inv: dict[str, list[torch.Tensor]] = {name: [] for name in base}
    pairs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in base}  # (g, h_g)
    for _ in range(n_samples):
        g = group.sample(1, generator=generator, dtype=working_dtype(x, dtype), device=device_of(x))
        moved = _record(model, act(g.expand(n, -1, -1), x), names)
        for name, h in base.items():
            h_g = moved.get(name)
            if h_g is None or h_g.shape != h.shape:
                continue
            err = item_norms(h_g - h)
            inv[name].append(err / (item_norms(h_g) + torch.finfo(h.dtype).eps))
            pairs[name].append((g[0], _rows(h_g)))
    layers, weak = [], []
    for name, h in base.items():
        if not inv[name]:
            continue
        rows = _rows(h)  # (M, C)
        orthogonal, linear, rank = _fit_layer(rows, pairs[name])
        if rows.shape[0] < 2 * rank:
            weak.append(f"{name} ({rows.shape[0]} rows, rank {rank})")
        layers.append(
            LayerEquivariance(
                name=name,
                shape=tuple(h.shape),
                invariance=torch.cat(inv[name]).double().mean().item(),
                procrustes=orthogonal,
                n_rows=rows.shape[0],
                width=rows.shape[1],
                linear=linear,
                rank=rank,
            )
        )
    if weak:
        warnings.warn(
            "fewer than 2 rows per dimension of the output's span, where even an unrelated map fits "
            f"closely (pass more inputs): {', '.join(weak)}",
            DiagnosticWarning,
            stacklevel=2,
        )
    precision = reported_dtype(dtype, x, model)
    return LayerwiseReport(layers=tuple(layers), n_samples=n_samples, dtype=precision)


def _fit_layer(
    rows: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, float, int]:
    """Mean orthogonal and linear relative residuals of ``rows -> rows_g`` on span(rows), and its rank."""
    g = torch.stack([element for element, _ in pairs])  # (K, d, d)
    moved = [rows_g for _, rows_g in pairs]  # K x (M, C)
    if rows.abs().max() == 0:  # nothing to fit: equivariant only if the moved output is zero too
        residual = sum(float(m.abs().max() > 0) for m in moved) / len(moved)
        return residual, residual, 0
    fit = fit_embedding_maps(rows, moved, g, warn=False)
    orthogonal = fit.rel_residual.double().mean().item()
    return orthogonal, fit.linear_rel_residual.double().mean().item(), fit.rank


def _rows(h: torch.Tensor) -> torch.Tensor:
    """Feature rows ``(M, C)``: the last dimension is the feature, a per-item scalar has width 1."""
    if h.dim() < 2:
        return h.reshape(-1, 1)
    return h.reshape(-1, h.shape[-1])


def _record(model: nn.Module, x: Any, names: set[str] | None) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` once and return each hooked submodule's first floating output, in call order."""
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            tensor = output[0] if isinstance(output, tuple) and output else output
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                return
            key, k = name, 1
            while key in outputs:
                key, k = f"{name}#{k}", k + 1
            outputs[key] = tensor.detach()

        return hook

    handles = [
        module.register_forward_hook(hook_for(name))
        for name, module in model.named_modules()
        if name and (names is None or name in names)
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs
