"""OMol25 metrics against an independent computation by hand in numpy."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.evaluation import (
    MetricAccumulator,
    Metrics,
    energy_mae,
    energy_per_atom_mae,
    force_cosine,
    force_mae,
)


def _hand(e_pred, e_true, sizes, f_pred, f_true):
    """The OMol25 definitions, written out with numpy loops."""
    de = [abs(p - t) for p, t in zip(e_pred, e_true, strict=True)]
    cos = []
    for a, b in zip(f_pred, f_true, strict=True):
        na, nb = np.sqrt((a**2).sum()), np.sqrt((b**2).sum())
        cos.append(float((a * b).sum() / (na * nb)) if na * nb > 0 else 0.0)
    return {
        "energy_mae": 1000 * sum(de) / len(de),
        "energy_per_atom_mae": 1000 * sum(d / n for d, n in zip(de, sizes, strict=True)) / len(de),
        "force_mae": 1000 * np.abs(f_pred - f_true).sum() / f_pred.size,
        "force_cosine": sum(cos) / len(cos),
        "energy_rmse": 1000 * np.sqrt(np.mean(np.square(de))),
        "energy_per_atom_rmse": 1000
        * np.sqrt(np.mean([(d / n) ** 2 for d, n in zip(de, sizes, strict=True)])),
        "force_rmse": 1000 * np.sqrt(np.mean((f_pred - f_true) ** 2)),
    }


def test_tiny_case_by_hand():
    # two molecules: 2 atoms and 1 atom
    e_pred, e_true = np.array([-10.0, -3.0]), np.array([-10.5, -2.9])
    sizes = np.array([2, 1])
    f_pred = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]])
    f_true = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    # |dE| = 0.5, 0.1 eV -> 300 meV; per atom 0.25, 0.1 -> 175 meV/atom
    # |dF| components: 0,1,0, 0,0,0, 0,0,2 -> 3/9 eV/Å -> 333.3 meV/Å
    # cosines: 1/sqrt(2), 1, -1 -> mean 0.2357
    acc = MetricAccumulator()
    acc.update(
        torch.from_numpy(sizes),
        torch.tensor([0, 0, 1]),
        energy_pred=torch.from_numpy(e_pred),
        energy_true=torch.from_numpy(e_true),
        forces_pred=torch.from_numpy(f_pred),
        forces_true=torch.from_numpy(f_true),
    )
    m = acc.compute()
    assert m.energy_mae == pytest.approx(300.0)
    assert m.energy_per_atom_mae == pytest.approx(175.0)
    assert m.force_mae == pytest.approx(1000 / 3)
    assert m.force_cosine == pytest.approx((1 / np.sqrt(2) + 1 - 1) / 3)
    # RMSE: sqrt((0.25 + 0.01) / 2) eV; per atom sqrt((0.0625 + 0.01) / 2); forces sqrt(5 / 9)
    assert m.energy_rmse == pytest.approx(1000 * np.sqrt(0.13))
    assert m.energy_per_atom_rmse == pytest.approx(1000 * np.sqrt(0.03625))
    assert m.force_rmse == pytest.approx(1000 * np.sqrt(5 / 9))
    assert (m.n_molecules, m.n_atoms) == (2, 3)
    hand = _hand(e_pred, e_true, sizes, f_pred, f_true)
    assert m.as_dict() == pytest.approx(Metrics(2, 3, **hand).as_dict())


def test_pure_functions_agree_with_the_accumulator():
    rng = np.random.default_rng(0)
    e_pred, e_true = rng.normal(size=4), rng.normal(size=4)
    f_pred, f_true = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    sizes = torch.tensor([1, 2, 3, 4])
    t = torch.from_numpy
    assert float(energy_mae(t(e_pred), t(e_true))) == pytest.approx(np.abs(e_pred - e_true).mean())
    assert float(energy_per_atom_mae(t(e_pred), t(e_true), sizes)) == pytest.approx(
        (np.abs(e_pred - e_true) / sizes.numpy()).mean()
    )
    assert float(force_mae(t(f_pred), t(f_true))) == pytest.approx(np.abs(f_pred - f_true).mean())
    assert float(force_cosine(t(f_pred), t(f_true)).mean()) == pytest.approx(
        _hand(e_pred, e_true, sizes.numpy(), f_pred, f_true)["force_cosine"]
    )


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
    cut=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_accumulating_over_any_batching_equals_the_hand_computation(sizes, cut, seed):
    rng = np.random.default_rng(seed)
    n, t = len(sizes), sum(sizes)
    e_pred, e_true = rng.normal(size=n) * 10, rng.normal(size=n) * 10
    f_pred, f_true = rng.normal(size=(t, 3)), rng.normal(size=(t, 3))
    cut = min(cut, n)
    acc = MetricAccumulator()
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    for lo, hi in ((0, cut), (cut, n)):
        if lo == hi:
            continue
        sz = torch.tensor(sizes[lo:hi])
        acc.update(
            sz,
            torch.repeat_interleave(torch.arange(hi - lo), sz),
            energy_pred=torch.from_numpy(e_pred[lo:hi]),
            energy_true=torch.from_numpy(e_true[lo:hi]),
            forces_pred=torch.from_numpy(f_pred[ptr[lo] : ptr[hi]]),
            forces_true=torch.from_numpy(f_true[ptr[lo] : ptr[hi]]),
            subsets=["even" if i % 2 == 0 else "odd" for i in range(lo, hi)],
        )
    m = acc.compute()
    for key, value in _hand(e_pred, e_true, sizes, f_pred, f_true).items():
        assert getattr(m, key) == pytest.approx(value, rel=1e-10, abs=1e-12)
    even = acc.compute_subsets()["even"]
    idx = list(range(0, n, 2))
    assert even.n_molecules == len(idx)
    assert even.energy_mae == pytest.approx(1000 * np.abs(e_pred[idx] - e_true[idx]).mean())


def test_missing_labels_give_none_and_zero_vectors_give_cosine_zero():
    acc = MetricAccumulator()
    acc.update(torch.tensor([2]), torch.tensor([0, 0]), energy_pred=torch.tensor([1.0]))
    m = acc.compute()
    assert m.energy_mae is None and m.force_mae is None and m.force_cosine is None
    assert (m.n_molecules, m.n_atoms) == (1, 2)
    assert MetricAccumulator().compute().energy_mae is None
    zero = torch.zeros(1, 3)
    assert float(force_cosine(zero, torch.ones(1, 3))) == 0.0
