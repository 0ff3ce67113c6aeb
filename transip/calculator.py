"""An ASE calculator backed by a TransIP model, for molecular dynamics and relaxations.

Charge and spin multiplicity come from ``atoms.info["charge"]`` and ``atoms.info["spin"]`` (the
OMol25 convention; defaults 0 and 1), read and checked as the data readers do
(:func:`transip.data.molecule_from_atoms`, :func:`transip.data.validate_molecule`): a charge of
``1.5`` is an error, not a charge of 1. Changing either invalidates the cached results.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from .checkpoint import load_model
from .data import Batch, molecule_from_atoms, validate_molecule
from .model import TransIP

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

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        model_or_path: TransIP | str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
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
        # elements without a fitted reference (absent from the training data), warned about once each;
        # a model without any references (e.g. untrained) has nothing to compare against
        refs = self.model.element_energies.detach().cpu().numpy()
        self._unfitted = set(np.flatnonzero(refs == 0).tolist()) if refs.any() else set()
        self._warned_elements: set[int] = set()

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
        # no distance check: a close contact during MD is the model's to answer, not an input error
        c = self.model.config
        validate_molecule(molecule, where=where, max_atoms=c.max_atoms, max_z=c.max_z, min_distance=None)
        self._warn_unfitted(self.atoms.numbers)
        batch = Batch.from_molecules([molecule], dtype=self.dtype).to(self.device)
        out = self.model(batch, compute_forces=True)  # always: MD asks for both, one pass is cheaper
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.detach().cpu().numpy().astype(np.float64),
        }

    def _warn_unfitted(self, numbers) -> None:
        """Warn (once per element) about elements without a fitted reference energy.

        A model with element references has a non-zero reference for every element it was trained
        on; an element with none was absent from its training data, so energies are far off.
        """
        if not self._unfitted:
            return
        missing = sorted((set(np.unique(numbers).tolist()) & self._unfitted) - self._warned_elements)
        if missing:
            self._warned_elements.update(missing)
            warnings.warn(
                f"TransIPCalculator: the model has no reference energy for "
                f"{', '.join(chemical_symbols[z] for z in missing)}: it was not trained on these "
                "elements, so energies of this structure are unreliable",
                stacklevel=2,
            )


def _raw_charge_spin(atoms) -> tuple:
    """What the cache compares: the ``info`` entries as they are (parsed only in ``calculate``)."""
    return atoms.info.get("charge", 0), atoms.info.get("spin", 1)
