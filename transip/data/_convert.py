"""``Molecule`` <-> ``ase.Atoms``: how labels, charge and spin are found on an ASE object.

Labels: by default the energy and forces come from the attached calculator (what the extxyz reader
produces for ``energy=`` in the comment line and a ``forces`` column). With ``energy_key`` /
``forces_key`` they are looked up in ``atoms.info`` / ``atoms.arrays`` first, then in the calculator
results under that name (as MACE's ``--energy_key`` does).

Charge and spin multiplicity come from ``atoms.info[charge_key]`` and ``atoms.info[spin_key]``
(OMol25: ``"charge"`` and ``"spin"``), defaulting to 0 and 1 when absent. A present value that is not
an integer is an error, never silently replaced by the default.
"""

from __future__ import annotations

import numbers as _numbers

import numpy as np

from ._molecule import Molecule
from ._validation import DataError


def _integer(value, *, where: str, field: str) -> int:
    """An integer from an int, a numpy integer, or an integral float; anything else is an error."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool | np.bool_):
        raise DataError(where, field, f"expected an integer, got a boolean {value!r}")
    if isinstance(value, _numbers.Integral):
        return int(value)
    if isinstance(value, _numbers.Real) and float(value).is_integer():
        return int(value)
    raise DataError(where, field, f"expected an integer, got {value!r}")


def pop_energy(info: dict, results: dict, *, energy_key: str | None, where: str) -> float | None:
    """The energy label in eV by the rules of :func:`molecule_from_atoms`, or ``None``.

    With ``energy_key`` the entry is removed from ``info`` (it becomes the label, not metadata).

    Raises:
        DataError: the value found is not a number.
    """
    if energy_key is None:
        energy = results.get("energy")
    else:
        energy = info.pop(energy_key, None)
        if energy is None:
            energy = results.get(energy_key)
    if energy is None:
        return None
    try:
        return float(np.asarray(energy).item())
    except (TypeError, ValueError) as err:
        raise DataError(where, "energy", f"expected a number, got {energy!r}") from err


def molecule_from_parts(
    *,
    positions,
    numbers,
    info: dict,
    results: dict,
    arrays: dict | None = None,
    cell=None,
    pbc=None,
    energy_key: str | None = None,
    forces_key: str | None = None,
    charge_key: str = "charge",
    spin_key: str = "spin",
    source: str = "",
    where: str = "<atoms>",
) -> Molecule:
    """Build a :class:`Molecule` from the pieces an ASE object or database row is made of.

    ``info`` holds per-structure metadata (``atoms.info``; for database rows the key-value pairs
    and ``data``), ``results`` the calculator properties, ``arrays`` extra per-atom arrays. The
    lookup rules are those of :func:`molecule_from_atoms`.
    """
    info = dict(info)
    arrays = arrays or {}
    energy = pop_energy(info, results, energy_key=energy_key, where=where)

    if forces_key is None:
        forces = results.get("forces")
    else:
        forces = arrays.get(forces_key)
        if forces is None:
            forces = results.get(forces_key)
    if forces is not None:
        try:
            forces = np.array(forces, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(where, "forces", "not a numeric array") from err

    charge = _integer(info.pop(charge_key), where=where, field=charge_key) if charge_key in info else 0
    spin = _integer(info.pop(spin_key), where=where, field=spin_key) if spin_key in info else 1

    pbc = np.zeros(3, dtype=bool) if pbc is None else np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    cell = None if cell is None else np.array(cell, dtype=np.float64).reshape(3, 3)
    if pbc.any():
        info["pbc"] = pbc.tolist()
    keep_cell = cell is not None and (pbc.any() or cell.any())
    return Molecule(
        positions=np.array(positions, dtype=np.float64),
        numbers=np.array(numbers, dtype=np.int64),
        charge=charge,
        spin=spin,
        energy=energy,
        forces=forces,
        cell=cell if keep_cell else None,
        source=str(info.pop("source", source)),
        data_id=str(info.pop("data_id", "")),
        info=info,
    )


def molecule_from_atoms(
    atoms,
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    charge_key: str = "charge",
    spin_key: str = "spin",
    source: str = "",
    where: str = "<atoms>",
) -> Molecule:
    """Build a :class:`Molecule` from an ``ase.Atoms``.

    Args:
        atoms: the ASE object.
        energy_key: ``atoms.info`` key (or calculator property) holding the energy in eV;
            ``None`` uses the calculator's ``energy``.
        forces_key: ``atoms.arrays`` key (or calculator property) holding forces in eV/Å;
            ``None`` uses the calculator's ``forces``.
        charge_key: ``atoms.info`` key of the total charge (default 0 when absent).
        spin_key: ``atoms.info`` key of the spin multiplicity ``2S + 1`` (default 1 when absent).
        source: fallback subset label when ``atoms.info`` has no ``"source"`` (readers pass the
            file name).
        where: location for error messages.

    Returns:
        The molecule. ``info`` keeps every other ``atoms.info`` entry, and ``"pbc"`` when any
        direction is periodic. The molecule is not validated here; readers call
        :func:`validate_molecule`.

    Raises:
        DataError: a charge or spin that is present but not an integer, a non-numeric label.

    Example:
        >>> from ase.build import molecule
        >>> water = molecule("H2O")
        >>> water.info["charge"] = 0
        >>> m = molecule_from_atoms(water)
        >>> len(m), m.charge, m.spin, m.energy
        (3, 0, 1, None)
    """
    calc = atoms.calc
    results = dict(getattr(calc, "results", {}) or {}) if calc is not None else {}
    return molecule_from_parts(
        positions=atoms.positions,
        numbers=atoms.numbers,
        info=atoms.info,
        results=results,
        arrays=atoms.arrays,
        cell=atoms.cell[:],
        pbc=atoms.pbc,
        energy_key=energy_key,
        forces_key=forces_key,
        charge_key=charge_key,
        spin_key=spin_key,
        source=source,
        where=where,
    )


def molecule_to_atoms(mol: Molecule):
    """Build an ``ase.Atoms`` from a :class:`Molecule`.

    Labels are attached as a ``SinglePointCalculator`` (so ``get_potential_energy()`` and
    ``get_forces()`` work); ``charge``, ``spin``, ``source``, ``data_id`` and ``info`` go to
    ``atoms.info``. Periodicity is taken from ``info["pbc"]`` (default: not periodic).

    Example:
        >>> import numpy as np
        >>> m = Molecule(np.zeros((1, 3)), np.array([8]), charge=-1, spin=2, energy=-2.5)
        >>> a = molecule_to_atoms(m)
        >>> a.get_chemical_symbols(), a.info["charge"], a.info["spin"], a.get_potential_energy()
        (['O'], -1, 2, -2.5)
    """
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    info = dict(mol.info)
    pbc = info.pop("pbc", False)
    atoms = Atoms(
        numbers=mol.numbers.copy(),
        positions=mol.positions.copy(),
        cell=None if mol.cell is None else mol.cell.copy(),
        pbc=pbc,
    )
    atoms.info.update(info)
    atoms.info["charge"] = int(mol.charge)
    atoms.info["spin"] = int(mol.spin)
    if mol.source:
        atoms.info["source"] = mol.source
    if mol.data_id:
        atoms.info["data_id"] = mol.data_id
    results = {}
    if mol.energy is not None:
        results["energy"] = float(mol.energy)
    if mol.forces is not None:
        results["forces"] = mol.forces.copy()
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms
