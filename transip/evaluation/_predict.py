"""Write a model's predictions for any structure file as extended XYZ (atomic write)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transip.data import molecule_to_atoms

from ._evaluate import evaluate

#: where the reference labels of the input (if any) are kept in the written file
REFERENCE_ENERGY_KEY = "ref_energy"
REFERENCE_FORCES_KEY = "ref_forces"
#: where the rotation spread goes (``--symmetry average:K`` or ``frames``)
ENERGY_SPREAD_KEY = "energy_spread"
FORCE_SPREAD_KEY = "force_spread"


def write_predictions(
    model: nn.Module,
    dataset,
    path: str | Path,
    *,
    compute_forces: bool = True,
    max_atoms: int = 1024,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    symmetry: str = "none",
    seed: int = 0,
) -> Path:
    """Predict every structure of ``dataset`` and write them to ``path`` as extended XYZ.

    Each frame carries the prediction as its calculator results (``energy=`` in the comment line
    and a ``forces`` column, so ``ase.io.read(path, ":")[i].get_potential_energy()`` is the
    prediction), the input's labels, when present, as ``info["ref_energy"]`` and
    ``arrays["ref_forces"]``, and charge, spin, source and data_id in ``info``. The file is written
    to a temporary name in the same folder and moved into place, so a crash never leaves a partial
    file. With a ``symmetry`` of two or more orientations each frame also carries the rotation
    spread: ``info["energy_spread"]`` (eV) and ``arrays["force_spread"]`` (eV/Å, per atom).

    Args:
        model: a TransIP model.
        dataset: any molecule dataset (e.g. from :func:`transip.data.read_dataset`).
        path: the output file.
        compute_forces: also predict forces.
        max_atoms, device, dtype, symmetry, seed: as for :func:`transip.evaluation.evaluate`.

    Returns:
        The path written.
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    report = evaluate(
        model,
        dataset,
        max_atoms=max_atoms,
        group_by="none",
        compute_forces=compute_forces,
        device=device,
        dtype=dtype,
        keep_predictions=True,
        symmetry=symmetry,
        seed=seed,
    )
    pred = report.predictions
    offsets = np.concatenate([[0], np.cumsum(pred.num_atoms)])
    frames = []
    for i in range(len(dataset)):
        mol = dataset[i]
        atoms = molecule_to_atoms(mol)
        atoms.calc = None
        if mol.energy is not None:
            atoms.info[REFERENCE_ENERGY_KEY] = float(mol.energy)
        if mol.forces is not None:
            atoms.arrays[REFERENCE_FORCES_KEY] = mol.forces.copy()
        if pred.energy_spread is not None:
            atoms.info[ENERGY_SPREAD_KEY] = float(pred.energy_spread[i])
        if pred.force_spread is not None:
            atoms.arrays[FORCE_SPREAD_KEY] = pred.force_spread[offsets[i] : offsets[i + 1]].copy()
        results = {"energy": float(pred.energy[i])}
        if pred.forces is not None:
            results["forces"] = pred.forces[offsets[i] : offsets[i + 1]]
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp, frames, format="extxyz")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
