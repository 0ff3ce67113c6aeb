"""The calculator refuses what the model cannot take and warns about what it answers badly."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule

from transip import TransIPCalculator
from transip.data import DataError
from transip.model import TransIP, TransIPConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TransIP(TransIPConfig.preset("tiny", max_atoms=8))


def _water(model, **info):
    atoms = molecule("H2O")
    atoms.info.update(info)
    atoms.calc = TransIPCalculator(model)
    return atoms


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_positions_raise(model, bad):
    atoms = _water(model)
    atoms.positions[1, 2] = bad
    with pytest.raises(DataError, match="positions: non-finite"):
        atoms.get_potential_energy()


def test_two_atoms_at_one_place_raise(model):
    atoms = _water(model)
    atoms.positions[2] = atoms.positions[1]
    with pytest.raises(DataError, match="positions: atoms 1 and 2 are at the same place"):
        atoms.get_forces()


def test_a_close_contact_warns_once(model):
    atoms = _water(model)
    atoms.positions[2] = atoms.positions[1] + [0.01, 0, 0]
    with pytest.warns(UserWarning, match=r"atoms 1 and 2 are 0.01 Å apart \(< 0.1 Å\)"):
        assert np.isfinite(atoms.get_potential_energy())
    atoms.positions[2] += [0.001, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.get_potential_energy()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"charge": 0.5}, "charge: expected an integer, got 0.5"),
        ({"charge": 50}, r"charge: 50 is outside the model's charge_range \[-10, 10\]"),
        ({"spin": 40}, r"spin: 40 is outside the model's spin_range \[1, 11\]"),
    ],
)
def test_charge_and_spin_the_model_cannot_embed_raise(model, info, message):
    with pytest.raises(DataError, match=message):
        _water(model, **info).get_potential_energy()


def test_more_atoms_than_the_context_raise_naming_the_key(model):
    atoms = molecule("C6H6")
    atoms.calc = TransIPCalculator(model)
    with pytest.raises(DataError, match="12 atoms exceed the model's context, max_atoms=8"):
        atoms.get_potential_energy()


def test_spin_parity_against_the_electron_count_warns(model):
    with pytest.warns(UserWarning, match="spin multiplicity 2 with 10 electrons .* need an odd multiplicity"):
        _water(model, spin=2).get_potential_energy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _water(model, spin=3).get_potential_energy()  # a triplet water is unusual but consistent
        _water(model, charge=1, spin=2).get_potential_energy()  # the cation: 9 electrons, a doublet
