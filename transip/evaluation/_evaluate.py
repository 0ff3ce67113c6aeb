"""Accuracy of a model on a dataset: OMol25 metrics overall and per subset, optionally the predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._loader import GroupBy, inference_batches
from ._metrics import MetricAccumulator, Metrics


@dataclass
class Predictions:
    """Per-molecule and per-atom predictions in dataset order (numpy, float64, eV and eV/Å).

    ``energy_true`` / ``forces_true`` are ``None`` when the data has no such labels;
    ``energy_reference`` is the element-reference part of each total energy (for parity plots
    of referenced energies).
    """

    energy: np.ndarray  # (B,)
    energy_reference: np.ndarray  # (B,)
    num_atoms: np.ndarray  # (B,)
    forces: np.ndarray | None = None  # (T, 3)
    energy_true: np.ndarray | None = None  # (B,)
    forces_true: np.ndarray | None = None  # (T, 3)
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics overall and per subset, with the predictions when they were kept."""

    overall: Metrics
    subsets: dict[str, Metrics]
    predictions: Predictions | None = None

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "subsets": {k: v.as_dict() for k, v in self.subsets.items()},
        }


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

    Returns:
        An :class:`EvaluationReport`.
    """
    was_training = model.training
    model.eval()
    acc = MetricAccumulator()
    kept: dict[str, list] = {k: [] for k in ("e", "eref", "n", "f", "et", "ft", "keys")}
    try:
        for item in inference_batches(
            dataset,
            max_atoms=max_atoms,
            group_by=group_by,
            dtype=dtype,
            device=device,
            num_workers=num_workers,
        ):
            b = item.batch
            out = model(b, compute_forces=compute_forces, training=False)
            forces = None if out.forces is None else out.forces.detach()
            acc.update(
                b.num_atoms,
                b.batch,
                energy_pred=out.energy.detach(),
                energy_true=b.energy,
                forces_pred=forces,
                forces_true=b.forces,
                subsets=item.keys,
            )
            if keep_predictions:
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
    return EvaluationReport(acc.compute(), acc.compute_subsets(), predictions)


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
    )
