"""Whether a trained model can answer for a molecule: the checks the calculator and the CLI share.

A molecule the model cannot represent is an error (:class:`~transip.data.DataError`, naming where
the molecule came from, the field and the model's key): more atoms than its context
(``max_atoms``), a charge or spin multiplicity without an embedding row (``charge_range``,
``spin_range``), two atoms at one place. A molecule it can represent but probably answers badly
for is a warning, given once per kind: an element without a fitted reference energy (absent from
the training data), a spin multiplicity whose parity contradicts the electron count (an even number
of electrons needs an odd ``2S + 1``; the data may follow another convention, so this is not an
error), atoms closer than :data:`CLOSE_CONTACT` Å.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from .data import DataError, Molecule, MoleculeDataset

__all__ = ["CLOSE_CONTACT", "COINCIDENT", "CheckedDataset", "InputCheck"]

#: atoms closer than this (Å) are warned about: no molecule has such a contact
CLOSE_CONTACT = 0.1
#: atoms closer than this (Å) are an error: the forces of two atoms at one place are not defined
COINCIDENT = 1e-6


class InputCheck:
    """Checks molecules against one model; remembers which warnings it has given.

    Args:
        model: a :class:`~transip.model.TransIP` (its ``config`` and ``element_energies`` are read).
        who: prefix of the warnings, e.g. ``"TransIPCalculator"``.
        distances: check interatomic distances (a k-d tree query per molecule).

    Example:
        >>> import numpy as np
        >>> from transip.model import TransIP, TransIPConfig
        >>> check = InputCheck(TransIP(TransIPConfig.preset("tiny")), who="example")
        >>> h2 = Molecule(np.array([[0.0, 0, 0], [0.74, 0, 0]]), np.array([1, 1]), charge=50)
        >>> check(h2, where="h2.xyz[0]")
        Traceback (most recent call last):
        ...
        transip.data.DataError: h2.xyz[0]: charge: 50 is outside the model's charge_range [-10, 10]
    """

    def __init__(self, model, *, who: str, distances: bool = True) -> None:
        config = model.config
        self.max_atoms = config.max_atoms
        self.charge_range = tuple(config.charge_range)
        self.spin_range = tuple(config.spin_range)
        self.who = who
        self.distances = distances
        refs = model.element_energies.detach().cpu().numpy()
        # a model without any references (e.g. untrained) has nothing to compare against
        self.unfitted = set(np.flatnonzero(refs == 0).tolist()) if refs.any() else set()
        self.warned: set[object] = set()

    def __call__(self, mol: Molecule, *, where: str) -> Molecule:
        """Raise :class:`DataError` for what the model cannot take; warn about what it answers badly."""
        n = len(mol)
        if n > self.max_atoms:
            raise DataError(
                where,
                "numbers",
                f"{n} atoms exceed the model's context, max_atoms={self.max_atoms} "
                "(train a model with a larger --model.max_atoms, or leave this structure out)",
            )
        for field, value, (lo, hi) in (
            ("charge", mol.charge, self.charge_range),
            ("spin", mol.spin, self.spin_range),
        ):
            if not lo <= value <= hi:
                raise DataError(where, field, f"{value} is outside the model's {field}_range [{lo}, {hi}]")
        self._elements(mol.numbers)
        self._parity(mol, where)
        if self.distances and n > 1:
            self._contacts(mol, where)
        return mol

    def _warn(self, key: object, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            warnings.warn(f"{self.who}: {message}", stacklevel=3)

    def _elements(self, numbers: np.ndarray) -> None:
        if not self.unfitted:
            return
        missing = sorted(set(np.unique(numbers).tolist()) & self.unfitted)
        missing = [z for z in missing if ("element", z) not in self.warned]
        if missing:
            from ase.data import chemical_symbols

            self.warned.update(("element", z) for z in missing)
            self._warn(
                ("elements", tuple(missing)),
                f"the model has no reference energy for {', '.join(chemical_symbols[z] for z in missing)}: "
                "it was not trained on these elements, so energies of structures with them are unreliable",
            )

    def _parity(self, mol: Molecule, where: str) -> None:
        electrons = int(mol.numbers.sum()) - int(mol.charge)
        if (electrons + int(mol.spin)) % 2 == 0:  # even electrons need odd 2S+1 and vice versa
            need = "odd" if electrons % 2 == 0 else "even"
            self._warn(
                "parity",
                f"{where}: spin multiplicity {mol.spin} with {electrons} electrons (charge {mol.charge}): "
                f"{electrons} electrons need an {need} multiplicity 2S+1; check the charge and spin "
                "(further such structures are not reported)",
            )

    def _contacts(self, mol: Molecule, where: str) -> None:
        pairs = cKDTree(mol.positions).query_pairs(CLOSE_CONTACT, output_type="ndarray")
        if not len(pairs):
            return
        d = np.linalg.norm(mol.positions[pairs[:, 0]] - mol.positions[pairs[:, 1]], axis=1)
        k = int(np.argmin(d))
        i, j = (int(v) for v in pairs[k])
        if d[k] < COINCIDENT:
            raise DataError(where, "positions", f"atoms {i} and {j} are at the same place")
        self._warn(
            "contact",
            f"{where}: atoms {i} and {j} are {d[k]:.3g} Å apart (< {CLOSE_CONTACT} Å): "
            "no training structure is like this, the energy is unreliable",
        )


class CheckedDataset(MoleculeDataset):
    """``dataset`` with every molecule passed through ``check`` as it is read.

    Lazily, so a large ``.aselmdb`` file is not read twice; errors and warnings name ``f"{name}[i]"``,
    ``i`` counting the molecules of ``dataset``.
    """

    def __init__(self, dataset: MoleculeDataset, check: InputCheck, name: str) -> None:
        self.dataset, self.check, self.name = dataset, check, name
        self.path = dataset.path

    def __len__(self) -> int:
        return len(self.dataset)

    def _compute_sizes(self):
        return self.dataset.sizes

    def _get(self, index: int) -> Molecule:
        return self.check(self.dataset[index], where=f"{self.name}[{index}]")
