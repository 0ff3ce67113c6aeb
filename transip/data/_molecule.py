"""One labelled molecule, the unit every reader produces.

Units: positions in Å, energies in eV, forces in eV/Å. ``spin`` is the spin multiplicity
``2S + 1`` (the OMol25 convention); ``charge`` is the total charge in units of e.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Molecule:
    """A molecule with optional labels.

    Args:
        positions: ``(N, 3)`` float64 Cartesian coordinates in Å.
        numbers: ``(N,)`` int64 atomic numbers.
        charge: total charge (int, default 0).
        spin: spin multiplicity ``2S + 1`` (int, default 1).
        energy: total energy in eV, or ``None`` when unlabelled.
        forces: ``(N, 3)`` forces in eV/Å, or ``None``.
        cell: ``(3, 3)`` cell in Å when periodic information is present, else ``None``.
        source: a free-form subset label (molecule name, OMol25 ``data_id``, file name...).
        data_id: OMol25 ``data_id`` style domain label, if known.
        info: any other per-molecule metadata carried along untouched.
    """

    positions: np.ndarray
    numbers: np.ndarray
    charge: int = 0
    spin: int = 1
    energy: float | None = None
    forces: np.ndarray | None = None
    cell: np.ndarray | None = None
    source: str = ""
    data_id: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
        if self.cell is not None:
            self.cell = np.asarray(self.cell, dtype=np.float64)
        self.charge = int(self.charge)
        self.spin = int(self.spin)
        if self.energy is not None:
            self.energy = float(self.energy)

    def __len__(self) -> int:
        return int(self.numbers.shape[0])
