"""Element references: exact recovery of planted energies, behaviour on real data, serialisation."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import Batch, ElementReferences, Molecule, MoleculeDataset, read_dataset

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


# --------------------------------------------------------------------------- the streaming fit
OMOL_ELEMENTS = np.array([1, 6, 7, 8, 9, 15, 16, 17, 26, 35, 53])


def _random_labelled(rng, m: int, elements, planted: np.ndarray, noise: float) -> list[Molecule]:
    out = []
    for _ in range(m):
        numbers = rng.choice(elements, int(rng.integers(1, 40)))
        energy = float(planted[numbers].sum() + noise * rng.normal())
        out.append(Molecule(np.zeros((len(numbers), 3)), numbers, energy=energy))
    return out


def _stacked_lstsq(mols: list[Molecule]) -> tuple[np.ndarray, int, np.ndarray]:
    """The dense reference: lstsq on the ``(M, 119)`` counts matrix, as the fit did before streaming."""
    counts = np.array([np.bincount(m.numbers, minlength=119) for m in mols], dtype=np.float64)
    energies = np.array([m.energy for m in mols])
    present = np.flatnonzero(counts.sum(0))
    solution, _, rank, _ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    full = np.zeros(119)
    full[present] = solution
    return full, int(rank), energies - counts @ full


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 90),
    chunk_size=st.sampled_from([1, 7, 32, 64, 1024]),
    noise=st.sampled_from([0.0, 1e-3, 1.0]),
)
def test_streaming_fit_equals_lstsq_on_the_stacked_matrix(seed, m, chunk_size, noise):
    """Random compositions of OMol-like size (totals up to ~1e6 eV), any number of rows per chunk.

    With fewer molecules than elements the problem is underdetermined: both give the minimum-norm
    solution.
    """
    rng = np.random.default_rng(seed)
    planted = np.zeros(119)
    planted[OMOL_ELEMENTS] = -rng.uniform(10.0, 2e5, len(OMOL_ELEMENTS))
    mols = _random_labelled(
        rng, m, OMOL_ELEMENTS[: int(rng.integers(1, len(OMOL_ELEMENTS) + 1))], planted, noise
    )
    full, rank, residual = _stacked_lstsq(mols)
    refs, report = ElementReferences.fit(mols, chunk_size=chunk_size)
    scale = max(abs(mol.energy) for mol in mols)
    np.testing.assert_allclose(refs.energies.numpy(), full, rtol=0, atol=1e-12 * scale)
    assert report.rank == rank and report.n == m
    assert report.elements == tuple(np.flatnonzero(np.bincount(np.concatenate([x.numbers for x in mols]))))
    np.testing.assert_allclose(report.mae, np.abs(residual).mean(), rtol=1e-6, atol=1e-12 * scale)
    np.testing.assert_allclose(report.rmse, np.sqrt((residual**2).mean()), rtol=1e-6, atol=1e-12 * scale)


@pytest.mark.parametrize("chunk_size", [1, 16, 31, 32, 33, 1024])
def test_chunk_boundaries_do_not_change_the_fit(chunk_size):
    """32 molecules: more, a multiple of, one more than, exactly, one fewer than, fewer than a chunk."""
    rng = np.random.default_rng(3)
    planted = np.zeros(119)
    planted[OMOL_ELEMENTS] = -rng.uniform(10.0, 2e5, len(OMOL_ELEMENTS))
    mols = _random_labelled(rng, 32, OMOL_ELEMENTS, planted, 0.5)
    full, rank, residual = _stacked_lstsq(mols)
    refs, report = ElementReferences.fit(mols, chunk_size=chunk_size)
    np.testing.assert_allclose(refs.energies.numpy(), full, rtol=0, atol=1e-8)
    assert report.rank == rank == len(OMOL_ELEMENTS)
    np.testing.assert_allclose(report.mae, np.abs(residual).mean(), rtol=1e-9)


def test_omol_sized_energies_are_recovered_to_sub_microvolt():
    """Planted references of heavy-element size, no noise: the totals (~1e6 eV) are exact sums."""
    rng = np.random.default_rng(11)
    planted = np.zeros(119)
    planted[OMOL_ELEMENTS] = -rng.uniform(1e3, 2e5, len(OMOL_ELEMENTS))
    mols = _random_labelled(rng, 3000, OMOL_ELEMENTS, planted, 0.0)
    refs, report = ElementReferences.fit(mols, chunk_size=256)
    assert max(abs(m.energy) for m in mols) > 1e6
    np.testing.assert_allclose(refs.energies.numpy(), planted, rtol=0, atol=1e-6)
    assert report.rmse < 1e-6 and report.mae < 1e-6


def test_proportional_compositions_give_the_minimum_norm_solution():
    """H2O and H4O2 only: rank 1 with two elements; lstsq's minimum-norm answer, residual exact."""
    mols = _molecules([{1: 2, 8: 1}] * 3 + [{1: 4, 8: 2}] * 2)
    for m, e in zip(mols, [-2080.0, -2080.2, -2079.8, -4160.1, -4159.9], strict=True):
        m.energy = e
    full, rank, residual = _stacked_lstsq(mols)
    refs, report = ElementReferences.fit(mols, chunk_size=2)
    assert report.rank == rank == 1 and report.elements == (1, 8)
    np.testing.assert_allclose(refs.energies.numpy(), full, rtol=0, atol=1e-10)
    # Minimum norm: the solution is parallel to the composition (2, 1).
    np.testing.assert_allclose(float(refs.energies[1]) / float(refs.energies[8]), 2.0, rtol=1e-12)
    np.testing.assert_allclose(report.rmse, np.sqrt((residual**2).mean()), rtol=1e-9)


