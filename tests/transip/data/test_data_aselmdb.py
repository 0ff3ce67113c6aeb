"""The ``.aselmdb`` (OMol25 / fairchem) reader and writer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from transip.data import (
    AseLmdbDataset,
    DataError,
    FixedCountSampler,
    Molecule,
    make_loader,
    read_dataset,
    write_aselmdb,
)
from transip.data import _aselmdb as fmt


def _assert_same(a: Molecule, b: Molecule) -> None:
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.numbers, b.numbers)
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.forces, b.forces)
    assert (a.charge, a.spin, a.source, a.data_id) == (b.charge, b.spin, b.source, b.data_id)


def _with_ids(mols: list[Molecule]) -> list[Molecule]:
    for i, m in enumerate(mols):
        m.data_id = ["orbnet_denali", "spice", "metal_complexes"][i % 3]
    return mols


def test_round_trip_is_exact(g2_molecules, tmp_path):
    mols = _with_ids(list(g2_molecules))
    path = tmp_path / "g2.aselmdb"
    sizes = write_aselmdb(path, mols)
    assert sizes.tolist() == [len(m) for m in mols]
    assert not (tmp_path / "g2.aselmdb-lock").exists()
    ds = read_dataset(path)
    assert isinstance(ds, AseLmdbDataset) and len(ds) == len(mols)
    assert ds.sizes.tolist() == sizes.tolist()
    for a, b in zip(mols, ds, strict=True):
        _assert_same(a, b)
        assert b.info["method"] == "GFN2-xTB"


def test_file_layout(g2_molecules, tmp_path):
    import lmdb

    path = tmp_path / "g2.aselmdb"
    write_aselmdb(path, g2_molecules[:3], metadata={"level": "GFN2-xTB"})
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        keys = sorted(k.decode() for k, _ in txn.cursor())
        row = fmt.decode_value(txn.get(b"2"))
        nextid = fmt.decode_value(txn.get(b"nextid"))
    env.close()
    assert keys == ["1", "2", "3", "metadata", "nextid"] and nextid == 4
    assert row["data"]["charge"] == g2_molecules[1].charge and row["data"]["spin"] == g2_molecules[1].spin
    assert row["calculator"] == "unknown" and row["energy"] == g2_molecules[1].energy
    assert isinstance(row["positions"], np.ndarray) and row["cell"].shape == (3, 3)
    assert AseLmdbDataset(path).metadata == {"level": "GFN2-xTB"}


def test_deleted_ids_are_skipped(g2_molecules, tmp_path):
    import lmdb

    path = tmp_path / "g2.aselmdb"
    write_aselmdb(path, g2_molecules[:4])
    env = lmdb.open(str(path), subdir=False, map_size=2**30)
    with env.begin(write=True) as txn:
        txn.delete(b"2")
        txn.put(b"deleted_ids", fmt.encode_value([2]))
    env.close()
    ds = read_dataset(path)
    assert len(ds) == 3
    assert [m.energy for m in ds] == [g2_molecules[i].energy for i in (0, 2, 3)]


def test_directory_with_metadata_sizes(g2_molecules, tmp_path):
    write_aselmdb(tmp_path / "b.aselmdb", g2_molecules[10:])
    write_aselmdb(tmp_path / "a.aselmdb", g2_molecules[:10])
    planted = np.arange(1, 21)  # deliberately not the true sizes: proves they come from the file
    np.savez(tmp_path / "metadata.npz", natoms=planted)
    ds = read_dataset(tmp_path)
    assert len(ds) == 20 and ds.sizes.tolist() == planted.tolist()
    assert [m.energy for m in ds] == [m.energy for m in g2_molecules]  # files in sorted order
    assert ds.files[0].name == "a.aselmdb"


def test_metadata_of_wrong_length_is_ignored(g2_molecules, tmp_path):
    write_aselmdb(tmp_path / "a.aselmdb", g2_molecules[:5])
    np.savez(tmp_path / "metadata.npz", natoms=np.arange(3))
    assert read_dataset(tmp_path).sizes.tolist() == [len(m) for m in g2_molecules[:5]]


def test_reads_are_lazy_and_sizes_cached(g2_molecules, tmp_path, monkeypatch):
    path = tmp_path / "g2.aselmdb"
    write_aselmdb(path, g2_molecules)
    calls = []
    real = fmt.decode_value
    monkeypatch.setattr(fmt, "decode_value", lambda raw: calls.append(1) or real(raw))
    ds = AseLmdbDataset(path)
    assert len(calls) == 1  # only "nextid" at construction
    calls.clear()
    mol = ds[7]
    assert len(calls) == 1 and mol.energy == g2_molecules[7].energy
    calls.clear()
    sizes = ds.sizes
    assert len(calls) == len(g2_molecules)
    calls.clear()
    assert ds.sizes is sizes and not calls


def test_index_and_errors_name_file_and_row(g2_molecules, tmp_path):
    bad = Molecule(np.zeros((2, 3)), [1, 1], energy=1.0)  # atoms on top of each other
    path = tmp_path / "bad.aselmdb"
    write_aselmdb(path, [g2_molecules[0], bad])
    ds = read_dataset(path)
    assert ds[0].energy == g2_molecules[0].energy
    with pytest.raises(DataError) as err:
        ds[1]
    assert f"{path}[1]" in str(err.value) and err.value.field == "positions"
    assert read_dataset(path, index=[0]).sizes.tolist() == [len(g2_molecules[0])]
    assert read_dataset(path, validate=False)[1].energy == 1.0


def test_writer_refuses_to_overwrite_and_rejects_unserialisable_info(g2_molecules, tmp_path):
    path = tmp_path / "x.aselmdb"
    write_aselmdb(path, g2_molecules[:1])
    with pytest.raises(FileExistsError):
        write_aselmdb(path, g2_molecules[:1])
    write_aselmdb(path, g2_molecules[:2], overwrite=True)
    assert len(read_dataset(path)) == 2
    odd = Molecule(np.eye(3), [1, 1, 1], info={"thing": object()})
    with pytest.raises(DataError, match=r"y.aselmdb\[0\]: info"):
        write_aselmdb(tmp_path / "y.aselmdb", [odd])


def test_pickles_without_open_handles_and_works_in_workers(g2_molecules, tmp_path):
    path = tmp_path / "g2.aselmdb"
    write_aselmdb(path, g2_molecules)
    ds = read_dataset(path)
    _ = ds[0]  # opens an environment in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone[3].energy == g2_molecules[3].energy
    loader = make_loader(ds, FixedCountSampler(len(ds), 8, shuffle=False), num_workers=2)
    energies = torch.cat([b.energy for b in loader])
    assert energies.tolist() == [m.energy for m in g2_molecules]


def test_cross_check_with_ase_db_backends(g2_molecules, tmp_path):
    """Our writer is readable by the reference implementation, and we read what it writes."""
    from ase_db_backends.aselmdb import LMDBDatabase

    from transip.data import molecule_from_atoms, molecule_to_atoms

    ours = tmp_path / "ours.aselmdb"
    mols = _with_ids(list(g2_molecules))
    write_aselmdb(ours, mols)
    db = LMDBDatabase(ours, readonly=True, use_lock_file=False)
    assert db.count() == len(mols)
    for i, mol in enumerate(mols):
        row = db._get_row_by_index(i)
        atoms = row.toatoms()
        atoms.info.update(row.data)  # what fairchem's AseDBDataset does
        _assert_same(mol, molecule_from_atoms(atoms))
    db.close()

    theirs = tmp_path / "theirs.aselmdb"
    db = LMDBDatabase(theirs)
    for mol in mols:
        atoms = molecule_to_atoms(mol)
        db.write(
            atoms, data={"charge": mol.charge, "spin": mol.spin, "source": mol.source, "data_id": mol.data_id}
        )
    db.close()
    for a, b in zip(mols, read_dataset(theirs), strict=True):
        _assert_same(a, b)


def test_numbers_and_energies_match_the_full_read(g2_molecules, tmp_path):
    """The light iteration returns what whole molecules hold, also through subsets and concatenation."""
    mols = list(g2_molecules)
    for i, m in enumerate(mols):
        m.info = {**m.info, "ref_energy": -float(i)}
    write_aselmdb(tmp_path / "a.aselmdb", mols[:12])
    write_aselmdb(tmp_path / "b.aselmdb", mols[12:])
    for kwargs in ({}, {"energy_key": "ref_energy"}):
        ds = read_dataset(tmp_path, **kwargs)
        pairs = list(ds.numbers_and_energies())
        assert len(pairs) == len(mols)
        for (numbers, energy), full in zip(pairs, ds, strict=True):
            assert numbers.dtype == np.int64 and np.array_equal(numbers, full.numbers)
            assert energy == full.energy
        assert pairs[5][1] == (-5.0 if kwargs else mols[5].energy)
        parts = read_dataset([tmp_path / "b.aselmdb", tmp_path / "a.aselmdb"], index="::3", **kwargs)
        expected = [(m.numbers, m.energy) for m in parts]
        got = list(parts.numbers_and_energies())
        assert [e for _, e in got] == [e for _, e in expected]
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(got, expected, strict=True))


def test_numbers_and_energies_check_elements_but_not_distances(g2_molecules, tmp_path):
    path = tmp_path / "x.aselmdb"
    close = Molecule(np.zeros((2, 3)), [1, 1], energy=1.0)  # rejected by the full read only
    write_aselmdb(path, [g2_molecules[0], close])
    assert [e for _, e in read_dataset(path).numbers_and_energies()] == [g2_molecules[0].energy, 1.0]
    ds = read_dataset(path, allowed_numbers=[1])
    with pytest.raises(DataError) as err:
        list(ds.numbers_and_energies())
    assert err.value.where == f"{path}[0]" and err.value.field == "numbers"


def test_reference_fit_on_aselmdb_equals_fit_on_the_molecules(g2_molecules, tmp_path):
    from transip.data import ElementReferences

    write_aselmdb(tmp_path / "g2.aselmdb", g2_molecules)
    refs, report = ElementReferences.fit(read_dataset(tmp_path))
    expected, expected_report = ElementReferences.fit(list(g2_molecules))
    assert refs == expected and report == expected_report
