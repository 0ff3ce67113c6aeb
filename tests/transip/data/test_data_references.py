"""Element references: exact recovery of planted energies, behaviour on real data, serialisation."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import Batch, ElementReferences, Molecule, read_dataset

ELEMENTS = [1, 6, 7, 8, 9, 16, 17]


def _molecules(compositions: list[dict[int, int]]) -> list[Molecule]:
    out = []
    for comp in compositions:
        numbers = [z for z, k in comp.items() for _ in range(k)]
        out.append(Molecule(np.zeros((len(numbers), 3)), numbers))
    return out


@settings(max_examples=40, deadline=None)
@given(
    planted=st.lists(st.floats(-3000, 0, allow_nan=False), min_size=len(ELEMENTS), max_size=len(ELEMENTS)),
    seed=st.integers(0, 2**16),
)
def test_fit_recovers_planted_energies_in_float64(planted, seed):
    rng = np.random.default_rng(seed)
    comps = [{z: 1 for z in ELEMENTS}]  # plus random molecules: full column rank with probability 1
    comps += [{z: int(rng.integers(0, 6)) for z in ELEMENTS} for _ in range(30)]
    comps += [{z: 1} for z in ELEMENTS]  # guarantees full rank whatever the random draws
    mols = _molecules(comps)
    truth = dict(zip(ELEMENTS, planted, strict=True))
    for m in mols:
        m.energy = float(sum(truth[int(z)] for z in m.numbers))
    refs, report = ElementReferences.fit(mols)
    np.testing.assert_allclose(refs.energies[ELEMENTS].numpy(), planted, rtol=0, atol=1e-9)
    assert report.elements == tuple(ELEMENTS) and report.rank == len(ELEMENTS)
    assert report.mae < 1e-9 and report.rmse < 1e-9 and report.n == len(mols)
    assert refs.energies.dtype == torch.float64
    absent = [z for z in range(119) if z not in ELEMENTS]
    assert torch.all(refs.energies[absent] == 0)


def test_total_matches_per_molecule_sum(g2_path):
    mols = list(read_dataset(g2_path))
    refs, _ = ElementReferences.fit(mols)
    batch = Batch.from_molecules(mols)
    total = refs.total(batch.numbers, batch.batch, batch.num_molecules)
    assert total.dtype == torch.float64 and total.shape == (len(mols),)
    expected = [refs.molecule_total(m) for m in mols]
    np.testing.assert_allclose(total.numpy(), expected, rtol=1e-14)


def test_fit_on_real_g2_data_explains_most_of_the_energy(g2_path):
    mols = list(read_dataset(g2_path))
    energies = np.array([m.energy for m in mols])
    refs, report = ElementReferences.fit(mols)
    assert report.elements == (1, 6, 8, 15)  # H C O P: the elements of the fixture's molecules
    # Residual spread is far below the raw spread of total energies (tens to hundreds of eV).
    assert report.rmse < 0.2 * energies.std()
    # Least squares: residuals are orthogonal to every composition column.
    counts = np.array([np.bincount(m.numbers, minlength=119) for m in mols], dtype=float)
    residual = energies - counts @ refs.energies.numpy()
    np.testing.assert_allclose(counts[:, list(report.elements)].T @ residual, 0, atol=1e-6)


def test_single_composition_is_rank_deficient_but_exact(ethanol_path):
    mols = list(read_dataset(ethanol_path))
    refs, report = ElementReferences.fit(mols)
    assert report.rank == 1 and report.elements == (1, 6, 8)
    # Only the composition total is determined; it equals the mean energy.
    mean = np.mean([m.energy for m in mols])
    np.testing.assert_allclose(refs.molecule_total(mols[0]), mean, rtol=1e-13)


def test_dict_round_trip_is_json_and_exact(g2_path):
    refs, _ = ElementReferences.fit(read_dataset(g2_path))
    back = ElementReferences.from_dict(json.loads(json.dumps(refs.to_dict())))
    assert back == refs
    assert torch.equal(back.energies, refs.energies)


def test_unlabelled_molecules_are_skipped():
    mols = _molecules([{1: 2}, {1: 1}])
    mols[0].energy = -2.0
    refs, report = ElementReferences.fit(mols)
    assert report.n == 1 and float(refs.energies[1]) == -1.0
