"""Accuracy of a model on a dataset: OMol25 metrics overall and per subset, optionally the predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from transip.symmetrize import Symmetry, symmetric_predict

from ._loader import GroupBy, inference_batches
from ._metrics import MetricAccumulator, Metrics
from ._uncertainty import SpreadRanking, spread_ranking


@dataclass
class Predictions:
    """Per-molecule and per-atom predictions in dataset order (numpy, float64, eV and eV/Å).

    ``energy_true`` / ``forces_true`` are ``None`` when the data has no such labels;
    ``energy_reference`` is the element-reference part of each total energy (for parity plots
    of referenced energies); ``energy_spread`` / ``force_spread`` the rotation spread (per molecule,
    per atom; :mod:`transip.symmetrize`) when two or more orientations were averaged.
    """

    energy: np.ndarray  # (B,)
    energy_reference: np.ndarray  # (B,)
    num_atoms: np.ndarray  # (B,)
    forces: np.ndarray | None = None  # (T, 3)
    energy_true: np.ndarray | None = None  # (B,)
    forces_true: np.ndarray | None = None  # (T, 3)
    keys: list[str] = field(default_factory=list)
    energy_spread: np.ndarray | None = None  # (B,)
    force_spread: np.ndarray | None = None  # (T,)


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics overall and per subset, with the predictions when they were kept.

    ``symmetry`` is how predictions were symmetrised; ``uncertainty`` how well the rotation spread
    ranks the errors (``None`` with one orientation or without labels).
    """

    overall: Metrics
    subsets: dict[str, Metrics]
    predictions: Predictions | None = None
    symmetry: str = "none"
    uncertainty: SpreadRanking | None = None

    def as_dict(self) -> dict:
        out = {
            "overall": self.overall.as_dict(),
            "subsets": {k: v.as_dict() for k, v in self.subsets.items()},
        }
        if self.symmetry != "none":  # metrics.json of a run keeps its keys
            out["symmetry"] = self.symmetry
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty.as_dict()
        return out


def reference_energies(
    model: nn.Module, numbers: torch.Tensor, batch_index: torch.Tensor, n: int
) -> torch.Tensor:
    """The element-reference sum per molecule ``(B,)`` float64 from the model's reference table."""
    table = model.element_energies.to(torch.float64)  # (119,)
    out = torch.zeros(n, dtype=torch.float64, device=numbers.device)
    return out.index_add_(0, batch_index, table[numbers])


def evaluate(
    model: nn.Module,
    dataset,
    *,
    max_atoms: int = 1024,
    group_by: GroupBy = "source",
    compute_forces: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    keep_predictions: bool = False,
    num_workers: int = 0,
    symmetry: str | Symmetry = "none",
    seed: int = 0,
) -> EvaluationReport:
    """Run ``model`` over ``dataset`` once and compute the OMol25 metrics on total energies.

    Args:
        model: a TransIP model (put in eval mode here; its mode is restored afterwards).
        dataset: a molecule dataset with energy (and optionally force) labels.
        max_atoms: atoms per inference batch.
        group_by: subset labels for the breakdown (``"source"``, ``"data_id"``, ``"none"``).
        compute_forces: predict forces (needed for the force metrics).
        device, dtype: where and in which precision the model runs (the model is not moved).
        keep_predictions: also return every prediction (for parity plots or writing).
        num_workers: DataLoader workers.
        symmetry: how predictions are symmetrised (:class:`transip.symmetrize.Symmetry`); with
            ``K`` orientations a batch holds ``max_atoms`` atoms of copies (``max_atoms / K``
            of the dataset's). With two or more, the report's ``uncertainty`` says how well the
            rotation spread ranks the errors.
        seed: seed of the rotations of ``"random"`` and ``"average:K"``.

    Returns:
        An :class:`EvaluationReport`.
    """
    was_training = model.training
    model.eval()
    sym = Symmetry.parse(symmetry)
    generator = torch.Generator().manual_seed(seed)
    acc = MetricAccumulator()
    kept: dict[str, list] = {k: [] for k in ("e", "eref", "n", "f", "et", "ft", "keys", "es", "fs")}
    ranked: dict[str, list] = {k: [] for k in ("es", "ee", "fs", "fe", "b")}
    try:
        for item in inference_batches(
            dataset,
            max_atoms=max(1, max_atoms // sym.copies),
            group_by=group_by,
            dtype=dtype,
            device=device,
            num_workers=num_workers,
        ):
            b = item.batch
            out = symmetric_predict(model, b, sym, compute_forces=compute_forces, generator=generator)
            forces = out.forces
            acc.update(
                b.num_atoms,
                b.batch,
                energy_pred=out.energy,
                energy_true=b.energy,
                forces_pred=forces,
                forces_true=b.forces,
                subsets=item.keys,
            )
            if out.energy_spread is not None and b.energy is not None:
                ranked["es"].append(out.energy_spread.cpu())
                ranked["ee"].append((out.energy - b.energy.double()).abs().cpu())
                if forces is not None and b.forces is not None:
                    ranked["fs"].append(out.force_spread.double().cpu())
                    ranked["fe"].append((forces - b.forces).double().norm(dim=-1).cpu())
                    ranked["b"].append(b.batch.cpu() + sum(len(e) for e in ranked["es"][:-1]))
            if keep_predictions:
                kept["es"].append(out.energy_spread)
                kept["fs"].append(out.force_spread)
                kept["e"].append(out.energy.detach().double().cpu())
                kept["eref"].append(reference_energies(model, b.numbers, b.batch, b.num_molecules).cpu())
                kept["n"].append(b.num_atoms.cpu())
                kept["f"].append(None if forces is None else forces.double().cpu())
                kept["et"].append(None if b.energy is None else b.energy.double().cpu())
                kept["ft"].append(None if b.forces is None else b.forces.double().cpu())
                kept["keys"].extend(item.keys)
    finally:
        model.train(was_training)
    predictions = _gather(kept) if keep_predictions else None
    uncertainty = None
    if ranked["es"]:
        uncertainty = spread_ranking(
            torch.cat(ranked["es"]).numpy(),
            torch.cat(ranked["ee"]).numpy(),
            _cat(ranked["fs"]),
            _cat(ranked["fe"]),
            _cat(ranked["b"]),
        )
    return EvaluationReport(acc.compute(), acc.compute_subsets(), predictions, str(sym), uncertainty)


def _cat(parts: list) -> np.ndarray | None:
    if not parts or any(p is None for p in parts):
        return None
    return torch.cat(parts).numpy()


def _gather(kept: dict[str, list]) -> Predictions:
    return Predictions(
        energy=_cat(kept["e"]) if kept["e"] else np.zeros(0),
        energy_reference=_cat(kept["eref"]) if kept["eref"] else np.zeros(0),
        num_atoms=_cat(kept["n"]) if kept["n"] else np.zeros(0, dtype=np.int64),
        forces=_cat(kept["f"]),
        energy_true=_cat(kept["et"]),
        forces_true=_cat(kept["ft"]),
        keys=kept["keys"],
        energy_spread=_cat([None if t is None else t.double().cpu() for t in kept["es"]]),
        force_spread=_cat([None if t is None else t.double().cpu() for t in kept["fs"]]),
    )
