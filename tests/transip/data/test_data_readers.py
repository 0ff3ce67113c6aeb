"""Readers of ASE formats and the Molecule <-> Atoms converters, on real fixture data."""

from __future__ import annotations

import gzip
import shutil

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from hypothesis import given
from hypothesis import strategies as st

from transip.data import (
    ConcatMoleculeDataset,
    DataError,
    Molecule,
    molecule_from_atoms,
    molecule_to_atoms,
    read_dataset,
    resolve_index,
)


def test_extxyz_labels_match_ase(g2_path):
    frames = ase.io.read(g2_path, ":")
    ds = read_dataset(g2_path)
    assert len(ds) == len(frames) == 20
    for atoms, mol in zip(frames, ds, strict=True):
        np.testing.assert_array_equal(mol.positions, atoms.positions)
        np.testing.assert_array_equal(mol.numbers, atoms.numbers)
        assert mol.energy == atoms.get_potential_energy()
        np.testing.assert_array_equal(mol.forces, atoms.get_forces())
        assert mol.charge == atoms.info["charge"] and mol.spin == atoms.info["spin"]
        assert mol.source == atoms.info["source"]
        assert mol.positions.dtype == np.float64 and mol.numbers.dtype == np.int64


def test_charge_and_spin_states_preserved(g2_path):
    states = {(m.charge, m.spin) for m in read_dataset(g2_path)}
    assert states == {(0, 1), (0, 2), (1, 1), (1, 2), (-1, 1), (-1, 2)}


