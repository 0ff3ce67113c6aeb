"""``dataset_summary``: what is in a dataset (for ``transip data`` and for sanity checks)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ._dataset import MoleculeDataset


@dataclass(frozen=True)
class DatasetSummary:
    """Counts and label statistics of a dataset.

    Attributes:
        n_molecules: number of structures.
        n_atoms: total atoms.
        size_min, size_max, size_mean: atoms per molecule.
        size_histogram: ``((lo, hi), count)`` pairs over atom counts, bins ``[lo, hi)``.
        elements: atomic number -> number of atoms of that element.
        charges: total charge -> number of molecules.
        spins: spin multiplicity -> number of molecules.
        n_sources: number of distinct ``source`` labels.
        n_energy, n_forces: molecules with an energy / with forces.
        energy_mean, energy_std, energy_min, energy_max: total energy (eV) over labelled molecules
            (``nan`` when none).
        energy_per_atom_mean, energy_per_atom_std: energy / atoms (eV/atom).
        force_abs_max: largest absolute force component (eV/Å), ``nan`` when no forces.
        force_rms: root-mean-square force component (eV/Å).
    """

    n_molecules: int
    n_atoms: int
    size_min: int
    size_max: int
    size_mean: float
    size_histogram: tuple[tuple[tuple[int, int], int], ...]
    elements: dict[int, int]
    charges: dict[int, int]
    spins: dict[int, int]
    n_sources: int
    n_energy: int
    n_forces: int
    energy_mean: float
    energy_std: float
    energy_min: float
    energy_max: float
    energy_per_atom_mean: float
    energy_per_atom_std: float
    force_abs_max: float
    force_rms: float

    def format(self) -> str:
        """A short human-readable table (the CLI prints it)."""
        from ase.data import chemical_symbols

        elems = ", ".join(f"{chemical_symbols[z]}:{c}" for z, c in sorted(self.elements.items()))
        lines = [
            f"molecules        {self.n_molecules}  ({self.n_sources} sources)",
            f"atoms            {self.n_atoms}  (per molecule {self.size_min}-{self.size_max}, "
            f"mean {self.size_mean:.1f})",
            f"elements         {elems}",
            f"charges          {dict(sorted(self.charges.items()))}",
            f"spins (2S+1)     {dict(sorted(self.spins.items()))}",
            f"energies         {self.n_energy} labelled; mean {self.energy_mean:.4f} eV, "
            f"std {self.energy_std:.4f}, range [{self.energy_min:.4f}, {self.energy_max:.4f}]",
            f"energy per atom  mean {self.energy_per_atom_mean:.4f} eV/atom, "
            f"std {self.energy_per_atom_std:.4f}",
            f"forces           {self.n_forces} labelled; rms {self.force_rms:.4f} eV/Å, "
            f"max |F_i| {self.force_abs_max:.4f} eV/Å",
            "size histogram   " + ", ".join(f"[{lo},{hi}):{c}" for (lo, hi), c in self.size_histogram),
        ]
        return "\n".join(lines)


def _stat(values: list[float], fn) -> float:
    return float(fn(np.asarray(values))) if values else float("nan")


def dataset_summary(dataset: MoleculeDataset, *, bins: int = 8) -> DatasetSummary:
    """Read every molecule once and summarise the dataset.

    Args:
        dataset: any dataset of :class:`Molecule`.
        bins: number of bins of the size histogram (fewer when sizes span a smaller range).

    Returns:
        A :class:`DatasetSummary`.

    Example:
        >>> from transip.data import bundled_dataset, read_dataset
        >>> s = dataset_summary(read_dataset(bundled_dataset("ethanol_test"), index=":5"))
        >>> s.n_molecules, s.n_atoms, s.elements
        (5, 45, {1: 30, 6: 10, 8: 5})
    """
    elements: Counter[int] = Counter()
    charges: Counter[int] = Counter()
    spins: Counter[int] = Counter()
    sources: set[str] = set()
    sizes, energies, per_atom = [], [], []
    f_max, f_sq, f_n, n_forces = 0.0, 0.0, 0, 0
    for mol in dataset:
        sizes.append(len(mol))
        elements.update(mol.numbers.tolist())
        charges[mol.charge] += 1
        spins[mol.spin] += 1
        sources.add(mol.source)
        if mol.energy is not None:
            energies.append(mol.energy)
            per_atom.append(mol.energy / len(mol))
        if mol.forces is not None:
            n_forces += 1
            f_max = max(f_max, float(np.abs(mol.forces).max()))
            f_sq += float((mol.forces**2).sum())
            f_n += mol.forces.size
    if not sizes:
        raise ValueError("cannot summarise an empty dataset")
    size_arr = np.asarray(sizes)
    lo, hi = int(size_arr.min()), int(size_arr.max())
    edges = np.unique(np.linspace(lo, hi + 1, min(bins, hi + 1 - lo) + 1).round().astype(int))
    counts, _ = np.histogram(size_arr, bins=edges)
    return DatasetSummary(
        n_molecules=len(sizes),
        n_atoms=int(size_arr.sum()),
        size_min=lo,
        size_max=hi,
        size_mean=float(size_arr.mean()),
        size_histogram=tuple(
            ((int(a), int(b)), int(c)) for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ),
        elements=dict(sorted(elements.items())),
        charges=dict(sorted(charges.items())),
        spins=dict(sorted(spins.items())),
        n_sources=len(sources),
        n_energy=len(energies),
        n_forces=n_forces,
        energy_mean=_stat(energies, np.mean),
        energy_std=_stat(energies, np.std),
        energy_min=_stat(energies, np.min),
        energy_max=_stat(energies, np.max),
        energy_per_atom_mean=_stat(per_atom, np.mean),
        energy_per_atom_std=_stat(per_atom, np.std),
        force_abs_max=f_max if n_forces else float("nan"),
        force_rms=float(np.sqrt(f_sq / f_n)) if f_n else float("nan"),
    )