def test_one_shot_iterator_is_read_once_and_reports_no_mae(g2_molecules):
    refs, report = ElementReferences.fit(g2_molecules)
    once, once_report = ElementReferences.fit(m for m in g2_molecules)
    np.testing.assert_allclose(once.energies.numpy(), refs.energies.numpy(), rtol=0, atol=1e-9)
    assert np.isnan(once_report.mae) and not np.isnan(report.mae)
    np.testing.assert_allclose(once_report.rmse, report.rmse, rtol=1e-9)
    assert (once_report.n, once_report.elements, once_report.rank) == (report.n, report.elements, report.rank)
    _, no_mae = ElementReferences.fit(g2_molecules, mae=False)
    assert np.isnan(no_mae.mae)
    with pytest.raises(ValueError, match="reads the molecules twice"):
        ElementReferences.fit((m for m in g2_molecules), mae=True)


def test_bad_energies_and_numbers_name_the_molecule():
    mols = _molecules([{1: 2}, {6: 1}, {8: 1}])
    for m in mols:
        m.energy = -1.0
    mols[2].energy = float("nan")
    with pytest.raises(ValueError, match="molecule 2: energy is nan"):
        ElementReferences.fit(mols)
    mols[2].energy = -1.0
    mols[1].numbers = np.array([6, 119])
    with pytest.raises(ValueError, match="molecule 1: atomic number 119 outside 1..118"):
        ElementReferences.fit(mols)
    with pytest.raises(ValueError, match="no molecule has an energy"):
        ElementReferences.fit(_molecules([{1: 1}]))


class _Compositions(MoleculeDataset):
    """Only ``(numbers, energy)`` pairs, as a lazy reader hands them to the fit."""

    def __init__(self, numbers: list[np.ndarray]) -> None:
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def _numbers_energy(self, index: int) -> tuple[np.ndarray, float | None]:
        z = self._numbers[index]
        return z, float(-100.0 * z.sum() + index % 7)


def test_fit_memory_does_not_grow_with_the_number_of_molecules():
    """Peak traced allocations for 300 and 3000 molecules, 64 per chunk: the dense fit would add ~5 MB."""
    rng = np.random.default_rng(0)
    numbers = [rng.integers(1, 60, int(rng.integers(1, 40))) for _ in range(3000)]
    peaks = []
    for n in (300, 3000):
        dataset = _Compositions(numbers[:n])
        tracemalloc.start()
        _, report = ElementReferences.fit(dataset, chunk_size=64)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.n == n
    assert peaks[1] - peaks[0] < 256 * 1024, peaks
