"""What the training labels give a run: element references, the energy and force units.

The references are a least-squares fit of per-element energies (float64, streamed, so memory does
not grow with the training set); the energy unit is the RMS of what they leave; the force unit the
RMS of the force components. ``loss.head_unit`` and ``loss.force_unit`` pick between the two.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols

from transip.data import MAX_Z, ElementReferences, ReferenceFitReport, numbers_and_energies


@dataclass(frozen=True)
class ReferenceFit:
    """Element references fitted on the training set and the units derived from the labels.

    Attributes:
        references: per-element reference energies.
        report: the fit's residuals.
        energy_scale: RMS of the referenced training energies, eV (floored at 1 meV).
        force_rms: RMS of the training force components, eV/Å (``nan`` without forces; floored
            at 1 meV/Å), over at most :data:`FORCE_RMS_SAMPLE` molecules.
    """

    references: ElementReferences
    report: ReferenceFitReport
    energy_scale: float
    force_rms: float = float("nan")

    def unit(self, name: str) -> float:
        """``"energy_rms"`` or ``"force_rms"`` (the energy RMS when the set has no forces)."""
        if name == "force_rms" and math.isfinite(self.force_rms):
            return self.force_rms
        return self.energy_scale


#: Training sets up to this many molecules get the exact residual MAE of the reference fit (a second
#: read of ``(numbers, energy)``); larger ones log the RMSE only.
MAE_PASS_LIMIT = 200_000


#: The force RMS is estimated on a seeded random sample of at most this many training molecules.
FORCE_RMS_SAMPLE = 10_000


def force_rms(dataset, *, sample: int = FORCE_RMS_SAMPLE, seed: int = 0) -> float:
    """RMS of the force components of (a seeded sample of) ``dataset``, eV/Å; ``nan`` without forces."""
    n = len(dataset)
    idx = (
        np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    )
    total, count = 0.0, 0
    for i in idx:
        forces = dataset[int(i)].forces
        if forces is not None:
            total += float(np.square(forces).sum())
            count += forces.size
    return max(math.sqrt(total / count), 1e-3) if count else float("nan")


def fit_references(train) -> ReferenceFit:
    """Least-squares element references (float64) and the energy scale: the RMS of the residuals.

    The scale is the unit the energy head predicts in, so the referenced energies the head must
    produce are of order one at the start (floored at 1 meV so a perfect fit cannot divide by zero).
    The fit streams (memory independent of the training set's size). The residual MAE, only
    reported, costs a second read of ``(numbers, energy)``: it is computed for sets of up to
    :data:`MAE_PASS_LIMIT` molecules and is ``nan`` beyond (:meth:`ElementReferences.fit`).
    """
    refs, report = ElementReferences.fit(train, mae=len(train) <= MAE_PASS_LIMIT)
    return ReferenceFit(refs, report, max(report.rmse, 1e-3), force_rms(train))


def warn_unseen_elements(dataset, trained: tuple[int, ...], name: str) -> list[int]:
    """Log a warning naming the elements of ``dataset`` that the training set does not contain.

    Such elements get reference energy 0 and an untrained embedding, so energies of molecules that
    contain them are off by roughly a free atom's energy. Returns the unseen atomic numbers.
    """
    if dataset is None:
        return []
    seen = np.zeros(MAX_Z + 1, dtype=bool)
    for z, _ in numbers_and_energies(dataset):  # without building whole molecules where it can
        seen[z] = True
    unseen = sorted(set(np.flatnonzero(seen).tolist()) - set(trained))
    if unseen:
        logging.getLogger("transip.training").warning(
            "%s contains elements absent from the training set: %s (reference energy 0, untrained "
            "embedding: their molecules' energies will be far off)",
            name,
            ", ".join(chemical_symbols[z] for z in unseen),
        )
    return unseen
