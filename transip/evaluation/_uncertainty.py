"""How well an uncertainty estimate ranks the actual errors: Spearman rank correlations.

Used for the rotation spread of :mod:`transip.symmetrize` (and, in ``examples/``, for a deep
ensemble's spread): a spread that ranks errors well (Spearman near 1) points at the structures and
atoms to distrust, whatever its scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SpreadRanking:
    """Spearman correlations between a spread and the error it should predict.

    Attributes:
        n_structures, n_atoms: how many were ranked.
        energy_spearman: per structure, energy spread against ``|E_pred - E_true|``.
        force_spearman_atoms: per atom, force spread against ``||F_pred - F_true||``.
        force_spearman_structures: per structure, mean atom force spread against the mean atom
            force error.
        energy_spread_mean: meV; force_spread_mean: meV/Å (mean over atoms).
    """

    n_structures: int
    n_atoms: int
    energy_spearman: float | None
    force_spearman_atoms: float | None
    force_spearman_structures: float | None
    energy_spread_mean: float
    force_spread_mean: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties ranked by their mean); ``None`` for fewer than 3 values or a
    constant input."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def spread_ranking(
    energy_spread: np.ndarray,
    energy_error: np.ndarray,
    force_spread: np.ndarray | None = None,
    force_error: np.ndarray | None = None,
    atom_structure: np.ndarray | None = None,
) -> SpreadRanking:
    """Rank correlations of spreads with errors (eV, eV/Å in; the means come out in meV, meV/Å).

    Shape:
        - energy_spread, energy_error: ``(B,)``
        - force_spread, force_error, atom_structure (structure index of each atom): ``(T,)``
    """
    per_structure = None
    if force_spread is not None and atom_structure is not None:
        B = len(energy_spread)
        count = np.bincount(atom_structure, minlength=B).clip(min=1)
        mean_spread = np.bincount(atom_structure, force_spread, minlength=B) / count
        mean_error = np.bincount(atom_structure, force_error, minlength=B) / count
        per_structure = spearman(mean_spread, mean_error)
    return SpreadRanking(
        n_structures=len(energy_spread),
        n_atoms=0 if force_spread is None else len(force_spread),
        energy_spearman=spearman(energy_spread, energy_error),
        force_spearman_atoms=None if force_spread is None else spearman(force_spread, force_error),
        force_spearman_structures=per_structure,
        energy_spread_mean=float(np.mean(energy_spread) * 1000),
        force_spread_mean=None if force_spread is None else float(np.mean(force_spread) * 1000),
    )
