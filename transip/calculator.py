"""An ASE calculator backed by a TransIP model, for molecular dynamics and relaxations.

Charge and spin multiplicity come from ``atoms.info["charge"]`` and ``atoms.info["spin"]`` (the
OMol25 convention; defaults 0 and 1), read and checked as the data readers do
(:func:`transip.data.molecule_from_atoms`, :func:`transip.data.validate_molecule`): a charge of
``1.5`` is an error, not a charge of 1. Changing either invalidates the cached results.

Every structure is checked against the model first (:class:`transip.applicability.InputCheck`):
non-finite positions, two atoms at one place, more atoms than the model's context, a charge or
spin outside the model's ranges raise :class:`~transip.data.DataError`; elements the model was
not trained on, a spin multiplicity whose parity contradicts the electron count and atoms closer
than 0.1 Å give a warning (once per calculator and kind).

``symmetry`` symmetrises each call (:mod:`transip.symmetrize`): ``"random"`` (a fresh Haar rotation
per call), ``"average:K"`` (the mean over K rotations) or ``"frames"`` (exact frame averaging, 4
passes). With two or more orientations the results also hold ``energy_spread`` (eV, the standard
deviation of the per-orientation energies) and ``force_spread`` (``(N,)`` eV/Å, per atom): a free
uncertainty estimate.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .applicability import InputCheck
from .checkpoint import load_model
from .data import Batch, molecule_from_atoms, validate_molecule
from .model import TransIP
from .symmetrize import Symmetry, symmetric_predict

__all__ = ["TransIPCalculator"]


class TransIPCalculator(Calculator):
    """ASE calculator for one molecule at a time.

    Args:
        model_or_path: a :class:`~transip.model.TransIP` or a checkpoint path.
        device: where the model runs.
        dtype: precision of the model and the positions (``torch.float64`` for very tight
            relaxations or long NVE runs); energies are float64 regardless.
        compile: run the model's Transformer blocks through :func:`torch.compile`
            (:meth:`~transip.model.TransIP.compile_blocks`). Off by default: on CPU it was slower
            than eager and the first call compiled for 17 s (``docs/performance.md``).
        symmetry: ``"none"`` (default), ``"random"``, ``"average:K"`` or ``"frames"``
            (:class:`transip.symmetrize.Symmetry`; cost and effect in ``docs/transip/symmetry.md``).
        seed: seed of the rotations of ``"random"`` and ``"average:K"`` (``None``: torch's global
            random state).

    A model passed in is used as is: like ``nn.Module.to`` it is moved to ``device`` and ``dtype``
    in place and put in eval mode. Pass ``copy.deepcopy(model)`` to leave the original untouched.

    Example:
        >>> from ase.build import molecule
        >>> from transip.model import TransIPConfig
        >>> atoms = molecule("H2O")
        >>> atoms.calc = TransIPCalculator(TransIP(TransIPConfig.preset("tiny")))
        >>> atoms.get_forces().shape
        (3, 3)
    """

    implemented_properties = ["energy", "free_energy", "forces", "energy_spread", "force_spread"]

    def __init__(
        self,
        model_or_path: TransIP | str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
        symmetry: str | Symmetry = "none",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        model = model_or_path if isinstance(model_or_path, TransIP) else load_model(model_or_path, device)
        self.model = model.to(device=device, dtype=dtype).eval()
        if compile:
            self.model.compile_blocks()
        self.device = torch.device(device)
        self.dtype = dtype
        self._state: tuple[int, int] | None = None
        self._check = InputCheck(self.model, who="TransIPCalculator")
        self.symmetry = Symmetry.parse(symmetry)
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        changes = super().check_state(atoms, tol)
        if self._state is not None and self._state != _raw_charge_spin(atoms):
            changes.append("charge_spin")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self._state = _raw_charge_spin(self.atoms)
        where = "TransIPCalculator"
        molecule = molecule_from_atoms(self.atoms, where=where)  # DataError: a charge of 1.5
        # no distance error: a close contact during MD is the model's to answer (InputCheck warns);
        # two atoms at one place are an error there
        validate_molecule(molecule, where=where, max_z=self.model.config.max_z, min_distance=None)
        self._check(molecule, where=where)
        batch = Batch.from_molecules([molecule], dtype=self.dtype).to(self.device)
        # forces always: MD asks for both, one pass is cheaper
        out = symmetric_predict(self.model, batch, self.symmetry, generator=self._generator)
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.cpu().numpy().astype(np.float64),
        }
        if out.energy_spread is not None:
            self.results["energy_spread"] = float(out.energy_spread[0])
            self.results["force_spread"] = out.force_spread.cpu().numpy().astype(np.float64)


def _raw_charge_spin(atoms) -> tuple:
    """What the cache compares: the ``info`` entries as they are (parsed only in ``calculate``)."""
    return atoms.info.get("charge", 0), atoms.info.get("spin", 1)
