"""examples/paper_experiment.py: the quick run's outputs, resume, the rotated test copies, the ratio table."""

import dataclasses
import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ex(load_example):
    return load_example("paper_experiment")


def test_quick_run_writes_one_finite_record_per_run_tables_and_figure_and_resumes(ex, tmp_path, capsys):
    out = tmp_path / "pe"
    assert ex.main(["--quick", "--out", str(out)]) == 0
    results = json.loads((out / "experiment_results.json").read_text())
    expected = [j.id for j in ex.jobs(ex.QUICK)]
    assert [r["id"] for r in results["runs"]] == expected
    assert sorted(p.stem for p in (out / "records").glob("*.json")) == sorted(expected)
    # both groups are there: every mode at every size, and the ablation variants not shared with scaling
    assert {(r["mode"], r["size"]) for r in results["runs"] if r["group"] == "scaling"} == {
        (m, n) for m in ex.MODES for n in ex.QUICK.sizes
    }
    assert {r["variant"] for r in results["runs"] if r["group"] == "ablation"} == set(ex.ABLATIONS) - {
        "node-mse-5"
    }
    for r in results["runs"]:
        assert r["steps"] == ex.QUICK.steps
        assert set(r["tests"]) == {"test"}
        for view in ("as_is", "rotated"):
            metrics = r["tests"]["test"][view]
            assert set(metrics) == {k for k, _, _ in ex.METRICS}
            assert all(math.isfinite(v) for v in metrics.values()), (r["id"], view, metrics)
            assert -1.0 <= metrics["force_cosine"] <= 1.0
        assert math.isfinite(r["symmetry"]["latent_rel_mean"])
        assert r["symmetry"]["latent_tau"] == ("MLPTau" if r["mode"] == "transip" else "identity (no tau)")
    graph = next(r for r in results["runs"] if r["variant"] == "graph-mse-5")
    assert graph["equivariance"]["target"] == "graph" and graph["symmetry"]["latent_target"] == "graph"

    tables = (out / "experiment_tables.md").read_text()
    for heading in (
        "error ratio, rotated",
        "error ratio, test structures as they are",
        "Data scaling",
        "Symmetry errors",
        "Ablations",
    ):
        assert heading in tables
    # one row per (size, mode) in each of the as-is and rotated scaling tables
    lines = tables.splitlines()
    assert sum(x.startswith("| 8 | transaug |") for x in lines) == 2
    assert sum(x.startswith("| 16 | none |") for x in lines) == 2
    assert "| graph, mse, λ=5 |" in tables and "| node, mse, λ=50 |" in tables
    assert (out / "experiment_latent_vs_accuracy.png").stat().st_size > 0

    # resume: every record exists, so nothing is trained again and the results are unchanged
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    capsys.readouterr()
    assert ex.main(["--quick", "--out", str(out)]) == 0
    assert "s, F MAE" not in capsys.readouterr().out  # no per-run progress line: no run happened
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "experiment_results.json").read_text())["runs"] == results["runs"]


def test_rotated_copy_turns_each_structure_rigidly_with_its_forces(ex):
    from transip.data import bundled_dataset, read_dataset

    ds = read_dataset(bundled_dataset("ethanol_test"), index=":6")
    rot = ex.rotated_copy(ds, seed=3)
    again = ex.rotated_copy(ds, seed=3)
    for a, b, c in zip(ds, rot, again, strict=True):
        np.testing.assert_array_equal(b.positions, c.positions)  # fixed rotations for every run
        assert not np.allclose(a.positions, b.positions)
        assert b.energy == a.energy and (b.numbers == a.numbers).all()
        da = np.linalg.norm(a.positions[:, None] - a.positions[None], axis=-1)
        db = np.linalg.norm(b.positions[:, None] - b.positions[None], axis=-1)
        np.testing.assert_allclose(db, da, atol=1e-10)
        # forces turn with the same rotation: their products with bond vectors are unchanged
        bonds_a = a.positions[:, None] - a.positions[None]
        bonds_b = b.positions[:, None] - b.positions[None]
        np.testing.assert_allclose(
            np.einsum("ijk,ik->ij", bonds_b, b.forces), np.einsum("ijk,ik->ij", bonds_a, a.forces), atol=1e-9
        )


