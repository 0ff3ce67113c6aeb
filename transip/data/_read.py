"""``read_dataset``: one entry point that picks the reader from the path."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from ._ase_files import AseDbDataset, read_ase_file
from ._aselmdb import AseLmdbDataset
from ._dataset import ConcatMoleculeDataset, Index, MoleculeDataset, ReadOptions, resolve_index, subset


def _is_lmdb(path: Path) -> bool:
    return path.suffix == ".aselmdb" or (path.is_dir() and any(path.glob("*.aselmdb")))


def read_dataset(
    path: str | Path | Sequence[str | Path],
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    charge_key: str = "charge",
    spin_key: str = "spin",
    index: Index = None,
    validate: bool = True,
    max_atoms: int | None = None,
    allowed_numbers: Collection[int] | None = None,
    min_distance: float | None = 0.1,
    charge_range: tuple[int, int] | None = None,
    spin_range: tuple[int, int] | None = None,
) -> MoleculeDataset:
    """Read molecules from a file, a directory of ``.aselmdb`` files, or a list of those.

    Dispatch on the path:

    - ``*.aselmdb`` or a directory of them: OMol25 / fairchem LMDB, read lazily
      (:class:`AseLmdbDataset`);
    - ``*.db``: an ASE database, read lazily (:class:`AseDbDataset`);
    - anything else: ``ase.io`` (extxyz, ``.extxyz.gz``, xyz, traj...), read eagerly;
    - a list or tuple of paths: each read as above, concatenated in order.

    Args:
        path: where the data is.
        energy_key: ``atoms.info`` key (or calculator property) of the energy in eV; ``None``
            takes the calculator's ``energy`` (what extxyz's ``energy=`` becomes).
        forces_key: ``atoms.arrays`` key (or calculator property) of forces in eV/Å.
        charge_key: info key of the total charge; absent means 0, a non-integer is an error.
        spin_key: info key of the spin multiplicity ``2S + 1``; absent means 1.
        index: which structures to keep (int, slice, sequence, or ASE-style string such as
            ``"::10"``); applied to each file of a list separately.
        validate: check each molecule as it is read (see :func:`validate_molecule`), raising
            :class:`DataError` with ``f"{file}[{row}]"`` and the field.
        max_atoms: reject molecules longer than the model's context.
        allowed_numbers: reject elements outside this set.
        min_distance: reject atoms closer than this (Å); ``None`` skips the check.
        charge_range: reject total charges outside this inclusive ``(min, max)`` (the model's
            ``charge_range``); ``None`` accepts any.
        spin_range: reject spin multiplicities outside this inclusive range (``spin_range``).

    Returns:
        A :class:`MoleculeDataset` with ``.sizes`` and ``.path``.

    Example:
        >>> from transip.data import bundled_dataset
        >>> ds = read_dataset(bundled_dataset("ethanol_test"), index=":3")
        >>> len(ds), ds.sizes.tolist(), ds[0].charge, ds[0].spin
        (3, [9, 9, 9], 0, 1)
    """
    options = ReadOptions(
        energy_key=energy_key,
        forces_key=forces_key,
        charge_key=charge_key,
        spin_key=spin_key,
        validate=validate,
        max_atoms=max_atoms,
        allowed_numbers=None if allowed_numbers is None else tuple(sorted(int(z) for z in allowed_numbers)),
        min_distance=min_distance,
        charge_range=None if charge_range is None else tuple(charge_range),
        spin_range=None if spin_range is None else tuple(spin_range),
    )
    if isinstance(path, list | tuple):
        return ConcatMoleculeDataset([_read_one(Path(p), options, index) for p in path])
    return _read_one(Path(path), options, index)


def _read_one(path: Path, options: ReadOptions, index: Index) -> MoleculeDataset:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if _is_lmdb(path):
        dataset: MoleculeDataset = AseLmdbDataset(path, options)
    elif path.suffix == ".db":
        dataset = AseDbDataset(path, options)
    elif path.is_dir():
        raise ValueError(f"{path}: a directory must hold *.aselmdb files")
    else:
        return read_ase_file(path, options, index)
    sel = resolve_index(index, len(dataset))
    return dataset if sel is None else subset(dataset, sel)
