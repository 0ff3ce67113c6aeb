"""OMol25 metrics on total energies and forces: pure functions and an accumulator of sums and counts.

Definitions (OMol25 conventions, reported in meV):

- energy MAE: ``mean_b |E_pred_b - E_true_b|`` over molecules (meV);
- energy-per-atom MAE: ``mean_b |E_pred_b - E_true_b| / N_b`` (meV/atom);
- force MAE: the mean absolute error over all Cartesian components of all atoms (meV/Å);
- force cosine: ``cos(F_pred_i, F_true_i)`` per atom, averaged over atoms (dimensionless);
- the root-mean-square errors of the same three quantities (energy, energy per atom, force
  components), which most published MLIP benchmarks quote next to (or instead of) the MAE.

The functions take eV and eV/Å and return eV-based values; :class:`Metrics` holds meV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

#: columns of the per-molecule statistics produced by :func:`molecule_statistics`
STAT_COLUMNS = (
    "abs_energy",  # |dE| (eV)
    "abs_energy_per_atom",  # |dE| / N (eV)
    "n_energy",  # 1 if the molecule has an energy label
    "abs_force",  # sum of |dF| over the molecule's 3N components (eV/Å)
    "n_force_components",  # 3N if the molecule has forces
    "force_cosine",  # sum over atoms of cos(F_pred, F_true)
    "n_force_atoms",  # N if the molecule has forces
    "n_molecules",  # 1
    "n_atoms",  # N
    "sq_energy",  # dE^2 (eV^2)
    "sq_energy_per_atom",  # (dE / N)^2 (eV^2)
    "sq_force",  # sum of dF^2 over the molecule's 3N components (eV^2/Å^2)
)
_COL = {name: i for i, name in enumerate(STAT_COLUMNS)}


def energy_mae(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of total energies. Shapes: ``(B,)``, ``(B,)`` -> scalar (eV)."""
    return (pred - true).abs().mean()


