"""From atom embeddings to total energies: pooling, the energy MLP, scale and element references.

``E = scale * head(pool(h)) + sum_i e_ref[Z_i]``. The head sees *referenced* energies in units of
``scale``; the reference sum and the result are float64 whatever the model's dtype, because total
energies of large molecules (~1e5 eV) need more digits than float32 keeps.
"""

from __future__ import annotations

import torch
from torch import nn


def segment_pool(x: torch.Tensor, batch: torch.Tensor, num_molecules: int, mode: str = "sum") -> torch.Tensor:
    """Permutation-invariant sum or mean over the atoms of each molecule.

    Shape:
        - x: ``(T, *F)``, batch: ``(T,)``
        - output: ``(B, *F)``

    Example:
        >>> segment_pool(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 0, 1]), 2, "mean")
        tensor([1.5000, 3.0000])
    """
    out = x.new_zeros((num_molecules, *x.shape[1:])).index_add(0, batch, x)
    if mode == "sum":
        return out
    if mode == "mean":
        # index_add, not bincount: on CUDA bincount reads its input's maximum back to the host
        count = x.new_zeros(num_molecules).index_add_(0, batch, x.new_ones(batch.shape)).clamp_min(1)  # (B,)
        return out / count.view(-1, *([1] * (x.dim() - 1)))
    raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")


class EnergyHead(nn.Module):
    """A GELU MLP ``D -> D -> 1``: per-atom energies (sum pooling) or one per molecule (mean pooling).

    Shape:
        - h: ``(*, D)``
        - output: ``(*,)``
    """

    def __init__(self, d_model: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h).squeeze(-1)


class ReferencedEnergy(nn.Module):
    """Scale the head's output and add the linear per-element reference, in float64.

    Buffers (both float64, kept float64 by ``.float()``/``.half()``/``.to(dtype)``):
        element_energies: ``(119,)`` reference energy per atomic number, eV (0 until set).
        scale: ``()`` energy unit of the head, eV.

    Shape:
        - raw: ``(B,)`` head output; numbers, batch: ``(T,)``
        - output: ``(B,)`` float64 total energies
    """

    def __init__(self, num_elements: int = 119):
        super().__init__()
        self.register_buffer("element_energies", torch.zeros(num_elements, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def _apply(self, fn, recurse=True):
        # dtype casts would round the references; keep float64, follow only the device
        keep = {name: getattr(self, name) for name in ("element_energies", "scale")}
        super()._apply(fn, recurse)
        for name, value in keep.items():
            moved = getattr(self, name)
            setattr(self, name, value.to(device=moved.device, dtype=torch.float64))
        return self

    def reference(self, numbers: torch.Tensor, batch: torch.Tensor, num_molecules: int) -> torch.Tensor:
        """``sum_i e_ref[Z_i]`` per molecule, ``(B,)`` float64."""
        return segment_pool(self.element_energies[numbers], batch, num_molecules, "sum")

    def forward(
        self, raw: torch.Tensor, numbers: torch.Tensor, batch: torch.Tensor, num_molecules: int
    ) -> torch.Tensor:
        return raw.to(torch.float64) * self.scale + self.reference(numbers, batch, num_molecules)
