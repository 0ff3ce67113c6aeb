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
    args = ["--seeds", "0", "--steps", "2", "--train-size", "64", "--test-size", "64", "--out", str(tmp_path)]
    records = ex.main(args)
    methods = [r["method"] for r in records]
    assert methods == ["plain", "aug", "latent", "latent+aug", "latent+aug, FA at test", "wrapper"]
    assert records[-1]["invariance_rel"] < 1e-12 and records[0]["invariance_rel"] > 1e-3
    path = tmp_path / "records" / "wrapper-s0.json"
    saved = json.loads(path.read_text())
    saved[0]["acc_rotated"] = -1.0  # a rerun must read this back, not retrain
    path.write_text(json.dumps(saved))
    again = ex.main(args)
    assert [r["acc_rotated"] for r in again if r["method"] == "wrapper"] == [-1.0]
    assert "| wrapper | 1 |" in (tmp_path / "results.md").read_text()
