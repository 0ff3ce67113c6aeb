"""Packed batches: the atoms of all molecules concatenated, no padding stored.

Shape glossary (used throughout ``transip``):
    B  molecules in a batch
    T  atoms in a packed batch (sum of the molecules' sizes)
    N  atoms of one molecule
    D  embedding width, H attention heads, K radial-basis channels
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from ._molecule import Molecule


@dataclass
class Batch:
    """A packed batch of molecules.

    Attributes:
        positions: ``(T, 3)`` coordinates, Å.
        numbers: ``(T,)`` int64 atomic numbers.
        ptr: ``(B + 1,)`` int64 offsets; molecule ``b`` owns atoms ``ptr[b]:ptr[b + 1]``.
        batch: ``(T,)`` int64 molecule index of each atom.
        charge: ``(B,)`` int64 total charges.
        spin: ``(B,)`` int64 spin multiplicities.
        energy: ``(B,)`` total energies in eV, or ``None`` if any molecule is unlabelled.
        forces: ``(T, 3)`` forces in eV/Å, or ``None`` if any molecule lacks forces.
        sources: per-molecule subset labels (tuple of str, length B).
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    ptr: torch.Tensor
    batch: torch.Tensor
    charge: torch.Tensor
    spin: torch.Tensor
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    sources: tuple[str, ...] = ()

    @property
    def num_molecules(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_atoms(self) -> torch.Tensor:
        """``(B,)`` atoms per molecule."""
        return self.ptr[1:] - self.ptr[:-1]

    def to(self, device=None, dtype: torch.dtype | None = None) -> Batch:
        """Move tensors to ``device``; floating tensors are cast to ``dtype`` when given."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device=device, dtype=dtype if (dtype and v.is_floating_point()) else None)
            out[f.name] = v
        return replace(self, **out)

    def pin_memory(self) -> Batch:
        """Copy tensors to pinned host memory (``DataLoader(pin_memory=True)`` calls this)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.pin_memory() if isinstance(v, torch.Tensor) else v
        return replace(self, **out)

    def to_molecules(self) -> list[Molecule]:
        """Unpack into molecules (float64 numpy arrays); the inverse of :meth:`from_molecules`
        up to the dtype the batch was built with. Per-molecule ``info`` and ``data_id`` are not
        kept in a batch and come back empty."""
        out = []

        def host(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().double().numpy()

        for b in range(self.num_molecules):
            lo, hi = int(self.ptr[b]), int(self.ptr[b + 1])
            out.append(
                Molecule(
                    positions=host(self.positions[lo:hi]),
                    numbers=self.numbers[lo:hi].cpu().numpy(),
                    charge=int(self.charge[b]),
                    spin=int(self.spin[b]),
                    energy=None if self.energy is None else float(self.energy[b]),
                    forces=None if self.forces is None else host(self.forces[lo:hi]),
                    source=self.sources[b] if self.sources else "",
                )
            )
        return out

    @classmethod
    def from_molecules(cls, molecules: Sequence[Molecule], dtype: torch.dtype = torch.float32) -> Batch:
        """Pack molecules into one batch (no padding)."""
        if len(molecules) == 0:
            raise ValueError("cannot build a Batch from zero molecules")
        sizes = torch.tensor([len(m) for m in molecules], dtype=torch.long)
        ptr = torch.zeros(len(molecules) + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(sizes, 0)
        positions = torch.from_numpy(np.concatenate([m.positions for m in molecules])).to(dtype)
        numbers = torch.from_numpy(np.concatenate([m.numbers for m in molecules]))
        has_e = all(m.energy is not None for m in molecules)
        has_f = all(m.forces is not None for m in molecules)
        return cls(
            positions=positions,
            numbers=numbers,
            ptr=ptr,
            batch=torch.repeat_interleave(torch.arange(len(molecules)), sizes),
            charge=torch.tensor([m.charge for m in molecules], dtype=torch.long),
            spin=torch.tensor([m.spin for m in molecules], dtype=torch.long),
            energy=torch.tensor([m.energy for m in molecules], dtype=torch.float64) if has_e else None,
            forces=torch.from_numpy(np.concatenate([m.forces for m in molecules])).to(dtype)
            if has_f
            else None,
            sources=tuple(m.source for m in molecules),
        )
