"""The ASE calculator: agreement with the model, charge/spin handling, NVE MD and BFGS relaxation.

The MD and relaxation tests use a tiny model trained for a few seconds on rMD17 ethanol frames (an
inline loop, so this file does not depend on ``transip.training``). A conservative model conserves
energy in NVE for any weights at a small enough time step; training only makes the surface
molecule-like, and the tests check that the dynamics actually moves energy between kinetic and
potential so conservation is not trivially true.
"""

import copy
import gzip
import io
import warnings
from functools import cache
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from transip.calculator import TransIPCalculator
from transip.checkpoint import save_checkpoint
from transip.data import Batch, Molecule, bundled_dataset
from transip.model import TransIP, TransIPConfig


@cache
def _ethanol_frames() -> tuple:
    """The bundled rMD17 ethanol training frames (decompressed once: ASE seeks through .gz slowly)."""
    with gzip.open(bundled_dataset("ethanol_train"), "rt") as f:
        return tuple(ase.io.read(io.StringIO(f.read()), ":", format="extxyz"))


G2_SMALL = str(Path(__file__).parent / "fixtures" / "g2_xtb_small.extxyz")


@cache
def _train_tiny(n_frames: int, steps: int) -> TransIP:
    """Fit a tiny TransIP to ethanol energies and forces with Adam (full batch)."""
    frames = _ethanol_frames()[:n_frames]
    mols = [
        Molecule(a.positions, a.numbers, energy=a.get_potential_energy(), forces=a.get_forces())
        for a in frames
    ]
    batch = Batch.from_molecules(mols)
    counts = np.stack([np.bincount(m.numbers, minlength=119) for m in mols]).astype(np.float64)
    refs = np.linalg.lstsq(counts, batch.energy.numpy(), rcond=None)[0]
    e_std = float((batch.energy - torch.from_numpy(counts @ refs)).std())
    f_std = float(batch.forces.std())
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny", dropout=0.0), element_references=torch.from_numpy(refs))
    model.set_energy_scale(1.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        out = model(batch, training=True)
        loss = ((out.energy - batch.energy) / e_std).square().mean()
        loss = loss + 10 * ((out.forces - batch.forces) / f_std).square().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained() -> TransIP:
    return _train_tiny(n_frames=16, steps=150)


def _ethanol(i: int = 0):
    return _ethanol_frames()[i].copy()


def _nve(model, dtype, dt_fs: float, steps: int, temperature: float = 300.0):
    atoms = _ethanol(3)
    atoms.calc = TransIPCalculator(model, dtype=dtype)
    # Maxwell-Boltzmann momenta: each component normal with variance m kT
    kt = units.kB * temperature
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses() * kt)[:, None])
    total, potential = [], []

    def record():
        potential.append(atoms.get_potential_energy())
        total.append(potential[-1] + atoms.get_kinetic_energy())

    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.attach(record, interval=1)
    dyn.run(steps)
    total, potential = np.array(total), np.array(potential)
    return np.abs(total - total[0]).max(), np.ptp(potential)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_calculator_matches_model(dtype):
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny"))
    # a charged open-shell GFN2-xTB frame (test fixture)
    atoms = next(a for a in ase.io.iread(G2_SMALL) if a.info["charge"] != 0 and a.info["spin"] != 1)
    assert (atoms.info["charge"], atoms.info["spin"]) != (0, 1)
    atoms.calc = TransIPCalculator(model, dtype=dtype)
    mol = Molecule(atoms.positions, atoms.numbers, charge=atoms.info["charge"], spin=atoms.info["spin"])
    out = model.to(dtype)(Batch.from_molecules([mol], dtype=dtype))
    assert atoms.get_potential_energy() == pytest.approx(float(out.energy[0]), abs=1e-9)
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.get_forces(), out.forces.numpy(), rtol=0, atol=1e-12)


def test_charge_and_spin_from_info_and_cache_invalidation():
    torch.manual_seed(0)
    atoms = molecule("CH4")
    atoms.calc = TransIPCalculator(TransIP(TransIPConfig.preset("tiny")), dtype=torch.float64)
    neutral = atoms.get_potential_energy()
    atoms.info["charge"], atoms.info["spin"] = 1, 2
    cation = atoms.get_potential_energy()
    assert abs(cation - neutral) > 1e-6
    del atoms.info["charge"], atoms.info["spin"]
    assert atoms.get_potential_energy() == pytest.approx(neutral, abs=1e-12)


def test_charge_and_spin_are_checked_as_the_readers_check_them():
    # the calculator reads charge and spin through the data path: no silent int(1.5) == 1
    from transip.data import DataError

    atoms = molecule("CH4")
    atoms.calc = TransIPCalculator(TransIP(TransIPConfig.preset("tiny")))
    atoms.info["charge"] = 1.5
    with pytest.raises(DataError, match="charge"):
        atoms.get_potential_energy()
    atoms.info["charge"], atoms.info["spin"] = 0, 0
    with pytest.raises(DataError, match="spin"):
        atoms.get_potential_energy()


def test_calculator_loads_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny"))
    path = save_checkpoint(tmp_path / "model.pt", model)
    a, b = _ethanol(), _ethanol()
    a.calc, b.calc = TransIPCalculator(model), TransIPCalculator(str(path))
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())


def test_nve_md_conserves_energy(trained):
    # 200 velocity-Verlet steps of 0.5 fs (100 fs) at 300 K, float64 calculator
    drift, swing = _nve(trained, torch.float64, dt_fs=0.5, steps=200)
    assert swing > 0.05  # eV: the potential energy really oscillates
    assert drift < 5e-3  # eV total for 9 atoms, i.e. < 0.56 meV/atom
    assert drift < 0.1 * swing


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nve_md_conserves_energy_long(dtype):
    # briefly trained, then 2000 steps of 0.25 fs (500 fs) at 300 K
    model = copy.deepcopy(_train_tiny(n_frames=50, steps=300))  # trained once for both dtypes
    drift, swing = _nve(model, dtype, dt_fs=0.25, steps=2000)
    assert swing > 0.05
    assert drift < 5e-3
    assert drift < 0.1 * swing


def test_bfgs_relaxation_converges(trained):
    atoms = _ethanol(7)
    atoms.calc = TransIPCalculator(trained, dtype=torch.float64)
    start_energy = atoms.get_potential_energy()
    start_fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()
    assert start_fmax > 0.1  # starts away from a minimum of the learned surface
    opt = BFGS(atoms, logfile=None)
    assert opt.run(fmax=0.01, steps=500)
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.01
    assert atoms.get_potential_energy() < start_energy


def test_warns_once_about_elements_the_model_was_not_trained_on():
    from ase import Atoms

    torch.manual_seed(0)
    refs = torch.zeros(119, dtype=torch.float64)
    refs[[1, 6, 8]] = torch.tensor([-13.6, -1029.8, -2041.3], dtype=torch.float64)
    atoms = Atoms("CHF", positions=[[0, 0, 0], [0, 0, 1.1], [0, 1.3, 0]])
    atoms.calc = TransIPCalculator(TransIP(TransIPConfig.preset("tiny"), element_references=refs))
    with pytest.warns(UserWarning, match="no reference energy for F"):
        atoms.get_potential_energy()
    atoms.positions[0, 0] += 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call does not warn again
        atoms.get_potential_energy()
        ok = molecule("CH4")
        ok.calc = TransIPCalculator(TransIP(TransIPConfig.preset("tiny"), element_references=refs))
        ok.get_potential_energy()
