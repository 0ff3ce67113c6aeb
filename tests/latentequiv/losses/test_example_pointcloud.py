"""Smoke test of examples/latent_equivariance_pointcloud.py (a few steps; the full run is documented)."""

import math

import torch


def test_dipole_target_and_input_action_are_equivariant(load_example):
    ex = load_example("latent_equivariance_pointcloud")
    gen = torch.Generator().manual_seed(0)
    clouds = ex.make_clouds(5, gen)
    from latentequiv import SO3

    g = SO3().sample(5, generator=gen)
    rotated = ex.rotate(g, clouds)
    torch.testing.assert_close(rotated[..., 3], clouds[..., 3])
    torch.testing.assert_close(ex.dipole(rotated), torch.einsum("bij,bj->bi", g, ex.dipole(clouds)))


def test_example_runs_all_three_modes_and_prints_the_table(capsys, load_example):
    ex = load_example("latent_equivariance_pointcloud")
    results = ex.main(
        ["--steps", "3", "--train-size", "16", "--test-size", "16", "--posthoc-steps", "5", "--seed", "1"]
    )
    assert [r.mode for r in results] == ["none", "augment", "latent"]
    for r in results:
        values = [r.test_mse, r.canonical_mse, r.equivariance_rel, r.latent_rel_posthoc]
        assert all(math.isfinite(v) and v >= 0 for v in values)
        assert len(r.curve) == 3
    assert results[2].latent_rel_own is not None and results[0].latent_rel_own is None
    out = capsys.readouterr().out
    assert "test MSE" in out and all(mode in out for mode in ("none", "augment", "latent"))
