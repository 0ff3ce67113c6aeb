"""A CPU-time budget stops a run and drives its schedule; the force unit is separate from the energy's."""

import csv
import math

import numpy as np
import pytest

from transip.data import Molecule
from transip.training import load_config, train
from transip.training._build import build_run
from transip.training._labels import force_rms
from transip.training._schedule import make_scheduler, warmup_cosine


def test_a_cpu_budget_stops_the_run_long_before_its_step_budget(tmp_path, tiny):
    run_dir = tmp_path / "run"
    overrides = tiny(run_dir, "--train.steps=100000", "--train.budget_seconds=0.5", "--train.val_every=50")
    result = train(load_config(None, overrides), quiet=True)
    assert not result.interrupted and 1 <= result.step < 100000
    with open(run_dir / "val.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # the last validation row is the final step, after at least the budget of training CPU time
    assert int(rows[-1]["step"]) == result.step
    assert float(rows[-1]["cpu_time"]) >= 0.5
    # the budget counts training steps only: one step's worth past it, not validation time
    assert float(rows[-1]["cpu_time"]) < 5.0


def test_the_schedule_follows_the_budget_when_it_runs_out_first():
    import torch

    used = {"fraction": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, 1000, warmup_fraction=0.1, progress=lambda: used["fraction"])
    used["fraction"] = 0.5  # half the time spent after one step: the schedule is at step 500
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(warmup_cosine(500, 1000, warmup_fraction=0.1))
    used["fraction"] = 1.0
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_force_rms_is_the_rms_of_the_components():
    rng = np.random.default_rng(0)
    mols = [
        Molecule(
            positions=rng.normal(size=(n, 3)), numbers=[1] * n, energy=0.0, forces=rng.normal(size=(n, 3))
        )
        for n in (2, 5, 3)
    ]
    expected = math.sqrt(np.mean(np.concatenate([m.forces for m in mols]) ** 2))
    assert force_rms(mols) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(force_rms([Molecule(positions=[[0, 0, 0]], numbers=[1], energy=0.0)]))


@pytest.mark.parametrize(("head", "force"), [("energy_rms", "energy_rms"), ("force_rms", "force_rms")])
def test_head_and_force_units_come_from_the_labels(tmp_path, tiny, head, force):
    config = load_config(
        None, tiny(tmp_path / "run", f"--loss.head_unit={head}", f"--loss.force_unit={force}")
    )
    import torch

    parts = build_run(config, device=torch.device("cpu"), dtype=torch.float32)
    fit = parts.fit
    assert math.isfinite(fit.force_rms) and fit.force_rms != pytest.approx(fit.energy_scale)
    expect_head = fit.energy_scale if head == "energy_rms" else fit.force_rms
    assert float(parts.objective.model.energy_scale) == pytest.approx(expect_head)
    assert parts.objective.term("energy").unit == pytest.approx(fit.energy_scale)
    expect_force = fit.energy_scale if force == "energy_rms" else fit.force_rms
    assert parts.objective.term("force").unit == pytest.approx(expect_force)