def energy_per_atom_mae(pred: torch.Tensor, true: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
    """``mean(|dE| / N)``. Shapes: ``(B,)``, ``(B,)``, ``(B,)`` -> scalar (eV/atom)."""
    return ((pred - true).abs() / num_atoms.to(pred.dtype)).mean()


def force_mae(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all Cartesian components. Shapes: ``(T, 3)``, ``(T, 3)`` -> scalar."""
    return (pred - true).abs().mean()


def force_cosine(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-atom cosine similarity of force vectors. Shapes: ``(T, 3)``, ``(T, 3)`` -> ``(T,)``.

    ``eps`` guards zero vectors (their cosine is 0).
    """
    dot = (pred * true).sum(-1)  # (T,)
    return dot / (pred.norm(dim=-1) * true.norm(dim=-1)).clamp_min(eps)


def molecule_statistics(
    num_atoms: torch.Tensor,
    batch_index: torch.Tensor,
    energy_pred: torch.Tensor | None = None,
    energy_true: torch.Tensor | None = None,
    forces_pred: torch.Tensor | None = None,
    forces_true: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-molecule sums and counts from which every metric follows (see :data:`STAT_COLUMNS`).

    Sums and counts (rather than means) can be added across batches, subsets and processes
    (``all_reduce``) before the division.

    Args:
        num_atoms: ``(B,)`` atoms per molecule.
        batch_index: ``(T,)`` molecule index of each atom.
        energy_pred, energy_true: ``(B,)`` total energies (eV), or ``None``.
        forces_pred, forces_true: ``(T, 3)`` forces (eV/Å), or ``None``.

    Returns:
        ``(B, 12)`` float64 statistics.
    """
    b = num_atoms.shape[0]
    stats = torch.zeros(b, len(STAT_COLUMNS), dtype=torch.float64, device=num_atoms.device)
    n = num_atoms.to(torch.float64)
    stats[:, _COL["n_molecules"]] = 1.0
    stats[:, _COL["n_atoms"]] = n
    if energy_pred is not None and energy_true is not None:
        de = (energy_pred.to(torch.float64) - energy_true.to(torch.float64)).abs()  # (B,)
        stats[:, _COL["abs_energy"]] = de
        stats[:, _COL["abs_energy_per_atom"]] = de / n
        stats[:, _COL["n_energy"]] = 1.0
        stats[:, _COL["sq_energy"]] = de**2
        stats[:, _COL["sq_energy_per_atom"]] = (de / n) ** 2
    if forces_pred is not None and forces_true is not None:
        fp, ft = forces_pred.to(torch.float64), forces_true.to(torch.float64)
        df = fp - ft
        per_atom = torch.stack([df.abs().sum(-1), force_cosine(fp, ft), (df**2).sum(-1)], -1)  # (T, 3)
        summed = torch.zeros(b, 3, dtype=torch.float64, device=stats.device).index_add_(
            0, batch_index, per_atom
        )
        stats[:, _COL["sq_force"]] = summed[:, 2]
        stats[:, _COL["abs_force"]] = summed[:, 0]
        stats[:, _COL["n_force_components"]] = 3.0 * n
        stats[:, _COL["force_cosine"]] = summed[:, 1]
        stats[:, _COL["n_force_atoms"]] = n
    return stats


@dataclass(frozen=True)
class Metrics:
    """Accuracy on a set of molecules; a field is ``None`` when the labels it needs are absent.

    Attributes:
        n_molecules: molecules seen.
        n_atoms: atoms seen.
        energy_mae: meV.
        energy_per_atom_mae: meV/atom.
        force_mae: meV/Å, over Cartesian components.
        force_cosine: mean per-atom cosine similarity.
        energy_rmse, energy_per_atom_rmse, force_rmse: the root-mean-square errors (meV, meV/atom,
            meV/Å over Cartesian components).
    """

    n_molecules: int
    n_atoms: int
    energy_mae: float | None
    energy_per_atom_mae: float | None
    force_mae: float | None
    force_cosine: float | None
    energy_rmse: float | None = None
    energy_per_atom_rmse: float | None = None
    force_rmse: float | None = None

    @classmethod
    def from_statistics(cls, stats: torch.Tensor) -> Metrics:
        """Turn summed :func:`molecule_statistics` ``(12,)`` into metrics."""
        s = dict(zip(STAT_COLUMNS, stats.detach().cpu().tolist(), strict=True))

        def ratio(num: str, den: str, scale: float = 1.0) -> float | None:
            return s[num] / s[den] * scale if s[den] > 0 else None

        def root(mean_square: float | None) -> float | None:
            return None if mean_square is None else 1000.0 * math.sqrt(mean_square)

        return cls(
            n_molecules=round(s["n_molecules"]),
            n_atoms=round(s["n_atoms"]),
            energy_mae=ratio("abs_energy", "n_energy", 1000.0),
            energy_per_atom_mae=ratio("abs_energy_per_atom", "n_energy", 1000.0),
            force_mae=ratio("abs_force", "n_force_components", 1000.0),
            force_cosine=ratio("force_cosine", "n_force_atoms"),
            energy_rmse=root(ratio("sq_energy", "n_energy")),
            energy_per_atom_rmse=root(ratio("sq_energy_per_atom", "n_energy")),
            force_rmse=root(ratio("sq_force", "n_force_components")),
        )

    def as_dict(self) -> dict:
        return asdict(self)


class MetricAccumulator:
    """Accumulates :func:`molecule_statistics` over batches, overall and per subset.

    The overall sums live on the device of the inputs and are only read in :meth:`compute`
    (no host-device sync per batch); :meth:`state` exposes them for ``all_reduce``.

    Example:
        >>> acc = MetricAccumulator()
        >>> acc.update(torch.tensor([2, 1]), torch.tensor([0, 0, 1]),
        ...            energy_pred=torch.tensor([1.0, 2.0]), energy_true=torch.tensor([1.5, 2.0]),
        ...            subsets=["a", "b"])
        >>> acc.compute().energy_mae, acc.compute_subsets()["a"].energy_per_atom_mae
        (250.0, 250.0)
    """

    def __init__(self) -> None:
        self.totals: torch.Tensor | None = None
        self.subsets: dict[str, torch.Tensor] = {}

    def update(
        self,
        num_atoms: torch.Tensor,
        batch_index: torch.Tensor,
        *,
        energy_pred: torch.Tensor | None = None,
        energy_true: torch.Tensor | None = None,
        forces_pred: torch.Tensor | None = None,
        forces_true: torch.Tensor | None = None,
        subsets: Sequence[str] | None = None,
    ) -> None:
        """Add one batch; ``subsets`` (length B) names the subset of each molecule."""
        stats = molecule_statistics(
            num_atoms, batch_index, energy_pred, energy_true, forces_pred, forces_true
        )
        summed = stats.sum(0)  # (12,)
        self.totals = summed if self.totals is None else self.totals + summed
        if subsets is not None:
            keys = sorted(set(subsets))
            ids = torch.tensor([keys.index(k) for k in subsets], device=stats.device)
            grouped = torch.zeros(len(keys), stats.shape[1], dtype=stats.dtype, device=stats.device)
            grouped = grouped.index_add_(0, ids, stats).cpu()
            for key, row in zip(keys, grouped, strict=True):
                self.subsets[key] = self.subsets[key] + row if key in self.subsets else row

    def state(self) -> torch.Tensor:
        """The overall sums ``(12,)`` (see :data:`STAT_COLUMNS`), e.g. for ``all_reduce``."""
        if self.totals is None:
            return torch.zeros(len(STAT_COLUMNS), dtype=torch.float64)
        return self.totals

    def compute(self, state: torch.Tensor | None = None) -> Metrics:
        """Overall metrics (from ``state`` when given, e.g. after an all-reduce)."""
        return Metrics.from_statistics(self.state() if state is None else state)

    def compute_subsets(self) -> dict[str, Metrics]:
        """Metrics per subset, keys sorted."""
        return {key: Metrics.from_statistics(row) for key, row in sorted(self.subsets.items())}
