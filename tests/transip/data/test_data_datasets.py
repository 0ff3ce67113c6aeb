"""Batch packing, subsets and splits, the dataset summary, and the bundled datasets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from transip.data import (
    BUNDLED_DATASETS,
    Batch,
    ConcatMoleculeDataset,
    InMemoryDataset,
    bundled_dataset,
    dataset_summary,
    read_dataset,
    split_dataset,
    subset,
)


def test_batch_packing_round_trip(g2_molecules):
    mols = g2_molecules[:7]
    batch = Batch.from_molecules(mols, dtype=torch.float64)
    assert batch.num_molecules == 7 and batch.num_atoms.tolist() == [len(m) for m in mols]
    assert batch.ptr[-1] == batch.positions.shape[0] == batch.batch.shape[0]
    assert batch.batch.tolist() == [b for b, m in enumerate(mols) for _ in range(len(m))]
    back = batch.to_molecules()
    for a, b in zip(mols, back, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.forces, b.forces)
        assert (a.energy, a.charge, a.spin, a.source) == (b.energy, b.charge, b.spin, b.source)


def test_batch_float32_keeps_energy_float64(g2_molecules):
    batch = Batch.from_molecules(g2_molecules[:3])
    assert batch.positions.dtype == torch.float32 and batch.energy.dtype == torch.float64
    assert batch.energy.tolist() == [m.energy for m in g2_molecules[:3]]
    for a, b in zip(g2_molecules[:3], batch.to_molecules(), strict=True):
        np.testing.assert_allclose(a.positions, b.positions, rtol=1e-6)


def test_subset_and_concat_views(g2_path):
    ds = read_dataset(g2_path)
    sub = subset(ds, [5, 2, 5])
    assert len(sub) == 3 and sub.sizes.tolist() == ds.sizes[[5, 2, 5]].tolist()
    assert sub[0].energy == ds[5].energy and sub[-1].energy == ds[5].energy
    with pytest.raises(IndexError):
        sub[3]
    with pytest.raises(IndexError):
        subset(ds, [20])
    both = ConcatMoleculeDataset([sub, ds])
    assert len(both) == 23 and both[3].energy == ds[0].energy and both.path == g2_path


@pytest.mark.parametrize("by", ["frame", "source"])
def test_split_is_disjoint_deterministic_and_complete(g2_path, by):
    ds = read_dataset(g2_path)
    parts = split_dataset(ds, [0.6, 0.2, 0.2], seed=3, by=by)
    again = split_dataset(ds, [0.6, 0.2, 0.2], seed=3, by=by)
    assert [p.indices.tolist() for p in parts] == [p.indices.tolist() for p in again]
    flat = np.concatenate([p.indices for p in parts])
    assert sorted(flat.tolist()) == list(range(len(ds)))
    if by == "frame":
        assert [len(p) for p in parts] == [12, 4, 4]
    else:
        sources = [set(p.sources()) for p in parts]
        assert all(sources[i].isdisjoint(sources[j]) for i in range(3) for j in range(i + 1, 3))
    other = split_dataset(ds, [0.6, 0.2, 0.2], seed=4, by=by)
    assert [p.indices.tolist() for p in other] != [p.indices.tolist() for p in parts]


def test_split_by_sizes_and_errors(g2_path):
    ds = read_dataset(g2_path)
    a, b = split_dataset(ds, [5, 3], seed=0)
    assert (len(a), len(b)) == (5, 3) and set(a.indices).isdisjoint(b.indices)
    with pytest.raises(ValueError):
        split_dataset(ds, [0.8, 0.5])
    with pytest.raises(ValueError):
        split_dataset(ds, [15, 15])
    with pytest.raises(ValueError):
        split_dataset(ds, [0.5, 0.5], by="element")


def test_dataset_summary_on_real_fixture(g2_path):
    ds = read_dataset(g2_path)
    s = dataset_summary(ds)
    mols = list(ds)
    assert s.n_molecules == 20 and s.n_atoms == sum(len(m) for m in mols)
    assert s.charges == {-1: 6, 0: 8, 1: 6}  # 3 runs per charge/spin state + 2 extra neutral frames
    assert s.spins == dict(Counter(m.spin for m in mols)) and set(s.spins) == {1, 2}
    assert sum(c for _, c in s.size_histogram) == 20
    assert s.size_min == min(len(m) for m in mols) and s.size_max == max(len(m) for m in mols)
    assert s.elements[1] == sum(int((m.numbers == 1).sum()) for m in mols)
    assert s.energy_min == min(m.energy for m in mols) and s.n_forces == 20
    assert s.force_abs_max == max(float(np.abs(m.forces).max()) for m in mols)
    text = s.format()
    assert "molecules        20" in text and "H:" in text


def test_summary_without_labels():
    from transip.data import Molecule

    s = dataset_summary(InMemoryDataset([Molecule(np.eye(3), [6, 1, 1])]))
    assert s.n_energy == 0 and np.isnan(s.energy_mean) and np.isnan(s.force_rms)


@pytest.mark.parametrize("name", BUNDLED_DATASETS)
def test_bundled_datasets_exist_and_are_small(name):
    path = bundled_dataset(name)
    assert path.is_file() and path.name == f"{name}.extxyz.gz"
    assert path.stat().st_size < 1_000_000


def test_bundled_ethanol_reads_with_labels():
    ds = read_dataset(bundled_dataset("ethanol_train"), index=":20")
    assert len(ds) == 20 and all(len(m) == 9 and m.forces.shape == (9, 3) for m in ds)
    assert all(m.energy is not None and m.charge == 0 and m.spin == 1 for m in ds)


def test_unknown_bundled_name():
    with pytest.raises(KeyError, match="available"):
        bundled_dataset("qm9")