def test_gzip_reads_identically(g2_path, tmp_path):
    gz = tmp_path / "g2.extxyz.gz"
    with open(g2_path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain, packed = read_dataset(g2_path), read_dataset(gz)
    assert len(plain) == len(packed)
    for a, b in zip(plain, packed, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.energy == b.energy and a.charge == b.charge and a.source == b.source


def test_sizes_path_and_source_fallback(ethanol_path):
    ds = read_dataset(ethanol_path)
    assert ds.path == ethanol_path
    assert ds.sizes.tolist() == [9] * 10
    assert ds[0].source == ethanol_path.name  # no info["source"]: the file name
    assert ds[0].info["dataset"] == "ethanol/train"


def test_index_selects_frames(g2_path):
    full = read_dataset(g2_path)
    for index, expected in [("::5", [0, 5, 10, 15]), (-1, [19]), ([3, 1], [3, 1]), (slice(2, 4), [2, 3])]:
        part = read_dataset(g2_path, index=index)
        assert [m.energy for m in part] == [full[i].energy for i in expected]


def test_charge_spin_defaults_when_absent(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-31.5, forces=np.zeros((2, 3)))
    path = tmp_path / "h2.extxyz"
    ase.io.write(path, atoms)
    mol = read_dataset(path)[0]
    assert (mol.charge, mol.spin, mol.energy) == (0, 1, -31.5)


def test_custom_energy_and_forces_keys(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    atoms.info["REF_energy"] = -1.25
    atoms.info["q"] = -1
    atoms.info["mult"] = 2
    atoms.arrays["REF_forces"] = np.array([[0.1, 0, 0], [-0.1, 0, 0]])
    path = tmp_path / "h2.extxyz"
    ase.io.write(path, atoms)
    mol = read_dataset(
        path, energy_key="REF_energy", forces_key="REF_forces", charge_key="q", spin_key="mult"
    )[0]
    assert mol.energy == -1.25 and (mol.charge, mol.spin) == (-1, 2)
    np.testing.assert_allclose(mol.forces, atoms.arrays["REF_forces"])
    assert "REF_energy" not in mol.info and "q" not in mol.info
    # Default keys ignore these labels rather than guessing.
    plain = read_dataset(path)[0]
    assert plain.energy is None and plain.forces is None and plain.charge == 0


@pytest.mark.parametrize("bad", [0.5, "one", True])
def test_non_integer_charge_is_an_error(bad, tmp_path):
    atoms = Atoms("H", positions=[[0, 0, 0]])
    atoms.info["charge"] = bad
    with pytest.raises(DataError) as err:
        molecule_from_atoms(atoms, where="x.extxyz[4]")
    assert err.value.where == "x.extxyz[4]" and err.value.field == "charge"
    assert "x.extxyz[4]" in str(err.value) and "charge" in str(err.value)


def test_integral_float_charge_is_accepted():
    atoms = Atoms("H", positions=[[0, 0, 0]], info={"charge": 1.0, "spin": np.int64(2)})
    mol = molecule_from_atoms(atoms)
    assert (mol.charge, mol.spin) == (1, 2)


def test_atoms_round_trip_keeps_everything(spice_path):
    for atoms in ase.io.read(spice_path, ":"):
        mol = molecule_from_atoms(atoms, where="spice")
        back = molecule_to_atoms(mol)
        np.testing.assert_array_equal(back.positions, atoms.positions)
        np.testing.assert_array_equal(back.numbers, atoms.numbers)
        assert back.get_potential_energy() == atoms.get_potential_energy()
        np.testing.assert_array_equal(back.get_forces(), atoms.get_forces())
        assert back.info["charge"] == 1 and back.info["spin"] == 1
        assert back.info["source"] == str(atoms.info["source"])  # ASE parses "103147721" as an int
        again = molecule_from_atoms(back)
        assert (again.charge, again.spin, again.source, again.energy) == (
            mol.charge,
            mol.spin,
            mol.source,
            mol.energy,
        )


def test_periodic_cell_survives_round_trip():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=np.eye(3) * 5, pbc=[True, True, False])
    mol = molecule_from_atoms(atoms)
    np.testing.assert_array_equal(mol.cell, np.eye(3) * 5)
    back = molecule_to_atoms(mol)
    assert back.pbc.tolist() == [True, True, False]
    assert molecule_from_atoms(Atoms("H")).cell is None


def test_list_of_paths_is_concatenated(g2_path, spice_path):
    ds = read_dataset([g2_path, spice_path])
    assert isinstance(ds, ConcatMoleculeDataset) and len(ds) == 26
    assert ds.sizes.tolist() == read_dataset(g2_path).sizes.tolist() + read_dataset(spice_path).sizes.tolist()
    assert ds[20].numbers.tolist() == read_dataset(spice_path)[0].numbers.tolist()
    assert ds[-1].source == read_dataset(spice_path)[-1].source


def test_ase_sqlite_database(tmp_path, spice_path):
    import ase.db

    path = tmp_path / "spice.db"
    frames = ase.io.read(spice_path, ":")
    with ase.db.connect(path) as db:
        for atoms in frames:
            db.write(atoms, data={"charge": int(atoms.info["charge"]), "spin": 1, "source": "spice"})
    ds = read_dataset(path)
    assert len(ds) == 6 and ds.sizes.tolist() == [len(a) for a in frames]
    for atoms, mol in zip(frames, ds, strict=True):
        np.testing.assert_allclose(mol.positions, atoms.positions)
        assert mol.energy == pytest.approx(atoms.get_potential_energy(), abs=0, rel=1e-15)
        assert (mol.charge, mol.spin, mol.source) == (1, 1, "spice")


def test_missing_path_and_bad_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nope.extxyz")
    with pytest.raises(ValueError, match="aselmdb"):
        read_dataset(tmp_path)


def test_molecule_from_atoms_without_labels():
    mol = molecule_from_atoms(Atoms("CO", positions=[[0, 0, 0], [1.1, 0, 0]]), source="co")
    assert isinstance(mol, Molecule) and mol.energy is None and mol.forces is None and mol.source == "co"


def test_ase_database_dataset_pickles(tmp_path, ethanol_path):
    import pickle

    import ase.db

    path = tmp_path / "eth.db"
    with ase.db.connect(path) as db:
        for atoms in ase.io.read(ethanol_path, ":3"):
            db.write(atoms)
    ds = read_dataset(path)
    _ = ds[0]  # opens a connection, which must not travel with the pickle
    clone = pickle.loads(pickle.dumps(ds))
    assert [m.energy for m in clone] == [m.energy for m in ds]


@given(
    n=st.integers(0, 30),
    start=st.none() | st.integers(-35, 35),
    stop=st.none() | st.integers(-35, 35),
    step=st.none() | st.integers(1, 5),
)
def test_resolve_index_string_matches_python_slicing(n, start, stop, step):
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    assert resolve_index(text, n).tolist() == list(range(n))[slice(start, stop, step)]
