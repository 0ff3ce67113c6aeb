"""Smoke test of examples/latent_recipe_pointcloud.py (a few steps; the full table is in recipe.md)."""

import json

import torch


def test_classes_share_their_per_axis_variances(load_example):
    ex = load_example("latent_recipe_pointcloud")
    x, y = ex.make_clouds(4000, torch.Generator().manual_seed(0))
    scales = torch.tensor(ex.AXIS_SCALES)
    for k in range(len(ex.CLASSES)):
        centred = x[y == k] - x[y == k].mean(dim=1, keepdim=True)
        std = centred.pow(2).mean(dim=(0, 1)).sqrt() / scales
        assert torch.allclose(std, std.mean().expand(3), rtol=0.1)  # the class is not in the covariance


def test_every_method_runs_writes_its_record_and_a_rerun_skips_it(tmp_path, load_example):
    ex = load_example("latent_recipe_pointcloud")
    sizes = ["--train-size", "64", "--test-size", "64", "--val-size", "32"]
    args = ["--seeds", "0", "--steps", "2", *sizes, "--out", str(tmp_path)]
    records = ex.main(args)
    methods = [r["method"] for r in records]
    assert methods == ["plain", "aug", "latent", "latent+aug", "latent+aug, FA at test", "wrapper"]
    assert records[-1]["invariance_rel"] < 1e-12 and records[0]["invariance_rel"] > 1e-3
    assert all(0 <= r["val_acc_rotated"] <= 1 for r in records)  # beside the test accuracy
    path = tmp_path / "records" / "wrapper-s0.json"
    saved = json.loads(path.read_text())
    saved[0]["acc_rotated"] = -1.0  # a rerun must read this back, not retrain
    path.write_text(json.dumps(saved))
    again = ex.main(args)
    assert [r["acc_rotated"] for r in again if r["method"] == "wrapper"] == [-1.0]
    assert "| wrapper | 1 |" in (tmp_path / "results.md").read_text()


def test_validation_clouds_are_drawn_apart_from_training_and_test_clouds(load_example):
    ex = load_example("latent_recipe_pointcloud")
    data = ex.splits(0, 64, 64, 64)
    val = data["val"][0]
    assert not torch.equal(val, data["test"][0]) and not torch.equal(val, data["train"][0])
    # the validation clouds do not depend on whether or how many test clouds are drawn
    assert torch.equal(ex.splits(0, 64, 32, 64, test=False)["val"][0], val)
    assert "test" not in ex.splits(0, 64, 32, 64, test=False)
    # the test clouds are the ones drawn before validation existed: Generator(seed), after training
    gen = torch.Generator().manual_seed(0)
    ex.make_clouds(64, gen)
    assert torch.equal(ex.make_clouds(64, gen)[0], data["test"][0])


def test_selection_scores_validation_only_and_records_every_grid_point(tmp_path, load_example, monkeypatch):
    ex = load_example("latent_recipe_pointcloud")
    drawn_tests = []
    splits = ex.splits

    def spy(*a, **k):
        drawn_tests.append(k.get("test", True))
        return splits(*a, **k)

    monkeypatch.setattr(ex, "splits", spy)
    args = ["--select", "--seeds", "0", "1", "--grid-weights", "1", "5", "--grid-steps", "2", "3"]
    records = ex.main(args + ["--train-size", "32", "--val-size", "32", "--out", str(tmp_path)])
    assert drawn_tests and not any(drawn_tests)  # the test clouds are never drawn
    assert len(records) == 2 * (2 * 2 + 2)  # seeds x (latent+aug weights x steps + aug steps)
    assert all("acc_rotated" not in r and 0 <= r["val_acc_rotated"] <= 1 for r in records)
    grid = {(r["method"], r["weight"], r["steps"]) for r in records}
    assert {("latent+aug", 5.0, 3), ("aug", 0.0, 2)} <= grid
    text = (tmp_path / "selection" / "results.md").read_text()
    assert "| latent+aug | 5 | 3 | 2 |" in text and "| aug | - | 2 | 2 |" in text
    assert not (tmp_path / "records").exists()  # the final table's records are not touched

    def score(key):  # summed validation accuracy of a latent+aug setting over the seeds
        return sum(
            r["val_acc_rotated"]
            for r in records
            if r["method"] == "latent+aug" and key == (r["weight"], r["steps"])
        )

    best = ex.chosen(records)
    assert score(best) == max(score(k) for k in [(w, n) for w in (1.0, 5.0) for n in (2, 3)])
    assert f"weight {best[0]:g}, {best[1]} steps." in text
