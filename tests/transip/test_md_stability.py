"""examples/md_stability.py: the bond-graph rule (stretch, new bond, rigid motion) and a short run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.data import covalent_radii

from transip.checkpoint import save_checkpoint
from transip.model import TransIP, TransIPConfig

G2_SMALL = str(Path(__file__).parent / "fixtures" / "g2_xtb_small.extxyz")


@pytest.fixture(scope="module")
def ex(load_example):
    return load_example("md_stability")


def _rcov(atoms, i, j) -> float:
    return covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_bond_graph_of_ethanol_is_its_eight_covalent_bonds(ex):
    atoms = molecule("CH3CH2OH")
    bonds = ex.bond_graph(atoms.positions, atoms.numbers)
    assert len(bonds) == 8 and (bonds[:, 0] < bonds[:, 1]).all()
    assert ex.bond_changes(atoms.positions, atoms.numbers, bonds) == {
        "max_ratio": pytest.approx(ex.distance_ratios(atoms.positions, atoms.numbers)[tuple(bonds.T)].max()),
        "broken": [],
        "formed": [],
    }


def test_a_stretched_bond_is_broken_only_beyond_the_break_factor(ex):
    atoms = molecule("H2O")  # O 0, H 1, H 2
    bonds = ex.bond_graph(atoms.positions, atoms.numbers)
    assert bonds.tolist() == [[0, 1], [0, 2]]
    for factor, broken in ((1.45, []), (1.55, [[0, 1]])):
        moved = atoms.positions.copy()
        unit = (moved[1] - moved[0]) / np.linalg.norm(moved[1] - moved[0])
        moved[1] = moved[0] + factor * _rcov(atoms, 0, 1) * unit
        changes = ex.bond_changes(moved, atoms.numbers, bonds)
        assert changes["broken"] == broken and changes["formed"] == []
        assert changes["max_ratio"] == pytest.approx(factor)


def test_a_new_bond_between_atoms_not_bonded_at_the_start_is_detected(ex):
    atoms = molecule("H2O")
    bonds = ex.bond_graph(atoms.positions, atoms.numbers)
    moved = atoms.positions.copy()
    middle = 0.5 * (moved[1] + moved[2])
    for k, sign in ((1, -1), (2, 1)):  # the two H 0.9 (r_H + r_H) apart, O-H lengths unchanged
        moved[k] = middle + sign * 0.45 * _rcov(atoms, 1, 2) * (moved[2] - moved[1]) / np.linalg.norm(
            moved[2] - moved[1]
        )
    changes = ex.bond_changes(moved, atoms.numbers, bonds)
    assert changes["formed"] == [[1, 2]] and changes["broken"] == []
    assert ex.graph_changes([atoms.positions, atoms.positions, moved], atoms.numbers)
    assert not ex.graph_changes([atoms.positions, atoms.positions], atoms.numbers)


def test_rigid_rotation_and_translation_change_nothing(ex):
    rng = np.random.default_rng(0)
    atoms = molecule("CH3CH2OH")
    bonds = ex.bond_graph(atoms.positions, atoms.numbers)
    before = ex.bond_changes(atoms.positions, atoms.numbers, bonds)
    for _ in range(10):
        moved = atoms.positions @ _random_rotation(rng).T + rng.normal(scale=10.0, size=3)
        np.testing.assert_array_equal(ex.bond_graph(moved, atoms.numbers), bonds)
        after = ex.bond_changes(moved, atoms.numbers, bonds)
        assert after["broken"] == after["formed"] == []
        assert after["max_ratio"] == pytest.approx(before["max_ratio"], rel=1e-12)


def test_select_starts_takes_the_first_frames_of_each_molecule_in_order(ex):
    keys = [("a", 0, 1), ("a", 0, 1), ("a", 1, 2), ("b", 0, 1), ("a", 0, 1), ("b", 0, 1)]
    assert ex.select_starts(keys, 1) == [0, 2, 3]
    assert ex.select_starts(keys, 2) == [0, 1, 2, 3, 5]


def test_short_run_writes_a_report_and_the_exit_code_follows_it(ex, tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", TransIP(TransIPConfig.preset("tiny")))
    out = tmp_path / "sub" / "report.json"
    argv = [str(checkpoint), "--data", G2_SMALL, "--max-molecules", "2", "--time", "10", "--json", str(out)]
    code = ex.main(argv)  # 20 steps of 0.5 fs
    report = json.loads(out.read_text())
    assert code == (0 if report["passed"] else 1)
    assert report["settings"]["steps"] == 20 and report["thresholds"] == {
        "bond_factor": 1.25,
        "break_factor": 1.5,
        "form_factor": 1.0,
        "drift_mev_per_atom": 1.0,
    }
    assert [(r["source"], r["charge"], r["spin"]) for r in report["molecules"]] == [
        ("PH3", 0, 1),
        ("PH3", 1, 2),
    ]
    for r in report["molecules"]:
        assert r["verdict"] in ex.VERDICTS and 0 < r["steps_run"] <= 20 and r["n_atoms"] == 4
        assert r["n_bonds"] == 3 and r["reference_frames"] >= 1 and isinstance(r["reference_reacts"], bool)
        assert r["max_bond_ratio"] > 0 and np.isfinite(r["max_drift_mev_per_atom"])
    assert report["summary"]["molecules"] == 2 and sum(report["summary"][v] for v in ex.VERDICTS) == 2
    table = capsys.readouterr().out
    assert table.count("PH3") == 2 and "verdict" in table
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, no leftovers


def test_bad_input_exits_with_2(ex, tmp_path):
    assert ex.main([str(tmp_path / "missing.pt"), "--data", G2_SMALL]) == 2
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", TransIP(TransIPConfig.preset("tiny")))
    assert ex.main([str(checkpoint), "--data", str(tmp_path / "missing.extxyz")]) == 2
    with pytest.raises(SystemExit) as e:
        ex.main([str(checkpoint), "--dt", "0"])
    assert e.value.code == 2


def test_shards_split_the_starts_and_keep_each_start_s_result(ex, tmp_path):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", TransIP(TransIPConfig.preset("tiny")))
    base = [str(checkpoint), "--data", G2_SMALL, "--max-molecules", "3", "--time", "2"]
    reports = {}
    for shard in ("0/1", "0/2", "1/2"):
        out = tmp_path / f"{shard.replace('/', '-')}.json"
        ex.main([*base, "--shard", shard, "--json", str(out)])
        reports[shard] = {r["index"]: r for r in json.loads(out.read_text())["molecules"]}
    whole, first, second = reports["0/1"], reports["0/2"], reports["1/2"]
    assert len(first) == 2 and len(second) == 1 and {**first, **second}.keys() == whole.keys()
    for index, r in {**first, **second}.items():  # same velocities, same trajectory
        assert r["max_bond_ratio"] == whole[index]["max_bond_ratio"]
    with pytest.raises(SystemExit):
        ex.main([*base, "--shard", "2/2"])
