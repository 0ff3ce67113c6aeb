"""Linear per-element reference energies, fitted by least squares in float64.

The model learns the *referenced* energy ``E - sum_i e_ref[Z_i]``; the reference is added back to
predictions, so metrics are on total energies (NOTES.md, "Energy"). With counts matrix
``C[m, Z]`` (atoms of element ``Z`` in molecule ``m``) and energies ``E``, the fit solves
``min_e || C e - E ||^2``, with the minimum-norm solution when ``C`` is rank deficient (e.g. a
single-composition dataset such as rMD17 ethanol, where only the total ``sum_Z n_Z e_Z`` of that
composition is determined).

The fit streams: ``C`` is never formed. The triangular factor ``R`` of ``A = [C | E]`` is updated
one chunk of rows at a time (stack ``R`` on the next rows, QR, keep the new ``R``; Golub & Van Loan,
*Matrix Computations*, 4th ed., §6.5 "Updating matrix factorizations"). Since ``A = Q R`` with
orthonormal ``Q``, ``||C e - E|| = ||R_C e - r_E||`` for every ``e``, so ``numpy.linalg.lstsq`` on the
at most ``120 x 120`` factor gives the same solution, rank and residual as on the stacked matrix,
in memory independent of the number of molecules. Householder QR is backward stable column by
column, so total energies of ``1e5`` eV next to atom counts lose no more precision than ``lstsq``
on ``C`` itself (the normal equations ``C^T C`` would square the condition number).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._dataset import numbers_and_energies
from ._molecule import Molecule
from ._validation import MAX_Z, DataError

#: Default rows of ``[C | E]`` held at once by :meth:`ElementReferences.fit` (1 MB in float64).
FIT_CHUNK_SIZE = 1024
_COLS = MAX_Z + 2  # atom counts of Z = 0..118, then the energy


def _stacked_factor(
    pairs: Iterable[tuple[np.ndarray, float | None]], chunk_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The triangular factor of ``A = [C | E]`` over the labelled molecules, chunk by chunk.

    Returns:
        ``(r, atoms, n)``: ``r`` of shape ``(min(n, 120), 120)`` with ``A = Q r`` for some ``Q``
        with orthonormal columns, ``atoms`` the ``(119,)`` atom count of each element, and ``n``
        the number of labelled molecules.
    """
    r = np.zeros((0, _COLS))
    block = np.zeros((chunk_size, _COLS))  # (chunk, 120)
    atoms = np.zeros(MAX_Z + 1, dtype=np.int64)
    fill = n = 0

    def flush(rows: np.ndarray) -> np.ndarray:
        atoms[:] += rows[:, :-1].sum(0).astype(np.int64)
        return np.linalg.qr(np.concatenate([r, rows]), mode="r")

    for i, (numbers, energy) in enumerate(pairs):
        if energy is None:
            continue
        numbers = np.asarray(numbers)
        if numbers.size and (numbers.min() < 1 or numbers.max() > MAX_Z):
            bad = numbers[(numbers < 1) | (numbers > MAX_Z)][0]
            raise ValueError(f"molecule {i}: atomic number {int(bad)} outside 1..{MAX_Z}")
        if not math.isfinite(energy):
            raise ValueError(f"molecule {i}: energy is {energy} (not finite)")
        block[fill, :-1] = np.bincount(numbers, minlength=MAX_Z + 1)
        block[fill, -1] = energy
        fill += 1
        n += 1
        if fill == chunk_size:
            r = flush(block)
            fill = 0
    if fill:
        r = flush(block[:fill])
    return r, atoms, n


@dataclass(frozen=True)
class ReferenceFitReport:
    """How well the linear reference explains the training energies.

    Attributes:
        mae: mean absolute residual ``|E - C e|`` in eV (``nan`` when the fit read the data once,
            see :meth:`ElementReferences.fit`).
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
    def fit(
        cls,
        molecules: Iterable[Molecule],
        *,
        mae: bool | None = None,
        chunk_size: int = FIT_CHUNK_SIZE,
    ) -> tuple[ElementReferences, ReferenceFitReport]:
        """Least-squares fit on the molecules that have an energy, streamed in chunks of rows.

        The fit reads each molecule once (a :class:`MoleculeDataset` through
        :meth:`~MoleculeDataset.numbers_and_energies`, which skips building whole molecules where
        the reader can) and holds ``chunk_size`` rows of the counts matrix at a time. The exact
        MAE needs the residual of every molecule under the final references, which is a second
        pass over ``molecules``.

        Args:
            molecules: training molecules (a dataset, a list, or any iterable); unlabelled ones
                are skipped.
            mae: read ``molecules`` a second time for the exact residual MAE and RMSE. ``None``
                (default): when ``molecules`` can be read twice, i.e. is not a one-shot iterator
                such as a generator. Without the second pass ``report.mae`` is ``nan`` and
                ``report.rmse`` comes from the factorisation (equal up to rounding).
            chunk_size: rows of the counts matrix per QR update (memory ``chunk_size * 120 * 8``
                bytes).

        Returns:
            ``(refs, report)``; elements absent from the data get reference 0 and are not in
            ``report.elements``.

        Raises:
            DataError: no molecule has an energy.
            ValueError: an energy is not finite or an atomic number is
                outside ``1..118`` (naming the molecule's position); ``mae=True`` with a one-shot
                iterator.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        one_shot = isinstance(molecules, Iterator)
        if mae and one_shot:
            raise ValueError("mae=True reads the molecules twice: pass a dataset or a list, not an iterator")
        r, atoms, n = _stacked_factor(numbers_and_energies(molecules), chunk_size)
        if n == 0:
            where = str(getattr(molecules, "path", None) or "the molecules")
            raise DataError(
                where,
                "energy",
                "no molecule has an energy, so element references cannot be fitted "
                "(is it stored under another key? data.energy_key / --energy-key)",
            )
        present = np.flatnonzero(atoms)
        s = r[:, np.append(present, _COLS - 1)]  # (<= 120, k + 1): the factor of [C_present | E]
        # lstsq's default cut-off on the stacked (n, k) matrix, so the rank decision is the same.
        rcond = np.finfo(np.float64).eps * max(n, len(present))
        solution, _, rank, _ = np.linalg.lstsq(s[:, :-1], s[:, -1], rcond=rcond)
        full = np.zeros(MAX_Z + 1, dtype=np.float64)
        full[present] = solution
        if mae is None:
            mae = not one_shot
        if mae:
            abs_sum, sq_sum, seen = 0.0, 0.0, 0
            for numbers, energy in numbers_and_energies(molecules):
                if energy is None:
                    continue
                residual = energy - float(full[numbers].sum())
                abs_sum += abs(residual)
                sq_sum += residual * residual
                seen += 1
            if seen != n:
                raise ValueError(f"the molecules changed between the two passes: {n} then {seen} labelled")
            mae_value, rmse = abs_sum / n, math.sqrt(sq_sum / n)
        else:
            mae_value = float("nan")
            rmse = float(np.linalg.norm(s[:, :-1] @ solution - s[:, -1])) / math.sqrt(n)
        report = ReferenceFitReport(
            mae=mae_value,
            rmse=rmse,
            n=n,
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
