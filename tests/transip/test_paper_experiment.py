"""examples/paper_experiment.py: the quick run's outputs, resume, the rotated test copies, the ratio table."""

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
