"""Properties of the batch samplers: coverage, budget, determinism, disjoint equal-length ranks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import (
    AtomBudgetSampler,
    Batch,
    FixedCountSampler,
    InMemoryDataset,
    Molecule,
    make_loader,
    pack_by_atoms,
)

sizes_lists = st.lists(st.integers(1, 40), min_size=1, max_size=60)
settings_ = settings(max_examples=60, deadline=None)


def _flat(batches):
    return [i for b in batches for i in b]


@settings_
@given(sizes=sizes_lists, budget=st.integers(1, 80), seed=st.integers(0, 2**16), epoch=st.integers(0, 5))
def test_atom_budget_every_index_once_and_within_budget(sizes, budget, seed, epoch):
    sizes = np.array(sizes)
    sampler = AtomBudgetSampler(sizes, budget, seed=seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert sorted(_flat(batches)) == list(range(len(sizes)))
    assert len(sampler) == len(batches)
    for b in batches:
        total = int(sizes[b].sum())
        # Over budget only when a single molecule is itself larger than the budget.
        assert total <= budget or (len(b) == 1 and sizes[b[0]] > budget)


@settings_
@given(sizes=sizes_lists, budget=st.integers(1, 80))
def test_atom_budget_batches_are_greedy(sizes, budget):
    """No batch could have taken the next molecule of the order without exceeding the budget."""
    sizes = np.array(sizes)
    batches = list(AtomBudgetSampler(sizes, budget, shuffle=False))
    assert _flat(batches) == list(range(len(sizes)))
    for b, nxt in zip(batches[:-1], batches[1:], strict=True):
        assert sizes[b].sum() + sizes[nxt[0]] > budget


@settings_
@given(sizes=sizes_lists, budget=st.integers(1, 80), seed=st.integers(0, 1000))
def test_determinism_by_seed_and_epoch(sizes, budget, seed):
    a = AtomBudgetSampler(sizes, budget, seed=seed)
    b = AtomBudgetSampler(sizes, budget, seed=seed)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)


def test_epochs_and_seeds_change_the_order():
    sizes = np.arange(1, 101)
    s = AtomBudgetSampler(sizes, 60, seed=0)
    e0 = list(s)
    s.set_epoch(1)
    assert list(s) != e0
    assert list(AtomBudgetSampler(sizes, 60, seed=1)) != e0
    s.set_epoch(0)
    assert list(s) == e0


@settings_
@given(
    sizes=st.lists(st.integers(1, 30), min_size=4, max_size=60),
    budget=st.integers(1, 60),
    replicas=st.integers(1, 4),
    drop_last=st.booleans(),
    seed=st.integers(0, 100),
)
def test_atom_budget_ranks_disjoint_and_equal_length(sizes, budget, replicas, drop_last, seed):
    sizes = np.array(sizes)
    per_rank = [
        list(AtomBudgetSampler(sizes, budget, seed=seed, num_replicas=replicas, rank=r, drop_last=drop_last))
        for r in range(replicas)
    ]
    assert len({len(b) for b in per_rank}) == 1
    seen = [set(_flat(b)) for b in per_rank]
    for r in range(replicas):
        for q in range(r + 1, replicas):
            assert seen[r].isdisjoint(seen[q])
    if not drop_last:
        assert set().union(*seen) == set(range(len(sizes)))


@settings_
@given(
    n=st.integers(1, 80),
    batch_size=st.integers(1, 9),
    replicas=st.integers(1, 4),
    drop_last=st.booleans(),
    seed=st.integers(0, 100),
)
def test_fixed_count_properties(n, batch_size, replicas, drop_last, seed):
    if n < replicas and not drop_last:
        with pytest.raises(ValueError):
            FixedCountSampler(n, batch_size, num_replicas=replicas, rank=0)
        return
    per_rank = [
        list(FixedCountSampler(n, batch_size, seed=seed, drop_last=drop_last, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    assert len({len(b) for b in per_rank}) == 1
    for batches in per_rank:
        assert all(1 <= len(b) <= batch_size for b in batches)
        if drop_last:
            assert all(len(b) == batch_size for b in batches)
    seen = [set(_flat(b)) for b in per_rank]
    assert sum(len(s) for s in seen) == len(set().union(*seen))  # disjoint
    if not drop_last:
        assert set().union(*seen) == set(range(n))
    if replicas == 1 and not drop_last:
        assert Counter(_flat(per_rank[0])) == Counter(range(n))  # each exactly once


def test_padding_repeats_own_batches():
    # 5 molecules on 2 ranks, batch size 1: rank 0 gets 3, rank 1 gets 2 and repeats its first.
    r1 = list(FixedCountSampler(5, 1, shuffle=False, num_replicas=2, rank=1))
    assert r1 == [[1], [3], [1]]
    r1_cut = list(FixedCountSampler(5, 1, shuffle=False, num_replicas=2, rank=1, drop_last=True))
    assert r1_cut == [[1], [3]]


def test_pack_by_atoms_keeps_oversized_molecules_alone():
    assert pack_by_atoms([0, 1, 2], np.array([2, 50, 2]), 10) == [[0], [1], [2]]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        AtomBudgetSampler([1, 2], 0)
    with pytest.raises(ValueError):
        FixedCountSampler(4, 0)
    with pytest.raises(ValueError):
        FixedCountSampler(4, 2, num_replicas=2, rank=2)


def test_make_loader_packs_batches(g2_molecules):
    ds = InMemoryDataset(g2_molecules)
    sampler = AtomBudgetSampler(ds.sizes, 40, seed=0)
    batches = list(make_loader(ds, sampler, dtype=torch.float64))
    assert all(isinstance(b, Batch) for b in batches)
    assert sum(b.num_molecules for b in batches) == len(ds)
    assert all(int(b.num_atoms.sum()) <= 40 for b in batches)
    assert batches[0].positions.dtype == torch.float64 and batches[0].energy.dtype == torch.float64
    order = [i for b in sampler for i in b]
    got = torch.cat([b.energy for b in batches])
    assert got.tolist() == [g2_molecules[i].energy for i in order]


def test_molecule_used_in_loader_is_not_mutated():
    mols = [Molecule(np.eye(3) * (i + 1), [1, 1, 1], energy=float(i)) for i in range(4)]
    before = [m.positions.copy() for m in mols]
    for b in make_loader(InMemoryDataset(mols), FixedCountSampler(4, 3)):
        b.positions += 1.0
    assert all(np.array_equal(m.positions, p) for m, p in zip(mols, before, strict=True))
