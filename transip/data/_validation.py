"""Checks that a molecule can be fed to the model, with errors that say where the bad data is.

Every reader calls :func:`validate_molecule` on what it reads, with ``where = f"{path}[{index}]"``,
so a bad frame deep inside a large file is reported by file, row and field rather than surfacing
later as a NaN loss.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from scipy.spatial import cKDTree

from ._molecule import Molecule

#: Largest atomic number the package knows (oganesson); element tables have ``MAX_Z + 1`` rows.
MAX_Z = 118


class DataError(ValueError):
    """A molecule or file that cannot be used, located by file, row and field.

    Args:
        where: the location, e.g. ``"train.extxyz[12]"``.
        field: the offending field (``"numbers"``, ``"positions"``, ``"forces"``, ``"charge"``...).
        problem: what is wrong with it.

    The message reads ``"{where}: {field}: {problem}"``; the parts are kept as attributes.
    """

    def __init__(self, where: str, field: str, problem: str) -> None:
        super().__init__(f"{where}: {field}: {problem}")
        self.where = where
        self.field = field
        self.problem = problem

    def __reduce__(self):  # keep the three parts when sent back from a DataLoader worker
        return (type(self), (self.where, self.field, self.problem))


DataError.__module__ = "transip.data"  # shown in tracebacks under its public name


def _check_finite(where: str, field: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0]) if values.ndim > 0 else 0
        raise DataError(where, field, f"non-finite value (first at atom {row})")


def validate_molecule(
    mol: Molecule,
    *,
    where: str,
    max_atoms: int | None = None,
    allowed_numbers: Collection[int] | None = None,
    min_distance: float | None = 0.1,
    max_z: int = MAX_Z,
    charge_range: tuple[int, int] | None = None,
    spin_range: tuple[int, int] | None = None,
) -> Molecule:
    """Check a molecule and return it unchanged, or raise :class:`DataError`.

    Checks, in order: at least one atom; ``positions`` is ``(N, 3)`` and ``numbers`` is ``(N,)``;
    atomic numbers in ``1..max_z`` (and in ``allowed_numbers`` when given); at most ``max_atoms``
    atoms (the model's context); finite positions, energy and forces; ``forces`` shaped like
    ``positions``; spin multiplicity at least 1; charge and spin multiplicity inside ``charge_range``
    and ``spin_range`` (the model's embedding rows) when given; no two atoms closer than
    ``min_distance`` Å.

    Args:
        mol: the molecule.
        where: location used in the error message, e.g. ``"data.extxyz[3]"``.
        max_atoms: largest allowed molecule, or ``None`` for no limit.
        allowed_numbers: the elements a model supports, or ``None`` for any in ``1..max_z``.
        min_distance: smallest allowed interatomic distance in Å, or ``None`` to skip the check
            (it costs a k-d tree query, ``O(N log N)``).
        max_z: largest atomic number accepted.
        charge_range: inclusive ``(min, max)`` total charge the model has an embedding for, or
            ``None`` for any.
        spin_range: inclusive ``(min, max)`` spin multiplicity ``2S + 1`` likewise.

    Returns:
        ``mol`` itself, so readers can write ``return validate_molecule(mol, where=...)``.

    Example:
        >>> import numpy as np
        >>> from transip.data import Molecule
        >>> h2 = Molecule(positions=np.array([[0.0, 0, 0], [0.74, 0, 0]]), numbers=np.array([1, 1]))
        >>> validate_molecule(h2, where="h2.xyz[0]") is h2
        True
        >>> validate_molecule(h2, where="h2.xyz[0]", max_atoms=1)
        Traceback (most recent call last):
        ...
        transip.data.DataError: h2.xyz[0]: numbers: 2 atoms exceed max_atoms=1
        >>> validate_molecule(h2, where="h2.xyz[0]", charge_range=(1, 2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        transip.data.DataError: h2.xyz[0]: charge: 0 is outside the model's charge_range [1, 2] (...)
    """
    n = len(mol)
    if mol.numbers.ndim != 1:
        raise DataError(where, "numbers", f"expected shape (N,), got {tuple(mol.numbers.shape)}")
    if n == 0:
        raise DataError(where, "numbers", "empty molecule (no atoms)")
    if mol.positions.shape != (n, 3):
        raise DataError(where, "positions", f"expected shape ({n}, 3), got {tuple(mol.positions.shape)}")
    bad = (mol.numbers < 1) | (mol.numbers > max_z)
    if bad.any():
        z = int(mol.numbers[bad][0])
        raise DataError(where, "numbers", f"unsupported element Z={z} (allowed 1..{max_z})")
    if allowed_numbers is not None:
        allowed = np.asarray(sorted(allowed_numbers), dtype=np.int64)
        outside = ~np.isin(mol.numbers, allowed)
        if outside.any():
            z = int(mol.numbers[outside][0])
            raise DataError(where, "numbers", f"element Z={z} is not among the model's elements")
    if max_atoms is not None and n > max_atoms:
        raise DataError(where, "numbers", f"{n} atoms exceed max_atoms={max_atoms}")
    _check_finite(where, "positions", mol.positions)
    if mol.energy is not None and not np.isfinite(mol.energy):
        raise DataError(where, "energy", f"non-finite value {mol.energy}")
    if mol.forces is not None:
        if mol.forces.shape != (n, 3):
            raise DataError(where, "forces", f"expected shape ({n}, 3), got {tuple(mol.forces.shape)}")
        _check_finite(where, "forces", mol.forces)
    if mol.spin < 1:
        raise DataError(where, "spin", f"spin multiplicity 2S+1 must be >= 1, got {mol.spin}")
    for field, value, limits in (("charge", mol.charge, charge_range), ("spin", mol.spin, spin_range)):
        if limits is not None and not limits[0] <= value <= limits[1]:
            raise DataError(
                where,
                field,
                f"{value} is outside the model's {field}_range [{limits[0]}, {limits[1]}] "
                f"(widen model.{field}_range, or leave this structure out)",
            )
    if min_distance is not None and n > 1:
        pairs = cKDTree(mol.positions).query_pairs(min_distance, output_type="ndarray")
        if len(pairs):
            i, j = (int(k) for k in pairs[0])
            d = float(np.linalg.norm(mol.positions[i] - mol.positions[j]))
            raise DataError(
                where, "positions", f"atoms {i} and {j} are {d:.3g} Å apart (< min_distance={min_distance})"
            )
    return mol
