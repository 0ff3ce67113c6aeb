"""Every DataError case names the file, the row and the field, both directly and through readers."""

from __future__ import annotations

import pickle

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from transip.data import DataError, Molecule, read_dataset, validate_molecule


def _water(**changes) -> Molecule:
    pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    fields = dict(positions=pos, numbers=[8, 1, 1], energy=-2080.0, forces=np.zeros((3, 3)))
    fields.update(changes)
    return Molecule(**fields)


def _nan_at(shape, row):
    a = np.zeros(shape)
    a[row, 1] = np.nan
    return a


CASES = {
    "element_zero": (dict(numbers=[0, 1, 1]), {}, "numbers", "Z=0"),
    "element_too_large": (dict(numbers=[8, 1, 200]), {}, "numbers", "Z=200"),
    "element_not_allowed": (dict(numbers=[16, 1, 1]), dict(allowed_numbers={1, 6, 8}), "numbers", "Z=16"),
    "too_long": ({}, dict(max_atoms=2), "numbers", "max_atoms=2"),
    "nan_position": (
        dict(positions=np.array([[0.0, 0, 0], [0.96, 0, 0], [np.nan, 0.9, 0]])),
        {},
        "positions",
        "atom 2",
    ),
    "inf_energy": (dict(energy=np.inf), {}, "energy", "non-finite"),
    "nan_energy": (dict(energy=np.nan), {}, "energy", "non-finite"),
    "nan_force": (dict(forces=_nan_at((3, 3), 1)), {}, "forces", "atom 1"),
    "forces_shape": (dict(forces=np.zeros((2, 3))), {}, "forces", "(3, 3)"),
    "empty": (dict(positions=np.zeros((0, 3)), numbers=[], forces=None), {}, "numbers", "empty"),
    "positions_shape": (dict(positions=np.zeros((3, 2)), forces=None), {}, "positions", "(3, 3)"),
    "overlap": (
        dict(positions=np.array([[0.0, 0, 0], [0.05, 0, 0], [1.0, 0, 0]])),
        {},
        "positions",
        "atoms 0 and 1",
    ),
    "overlap_custom_threshold": ({}, dict(min_distance=1.0), "positions", "min_distance=1.0"),
    "spin_zero": (dict(spin=0), {}, "spin", ">= 1"),
    "charge_outside_range": (
        dict(charge=50),
        dict(charge_range=(-10, 10)),
        "charge",
        "charge_range [-10, 10]",
    ),
    "spin_outside_range": (dict(spin=12), dict(spin_range=(1, 11)), "spin", "spin_range [1, 11]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_molecule_names_where_and_field(case):
    changes, kwargs, field, detail = CASES[case]
    with pytest.raises(DataError) as err:
        validate_molecule(_water(**changes), where="set.extxyz[41]", **kwargs)
    message = str(err.value)
    assert message.startswith(f"set.extxyz[41]: {field}: "), message
    assert detail in message
    assert (err.value.where, err.value.field) == ("set.extxyz[41]", field)


def test_valid_molecule_passes_and_checks_can_be_disabled():
    mol = _water()
    assert validate_molecule(mol, where="x", max_atoms=3, allowed_numbers=[1, 8]) is mol
    close = _water(positions=np.array([[0.0, 0, 0], [0.05, 0, 0], [1.0, 0, 0]]))
    assert validate_molecule(close, where="x", min_distance=None) is close


def test_data_error_survives_pickling():
    err = pickle.loads(pickle.dumps(DataError("f.xyz[3]", "forces", "bad")))
    assert isinstance(err, ValueError) and str(err) == "f.xyz[3]: forces: bad" and err.field == "forces"


def _write(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return path


def _frame(positions, numbers, energy=-1.0, forces=None, **info):
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.info.update(info)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def test_reader_reports_file_and_frame_of_bad_data(tmp_path, g2_path):
    frames = ase.io.read(g2_path, ":5")
    bad = frames[3].copy()
    bad.calc = SinglePointCalculator(bad, energy=float("nan"), forces=frames[3].get_forces())
    frames[3] = bad
    path = _write(tmp_path / "broken.extxyz", frames)
    with pytest.raises(DataError) as err:
        read_dataset(path)
    assert str(err.value).startswith(f"{path}[3]: energy: ")
    # Frames outside `index` are not checked; `validate=False` reads everything.
    assert len(read_dataset(path, index=":3")) == 3
    assert np.isnan(read_dataset(path, validate=False)[3].energy)


def test_reader_rejects_unsupported_element_and_long_molecules(tmp_path):
    ok = _frame([[0, 0, 0], [0.74, 0, 0]], [1, 1])
    ghost = _frame([[0, 0, 0], [0.74, 0, 0]], [0, 1])  # Z = 0 ("X" in ASE)
    path = _write(tmp_path / "ghost.extxyz", [ok, ok, ghost])
    with pytest.raises(DataError, match=r"ghost.extxyz\[2\]: numbers: unsupported element Z=0"):
        read_dataset(path)
    path = _write(tmp_path / "h2.extxyz", [ok])
    with pytest.raises(DataError, match=r"h2.extxyz\[0\]: numbers: 2 atoms exceed max_atoms=1"):
        read_dataset(path, max_atoms=1)
    with pytest.raises(DataError, match=r"h2.extxyz\[0\]: numbers: element Z=1"):
        read_dataset(path, allowed_numbers=[6, 8])


def test_readers_reject_charge_and_spin_outside_the_given_ranges(tmp_path, g2_path):
    frames = ase.io.read(g2_path, ":6")
    frames[2].info["charge"], frames[4].info["spin"] = -3, 5
    path = _write(tmp_path / "ions.extxyz", frames)
    assert len(read_dataset(path)) == 6  # no ranges given: any charge and spin
    assert len(read_dataset(path, charge_range=(-3, 3), spin_range=(1, 5))) == 6  # inclusive
    with pytest.raises(
        DataError, match=r"ions.extxyz\[2\]: charge: -3 is outside the model's charge_range \[-2, 2\]"
    ):
        read_dataset(path, charge_range=(-2, 2))
    with pytest.raises(
        DataError, match=r"ions.extxyz\[4\]: spin: 5 is outside the model's spin_range \[1, 4\]"
    ):
        read_dataset(path, spin_range=(1, 4))
    db = tmp_path / "ions.aselmdb"
    from transip.data import write_aselmdb

    write_aselmdb(db, read_dataset(path))
    with pytest.raises(DataError, match=r"ions.aselmdb\[4\]: spin: 5 is outside"):
        [m.spin for m in read_dataset(db, spin_range=(1, 4))]  # lazily, as each molecule is read


def test_reader_rejects_non_integer_spin(tmp_path):
    path = _write(tmp_path / "s.extxyz", [_frame([[0, 0, 0], [0.74, 0, 0]], [1, 1], spin=1.5)])
    with pytest.raises(DataError, match=r"s.extxyz\[0\]: spin: expected an integer"):
        read_dataset(path)


def test_reader_rejects_overlapping_atoms(tmp_path):
    path = _write(tmp_path / "o.extxyz", [_frame([[0, 0, 0], [0.01, 0, 0]], [1, 1])])
    with pytest.raises(DataError, match=r"o.extxyz\[0\]: positions: atoms 0 and 1"):
        read_dataset(path)
    assert len(read_dataset(path, min_distance=None)) == 1
