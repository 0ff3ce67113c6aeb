"""Datasets of molecules: the common interface, in-memory data, subsets and concatenation.

Every dataset is a ``torch.utils.data.Dataset`` whose items are :class:`Molecule` objects and
which knows its atom counts (``.sizes``) without handing out molecules, so that samplers can pack
batches by atom budget before any structure is read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.utils.data

from ._convert import molecule_from_parts
from ._molecule import Molecule
from ._validation import validate_molecule

Index = int | str | slice | Sequence[int] | np.ndarray | None


def resolve_index(index: Index, n: int) -> np.ndarray | None:
    """Positions selected by ``index`` in a collection of ``n`` items (``None``: all).

    ``index`` may be an int, a slice, a sequence of ints, or an ASE-style string (``"5"``,
    ``"10:20"``, ``"::2"``, ``":"``).

    Example:
        >>> resolve_index("1::2", 6).tolist(), resolve_index(-1, 6).tolist(), resolve_index(None, 6)
        ([1, 3, 5], [5], None)
    """
    if index is None:
        return None
    if isinstance(index, str):
        parts = index.split(":")
        if len(parts) == 1:
            index = int(parts[0])
        elif len(parts) <= 3:
            index = slice(*(int(p) if p.strip() else None for p in parts))
        else:
            raise ValueError(f"cannot parse index {index!r}")
    if isinstance(index, slice):
        return np.arange(n, dtype=np.int64)[index]
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = int(idx.min() if idx.min() < -n else idx.max())
        raise IndexError(f"index {bad} out of range for {n} structures (0..{n - 1}, or -{n}..-1)")
    return idx % n if n else idx


@dataclass(frozen=True)
class ReadOptions:
    """How readers find labels and what they check.

    Args:
        energy_key: where the energy is (see :func:`molecule_from_atoms`); ``None``: calculator.
        forces_key: where the forces are; ``None``: calculator.
        charge_key: info key of the total charge (default 0 when absent).
        spin_key: info key of the spin multiplicity (default 1 when absent).
        validate: run :func:`validate_molecule` on every molecule read.
        max_atoms: largest allowed molecule (the model's context), ``None`` for no limit.
        allowed_numbers: elements the model supports, ``None`` for any in ``1..118``.
        min_distance: smallest allowed interatomic distance in Å (``None`` skips the check).
        charge_range: inclusive total-charge range the model has embeddings for (``None``: any).
        spin_range: inclusive spin-multiplicity range likewise (``None``: any).
    """

    energy_key: str | None = None
    forces_key: str | None = None
    charge_key: str = "charge"
    spin_key: str = "spin"
    validate: bool = True
    max_atoms: int | None = None
    allowed_numbers: tuple[int, ...] | None = None
    min_distance: float | None = 0.1
    charge_range: tuple[int, int] | None = None
    spin_range: tuple[int, int] | None = None

    def molecule(self, *, where: str, **parts) -> Molecule:
        """Build (and, if enabled, validate) a molecule from ASE-style parts.

        ``parts`` are the keyword arguments of :func:`molecule_from_parts` other than the keys.
        """
        mol = molecule_from_parts(
            energy_key=self.energy_key,
            forces_key=self.forces_key,
            charge_key=self.charge_key,
            spin_key=self.spin_key,
            where=where,
            **parts,
        )
        return self.check(mol, where=where)

    def check(self, mol: Molecule, *, where: str) -> Molecule:
        """Validate ``mol`` with these options (a no-op when ``validate`` is off)."""
        if not self.validate:
            return mol
        return validate_molecule(
            mol,
            where=where,
            max_atoms=self.max_atoms,
            allowed_numbers=self.allowed_numbers,
            min_distance=self.min_distance,
            charge_range=self.charge_range,
            spin_range=self.spin_range,
        )


class MoleculeDataset(torch.utils.data.Dataset):
    """Base class: a sized, indexable collection of :class:`Molecule`.

    Subclasses implement ``__len__``, ``_get(index)`` (with ``0 <= index < len``) and
    ``_compute_sizes()``. ``sizes`` is computed at most once and cached.

    Attributes:
        path: the file or directory the data came from (``None`` for in-memory or mixed data).
    """

    path: Path | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def _get(self, index: int) -> Molecule:
        raise NotImplementedError

    def _compute_sizes(self) -> np.ndarray:
        return np.array([len(self._get(i)) for i in range(len(self))], dtype=np.int64)

    @property
    def sizes(self) -> np.ndarray:
        """``(len,)`` int64 atom count of every molecule."""
        cached = self.__dict__.get("_sizes")
        if cached is None:
            cached = np.asarray(self._compute_sizes(), dtype=np.int64)
            cached.setflags(write=False)
            self.__dict__["_sizes"] = cached
        return cached

    def __getitem__(self, index: int) -> Molecule:
        n = len(self)
        index = int(index)
        if index < -n or index >= n:
            raise IndexError(f"index {index} out of range for a dataset of {n} molecules")
        return self._get(index % n)

    def __iter__(self) -> Iterator[Molecule]:
        for i in range(len(self)):
            yield self._get(i)

    def numbers_and_energies(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """``(numbers, energy)`` of every molecule in order: what reference fits and element censuses read.

        Lazy readers skip building whole molecules here (for ``.aselmdb``: forces, charge and
        spin are not converted and the interatomic-distance check is left to the full read);
        the checks on what is returned (elements, atom count, finite energy) still run.

        Yields:
            ``(numbers, energy)``: ``(N,)`` int64 atomic numbers and the energy in eV or ``None``.
        """
        for i in range(len(self)):
            yield self._numbers_energy(i)

    def _numbers_energy(self, index: int) -> tuple[np.ndarray, float | None]:
        mol = self._get(index)
        return mol.numbers, mol.energy

    def sources(self) -> list[str]:
        """The ``source`` label of every molecule (reads every molecule once; cached)."""
        cached = self.__dict__.get("_sources")
        if cached is None:
            cached = [m.source for m in self]
            self.__dict__["_sources"] = cached
        return list(cached)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"{type(self).__name__}(n={len(self)}{where})"


class InMemoryDataset(MoleculeDataset):
    """Molecules held in a list.

    Args:
        molecules: the molecules (kept by reference).
        path: where they came from, if anywhere.

    Example:
        >>> import numpy as np
        >>> ds = InMemoryDataset([Molecule(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], [1, 1])])
        >>> len(ds), ds.sizes.tolist()
        (1, [2])
    """

    def __init__(self, molecules: Sequence[Molecule], path: str | Path | None = None) -> None:
        self._molecules = list(molecules)
        self.path = None if path is None else Path(path)

    def __len__(self) -> int:
        return len(self._molecules)

    def _get(self, index: int) -> Molecule:
        return self._molecules[index]

    def _compute_sizes(self) -> np.ndarray:
        return np.array([len(m) for m in self._molecules], dtype=np.int64)


def numbers_and_energies(molecules: Iterable[Molecule]) -> Iterator[tuple[np.ndarray, float | None]]:
    """``(numbers, energy)`` of every molecule of a dataset, a list or any iterable of molecules.

    A :class:`MoleculeDataset` goes through :meth:`MoleculeDataset.numbers_and_energies`, which
    skips building whole molecules where its reader can.
    """
    if isinstance(molecules, MoleculeDataset):
        return molecules.numbers_and_energies()
    return ((m.numbers, m.energy) for m in molecules)


class SubsetDataset(MoleculeDataset):
    """A view of some molecules of another dataset, in the given order.

    Args:
        dataset: the parent dataset.
        indices: positions in the parent (repeats allowed).
    """

    def __init__(self, dataset: MoleculeDataset, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"subset indices out of range for a dataset of {n} molecules")
        self.dataset = dataset
        self.indices = idx % n if n else idx
        self.path = dataset.path

    def __len__(self) -> int:
        return int(self.indices.size)

    def _get(self, index: int) -> Molecule:
        return self.dataset[int(self.indices[index])]

    def _numbers_energy(self, index: int) -> tuple[np.ndarray, float | None]:
        return self.dataset._numbers_energy(int(self.indices[index]))

    def _compute_sizes(self) -> np.ndarray:
        return self.dataset.sizes[self.indices]


class ConcatMoleculeDataset(MoleculeDataset):
    """Several datasets read as one, in order (e.g. several files of one training set).

    Args:
        datasets: the parts; ``path`` is the common path when all parts share one, else ``None``.
    """

    def __init__(self, datasets: Sequence[MoleculeDataset]) -> None:
        self.datasets = list(datasets)
        self._ends = np.cumsum([len(d) for d in self.datasets]).tolist()
        paths = {d.path for d in self.datasets}
        self.path = paths.pop() if len(paths) == 1 else None

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends else 0

    def _locate(self, index: int) -> tuple[MoleculeDataset, int]:
        part = bisect.bisect_right(self._ends, index)
        return self.datasets[part], index - (self._ends[part - 1] if part else 0)

    def _get(self, index: int) -> Molecule:
        dataset, local = self._locate(index)
        return dataset[local]

    def _numbers_energy(self, index: int) -> tuple[np.ndarray, float | None]:
        dataset, local = self._locate(index)
        return dataset._numbers_energy(local)

    def _compute_sizes(self) -> np.ndarray:
        if not self.datasets:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([d.sizes for d in self.datasets])


def subset(dataset: MoleculeDataset, indices: Sequence[int] | np.ndarray) -> SubsetDataset:
    """The molecules of ``dataset`` at ``indices``, as a lazy view (see :class:`SubsetDataset`)."""
    return SubsetDataset(dataset, indices)
