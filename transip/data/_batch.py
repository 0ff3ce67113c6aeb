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
from itertools import accumulate

import numpy as np
import torch

from ._molecule import Molecule


@dataclass(frozen=True)
class HostSummary:
    """What the model needs to know about a batch before it runs, kept as host integers.

    :meth:`Batch.from_molecules` fills it from the molecules it packs, so a forward pass on an
    accelerator never has to read the device to lay out attention or to check its input ranges.

    Attributes:
        offsets: the values of ``ptr``.
        numbers, charge, spin: ``(min, max)`` of the atomic numbers, charges and spin
            multiplicities.
    """

    offsets: tuple[int, ...]
    numbers: tuple[int, int]
    charge: tuple[int, int]
    spin: tuple[int, int]

    @property
    def largest(self) -> int:
        """Atoms in the batch's largest molecule."""
        return max(b - a for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True))


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
        host: a :class:`HostSummary` of ``ptr``, ``numbers``, ``charge`` and ``spin``, or ``None``
            (the model then reads them from the device once per forward pass). Whoever replaces
            one of those four fields must drop it (``host=None``); moving the batch or replacing
            positions, forces or labels keeps it valid.
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
    host: HostSummary | None = None

    def __post_init__(self) -> None:
        h = self.host
        if h is not None and (len(h.offsets) != self.ptr.numel() or h.offsets[-1] != self.numbers.shape[0]):
            raise ValueError(
                f"Batch.host describes {len(h.offsets) - 1} molecules and {h.offsets[-1]} atoms, the batch "
                f"holds {self.ptr.numel() - 1} and {self.numbers.shape[0]}; pass host=None after "
                "replacing ptr, numbers, charge or spin"
            )

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

    def head(self, m: int) -> Batch:
        """The first ``m`` molecules as a batch (``self`` when ``m`` covers them all).

        Cuts at ``ptr[m]`` (from the host summary when there is one); the result has no host
        summary, since the element, charge and spin ranges of the part are not known on the host.
        """
        if not 1 <= m:
            raise ValueError(f"Batch.head needs at least one molecule, got m={m}")
        if m >= self.num_molecules:
            return self
        t = self.host.offsets[m] if self.host is not None else int(self.ptr[m])
        return Batch(
            positions=self.positions[:t],
            numbers=self.numbers[:t],
            ptr=self.ptr[: m + 1],
            batch=self.batch[:t],
            charge=self.charge[:m],
            spin=self.spin[:m],
            energy=None if self.energy is None else self.energy[:m],
            forces=None if self.forces is None else self.forces[:t],
            sources=self.sources[:m],
        )

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
    def cat(cls, batches: Sequence[Batch]) -> Batch:
        """One packed batch holding the molecules of ``batches`` in order.

        Energies and forces are kept when every batch has them; the host summary when every
        batch has one (so the result needs no device read either).

        Shape:
            - batches: ``B_k`` molecules and ``T_k`` atoms each
            - output: ``sum B_k`` molecules, ``sum T_k`` atoms, in the order given
        """
        if len(batches) == 0:
            raise ValueError("cannot concatenate zero batches")
        atom_shift = list(accumulate((b.numbers.shape[0] for b in batches[:-1]), initial=0))
        molecule_shift = list(accumulate((b.num_molecules for b in batches[:-1]), initial=0))

        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(b, name) for b in batches]
            return None if any(v is None for v in values) else torch.cat(values)

        hosts = [b.host for b in batches]
        host = None
        if all(h is not None for h in hosts):
            host = HostSummary(
                offsets=(0,)
                + tuple(o + a for h, a in zip(hosts, atom_shift, strict=True) for o in h.offsets[1:]),
                numbers=(min(h.numbers[0] for h in hosts), max(h.numbers[1] for h in hosts)),
                charge=(min(h.charge[0] for h in hosts), max(h.charge[1] for h in hosts)),
                spin=(min(h.spin[0] for h in hosts), max(h.spin[1] for h in hosts)),
            )
        return cls(
            positions=cat("positions"),
            numbers=cat("numbers"),
            ptr=torch.cat(
                [batches[0].ptr[:1]] + [b.ptr[1:] + a for b, a in zip(batches, atom_shift, strict=True)]
            ),
            batch=torch.cat([b.batch + m for b, m in zip(batches, molecule_shift, strict=True)]),
            charge=cat("charge"),
            spin=cat("spin"),
            energy=cat("energy"),
            forces=cat("forces"),
            sources=sum((b.sources for b in batches), ()),
            host=host,
        )

    @classmethod
    def from_molecules(cls, molecules: Sequence[Molecule], dtype: torch.dtype = torch.float32) -> Batch:
        """Pack molecules into one batch (no padding)."""
        if len(molecules) == 0:
            raise ValueError("cannot build a Batch from zero molecules")
        sizes = np.array([len(m) for m in molecules], dtype=np.int64)
        offsets = np.zeros(len(molecules) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        positions = torch.from_numpy(np.concatenate([m.positions for m in molecules])).to(dtype)
        z = np.concatenate([m.numbers for m in molecules]).astype(np.int64, copy=False)
        charge = [int(m.charge) for m in molecules]
        spin = [int(m.spin) for m in molecules]
        has_e = all(m.energy is not None for m in molecules)
        has_f = all(m.forces is not None for m in molecules)
        host = HostSummary(
            offsets=tuple(offsets.tolist()),
            numbers=(int(z.min()), int(z.max())) if z.size else (1, 1),
            charge=(min(charge), max(charge)),
            spin=(min(spin), max(spin)),
        )
        return cls(
            positions=positions,
            numbers=torch.from_numpy(z),
            ptr=torch.from_numpy(offsets),
            batch=torch.from_numpy(np.repeat(np.arange(len(molecules), dtype=np.int64), sizes)),
            charge=torch.tensor(charge, dtype=torch.long),
            spin=torch.tensor(spin, dtype=torch.long),
            energy=torch.tensor([m.energy for m in molecules], dtype=torch.float64) if has_e else None,
            forces=torch.from_numpy(np.concatenate([m.forces for m in molecules])).to(dtype)
            if has_f
            else None,
            sources=tuple(m.source for m in molecules),
            host=host,
        )
