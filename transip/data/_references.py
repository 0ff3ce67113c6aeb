"""Linear per-element reference energies, fitted by least squares in float64.

The model learns the *referenced* energy ``E - sum_i e_ref[Z_i]``; the reference is added back to
predictions, so metrics are on total energies (NOTES.md, "Energy"). With counts matrix
``C[m, Z]`` (atoms of element ``Z`` in molecule ``m``) and energies ``E``, the fit solves
``min_e || C e - E ||^2`` (``numpy.linalg.lstsq``, minimum-norm solution when ``C`` is rank
deficient, e.g. a single-composition dataset such as rMD17 ethanol, where only the total
``sum_Z n_Z e_Z`` of that composition is determined).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ._molecule import Molecule
from ._validation import MAX_Z


@dataclass(frozen=True)
class ReferenceFitReport:
    """How well the linear reference explains the training energies.

    Attributes:
        mae: mean absolute residual ``|E - C e|`` in eV.
        rmse: root-mean-square residual in eV.
        n: number of molecules used (those with an energy).
        elements: atomic numbers that were fitted; all others have reference 0.
        rank: rank of the counts matrix (``< len(elements)`` means the fit is not unique).
    """

    mae: float
    rmse: float
    n: int
    elements: tuple[int, ...]
    rank: int


class ElementReferences:
    """Per-element reference energies ``e_ref[Z]`` in eV, ``Z = 0..118`` (``Z = 0`` unused).

    Args:
        energies: ``(119,)`` reference energy of each element in eV.

    Example:
        >>> import numpy as np
        >>> from transip.data import Molecule
        >>> planted = {1: -13.6, 8: -2041.0}
        >>> mols = [Molecule(np.random.rand(n, 3), [1] * h + [8] * (n - h))
        ...         for n, h in [(3, 2), (2, 1), (2, 2)]]
        >>> for m in mols:
        ...     m.energy = sum(planted[int(z)] for z in m.numbers)
        >>> refs, report = ElementReferences.fit(mols)
        >>> round(float(refs.energies[8]), 6), report.elements
        (-2041.0, (1, 8))
    """

    def __init__(self, energies) -> None:
        e = torch.as_tensor(energies, dtype=torch.float64).detach().cpu().clone()
        if e.shape != (MAX_Z + 1,):
            raise ValueError(f"expected {MAX_Z + 1} reference energies, got shape {tuple(e.shape)}")
        self._energies = e

    @property
    def energies(self) -> torch.Tensor:
        """``(119,)`` float64 reference energies in eV (a copy)."""
        return self._energies.clone()

    @classmethod
    def zeros(cls) -> ElementReferences:
        """All references zero (no referencing)."""
        return cls(torch.zeros(MAX_Z + 1, dtype=torch.float64))

    @classmethod
    def fit(cls, molecules: Iterable[Molecule]) -> tuple[ElementReferences, ReferenceFitReport]:
        """Least-squares fit on the molecules that have an energy.

        Args:
            molecules: training molecules (a dataset or any iterable); unlabelled ones are skipped.

        Returns:
            ``(refs, report)``; elements absent from the data get reference 0 and are not in
            ``report.elements``.
        """
        rows, energies = [], []
        for m in molecules:
            if m.energy is None:
                continue
            rows.append(np.bincount(m.numbers, minlength=MAX_Z + 1)[: MAX_Z + 1])
            energies.append(m.energy)
        if not rows:
            raise ValueError("cannot fit element references: no molecule has an energy")
        counts = np.asarray(rows, dtype=np.float64)  # (M, 119)
        target = np.asarray(energies, dtype=np.float64)  # (M,)
        present = np.flatnonzero(counts.sum(0) > 0)
        solution, _, rank, _ = np.linalg.lstsq(counts[:, present], target, rcond=None)
        full = np.zeros(MAX_Z + 1, dtype=np.float64)
        full[present] = solution
        residual = target - counts @ full
        report = ReferenceFitReport(
            mae=float(np.abs(residual).mean()),
            rmse=float(np.sqrt((residual**2).mean())),
            n=len(target),
            elements=tuple(int(z) for z in present),
            rank=int(rank),
        )
        return cls(full), report

    def total(self, numbers: torch.Tensor, batch_index: torch.Tensor, num_molecules: int) -> torch.Tensor:
        """Sum of the references over each molecule's atoms.

        Args:
            numbers: ``(T,)`` atomic numbers of a packed batch.
            batch_index: ``(T,)`` molecule index of each atom.
            num_molecules: ``B``.

        Returns:
            ``(B,)`` float64 on ``numbers``' device.
        """
        e = self._energies.to(numbers.device)[numbers]  # (T,)
        out = torch.zeros(num_molecules, dtype=torch.float64, device=numbers.device)
        return out.index_add_(0, batch_index, e)

    def molecule_total(self, mol: Molecule) -> float:
        """Reference energy of one molecule in eV."""
        return float(self._energies.numpy()[mol.numbers].sum())

    def to_dict(self) -> dict:
        """JSON-friendly form: ``{"energies": {"1": e_H, ...}}`` listing the non-zero entries."""
        e = self._energies.numpy()
        return {"energies": {str(z): float(e[z]) for z in np.flatnonzero(e)}}

    @classmethod
    def from_dict(cls, d: dict) -> ElementReferences:
        """Inverse of :meth:`to_dict`."""
        full = np.zeros(MAX_Z + 1, dtype=np.float64)
        for z, v in d["energies"].items():
            full[int(z)] = float(v)
        return cls(full)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ElementReferences) and torch.equal(self._energies, other._energies)

    def __repr__(self) -> str:
        nz = int((self._energies != 0).sum())
        return f"ElementReferences({nz} elements)"
