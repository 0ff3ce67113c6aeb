"""``symmetry=`` where users meet it: the ASE calculator, evaluate/predict and the commands."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule

from latentequiv.groups import SO3
from transip.calculator import TransIPCalculator
from transip.checkpoint import save_checkpoint
from transip.cli import main
from transip.data import read_dataset
from transip.evaluation import evaluate, spearman, spread_ranking, write_predictions
from transip.model import TransIP, TransIPConfig

G2 = str(Path(__file__).parent / "fixtures" / "g2_xtb_small.extxyz")


def _model() -> TransIP:
    torch.manual_seed(0)
    return TransIP(TransIPConfig.preset("tiny", dropout=0.0)).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("sym") / "tiny.pt", _model())


def test_calculator_frames_mode_is_invariant_and_reports_the_spread():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    atoms.calc = TransIPCalculator(_model(), dtype=torch.float64, symmetry="frames")
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    spread_e, spread_f = atoms.calc.results["energy_spread"], atoms.calc.get_property("force_spread")
    assert spread_e > 0 and spread_f.shape == (len(atoms),) and (spread_f > 0).all()
    r = SO3().sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0].numpy()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ r.T
    rotated.calc = TransIPCalculator(_model(), dtype=torch.float64, symmetry="frames")
    assert rotated.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(rotated.get_forces(), forces @ r.T, atol=1e-10)
    assert rotated.calc.results["energy_spread"] == pytest.approx(spread_e, abs=1e-10)


def test_calculator_default_is_the_plain_model_without_spread():
    atoms = molecule("H2O")
    atoms.calc = TransIPCalculator(_model(), dtype=torch.float64)
    atoms.get_potential_energy()
    assert "energy_spread" not in atoms.calc.results and "force_spread" not in atoms.calc.results


def test_calculator_seeded_rotations_repeat_and_random_mode_moves():
    def energies(symmetry, seed):
        atoms = molecule("H2O")
        atoms.calc = TransIPCalculator(_model(), dtype=torch.float64, symmetry=symmetry, seed=seed)
        out = []
        for _ in range(2):
            atoms.calc.reset()
            out.append(atoms.get_potential_energy())
        return out

    a, b = energies("random", 3), energies("random", 3)
    assert a == b and a[0] != a[1]  # same seed, same rotations; a fresh rotation per call
    assert energies("average:4", 3) == energies("average:4", 3)


def test_evaluate_reports_the_spread_ranking_and_predict_writes_the_spread(tmp_path):
    data = read_dataset(G2)
    plain = evaluate(_model(), data, dtype=torch.float64)
    report = evaluate(_model(), data, dtype=torch.float64, symmetry="average:4", keep_predictions=True)
    assert plain.uncertainty is None and "uncertainty" not in plain.as_dict()
    u = report.as_dict()["uncertainty"]
    assert report.as_dict()["symmetry"] == "average:4"
    assert u["n_structures"] == len(data) and u["n_atoms"] == int(data.sizes.sum())
    assert -1 <= u["energy_spearman"] <= 1 and -1 <= u["force_spearman_atoms"] <= 1
    assert report.overall.energy_mae != plain.overall.energy_mae
    p = report.predictions
    assert p.energy_spread.shape == (len(data),) and p.force_spread.shape == (int(data.sizes.sum()),)
    path = write_predictions(_model(), data, tmp_path / "p.extxyz", dtype=torch.float64, symmetry="average:4")
    frames = ase.io.read(path, ":")
    np.testing.assert_allclose([a.info["energy_spread"] for a in frames], p.energy_spread, rtol=1e-9)
    np.testing.assert_allclose(
        np.concatenate([a.arrays["force_spread"] for a in frames]), p.force_spread, atol=1e-7
    )  # extxyz writes per-atom columns with 8 decimals


def test_spearman_and_spread_ranking_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [1, 2]) is None
    # two structures of two atoms; per-structure force numbers are atom means
    r = spread_ranking(
        np.array([0.001, 0.002, 0.003]),
        np.array([0.3, 0.1, 0.2]),
        np.array([1.0, 3.0, 2.0, 2.0, 5.0, 5.0]),
        np.array([0.1, 0.3, 0.2, 0.2, 0.4, 0.6]),
        np.array([0, 0, 1, 1, 2, 2]),
    )
    assert r.energy_spearman == pytest.approx(-0.5)
    assert r.force_spearman_structures == pytest.approx(1.0)
    assert r.energy_spread_mean == pytest.approx(2.0) and r.force_spread_mean == pytest.approx(3000.0)


def test_commands_take_symmetry(checkpoint, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    args = ["evaluate", str(checkpoint), G2, "--symmetry", "frames", "--json", str(out_json)]
    assert main([*args, "--dtype", "float64"]) == 0
    assert "rotation spread vs error, Spearman" in capsys.readouterr().out
    result = json.loads(out_json.read_text())["results"][G2]
    assert result["symmetry"] == "frames" and result["uncertainty"]["n_structures"] > 0
    pred = tmp_path / "p.extxyz"
    assert (
        main(["predict", str(checkpoint), G2, "-o", str(pred), "--symmetry", "average:3", "--seed", "1"]) == 0
    )
    assert "force_spread" in ase.io.read(pred, 0).arrays
    traj = tmp_path / "md.extxyz"
    md = [
        "md",
        G2,
        str(checkpoint),
        "-o",
        str(traj),
        "--steps",
        "4",
        "--interval",
        "2",
        "--symmetry",
        "frames",
    ]
    assert main(md) == 0 and len(ase.io.read(traj, ":")) == 3


@pytest.mark.parametrize("bad", ["average", "average:0", "frame", "avg:4"])
def test_a_bad_symmetry_is_a_usage_error(checkpoint, bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(checkpoint), G2, "--symmetry", bad])
    assert e.value.code == 2 and "average:K" in capsys.readouterr().err