def test_ratio_table_pairs_transip_with_transaug_by_seed(ex):
    def record(mode, seed, f_mae, cos):
        metrics = {"energy_mae": 10.0, "energy_per_atom_mae": 1.0, "force_mae": f_mae, "force_cosine": cos}
        return {
            "group": "scaling",
            "dataset": "ethanol",
            "mode": mode,
            "size": 50,
            "seed": seed,
            "tests": {"test": {"as_is": metrics, "rotated": metrics}},
        }

    records = [
        record("transip", 0, 100.0, 0.9),
        record("transaug", 0, 200.0, 0.8),
        record("transip", 1, 300.0, 0.7),
        record("transaug", 1, 300.0, 0.7),
        record("none", 0, 1.0, 0.99),  # never enters the ratio
    ]
    plan = ex.Plan(datasets=("ethanol",), sizes=(50,), seeds=(0, 1))
    row = ex.ratio_table(records, plan).splitlines()[2]
    # seeds: F MAE 0.5 and 1.0 -> mean 0.75, sample std 0.354; (1 - cos): 0.5 and 1.0 alike
    assert row == "| ethanol | test | 50 | 1.00 ± 0.00 | 1.00 ± 0.00 | 0.75 ± 0.35 | 0.75 ± 0.35 |"


def _fit_rotation(a, b):
    """The proper rotation R with (b - mean b) = (a - mean a) @ R.T, by the Kabsch method."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(b0.T @ a0)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def test_orient_random_turns_every_split_rigidly_with_forces_by_its_own_fixed_rotation(ex, tmp_path):
    from transip.data import read_dataset

    plan = dataclasses.replace(ex.QUICK, max_test=5, pool_size=6, val_size=4, orient="random")
    data = ex.prepare_oriented_data("ethanol", plan, tmp_path / "data")
    plain = {"pool": "ethanol_pool", "val": "ethanol_val", "test": "ethanol_test"}
    turned = {"pool": data["pool"], "val": data["val"], "test": data["tests"]["test"]}
    rotations = []
    for key, path in turned.items():
        a_set = read_dataset(tmp_path / "data" / "as_is" / f"{plain[key]}.extxyz")
        b_set = read_dataset(path)
        assert len(a_set) == len(b_set) > 0
        for a, b in zip(a_set, b_set, strict=True):
            assert b.energy == a.energy and (b.numbers == a.numbers).all()
            r = _fit_rotation(a.positions, b.positions)
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(r) > 0  # a rotation, not a reflection
            # the whole structure moves rigidly ...
            a0, b0 = a.positions - a.positions.mean(0), b.positions - b.positions.mean(0)
            np.testing.assert_allclose(b0, a0 @ r.T, atol=1e-7)
            # ... and its forces turn with the same rotation
            np.testing.assert_allclose(b.forces, a.forces @ r.T, atol=1e-7)
            rotations.append(r)
    # every structure has its own rotation, none is the identity
    flat = np.stack([r.ravel() for r in rotations])
    assert all(np.abs(r - np.eye(3)).max() > 1e-3 for r in rotations)
    gaps = np.abs(flat[:, None] - flat[None]).max(-1) + np.eye(len(flat))
    assert gaps.min() > 1e-3
    # fixed: preparing again elsewhere gives the same files
    again = ex.prepare_oriented_data("ethanol", plan, tmp_path / "again")
    assert again["pool"].read_text() == data["pool"].read_text()
    # the run key carries the orientation, so these runs never share a record with the main ones
    ids = {j.id for j in ex.jobs(plan)}
    assert all(i.endswith("-orient_random") for i in ids)
    assert ids.isdisjoint(j.id for j in ex.jobs(dataclasses.replace(plan, orient="as_is")))
