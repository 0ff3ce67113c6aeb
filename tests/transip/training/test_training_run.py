"""End-to-end tiny runs: every mode, the files a run writes, exact resume, reproducibility."""

import csv
import importlib.util
import math
import signal

import pytest
import torch

from transip.checkpoint import load_checkpoint, load_model
from transip.training import load_config, load_trained, train


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def _equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rows(path, drop=("time", "cpu_time")):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        ("transip", ["--equivariance.target=node", "--equivariance.tau=mlp"]),
        (
            "transip",
            [
                "--equivariance.target=graph",
                "--equivariance.loss=contrastive",
                "--equivariance.tau=hyperlinear",
            ],
        ),
        ("transaug", []),
        ("none", ["--loss.energy=per_atom_mse", "--loss.force=squared"]),
    ],
)
def test_each_mode_trains_end_to_end(tmp_path, tiny, mode, extra):
    run_dir = tmp_path / "run"
    config = load_config(None, tiny(run_dir, f"--equivariance.mode={mode}", *extra))
    result = train(config, quiet=True)
    assert not result.interrupted and result.step == 6
    for name in ("config.yaml", "last.pt", "best.pt", "train.csv", "val.csv", "metrics.json"):
        assert (run_dir / name).is_file(), name
    assert [r["step"] for r in result.history] == [3, 6]
    val = result.final.val.overall
    assert val.n_molecules == 5 and math.isfinite(val.energy_mae) and math.isfinite(val.force_mae)
    assert -1.0 <= val.force_cosine <= 1.0
    train_rows = _rows(run_dir / "train.csv")
    assert [int(r["step"]) for r in train_rows] == [2, 4, 6]
    assert all(math.isfinite(float(r["loss"])) for r in train_rows)
    # the equivariance column is filled exactly in TransIP mode
    assert all((r["loss_equivariance"] != "") == (mode == "transip") for r in train_rows)
    # checkpoints: a loadable model, the tau-network and the run config alongside
    model, tau, saved = load_trained(run_dir / "best.pt")
    assert (tau is not None) == (mode == "transip")
    assert saved.equivariance.mode == mode
    assert load_model(run_dir / "last.pt").config.d_model == 32
    assert load_config(run_dir / "config.yaml") == saved


def test_resume_after_sigint_equals_an_uninterrupted_run(tmp_path, tiny):
    # TransIP mode with dropout, EMA and several epochs: every source of randomness is exercised
    extra = [
        "--train.steps=8",
        "--optim.ema_decay=0.9",
        "--data.max_atoms_per_batch=40",
        "--train.val_every=4",
        "--train.checkpoint_every=100",
    ]
    full = train(load_config(None, tiny(tmp_path / "a", *extra)), quiet=True)

    def interrupt(step):
        if step == 3:  # mid-epoch, between checkpoints
            signal.raise_signal(signal.SIGINT)

    cut = train(load_config(None, tiny(tmp_path / "b", *extra)), quiet=True, on_step=interrupt)
    assert cut.interrupted and cut.step == 3
    assert load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["step"] == 3
    resumed = train(
        load_config(tmp_path / "b" / "config.yaml"), run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert resumed.step == 8 and not resumed.interrupted
    for name in ("last.pt", "best.pt"):
        assert _equal_states(_weights(tmp_path / "a" / name), _weights(tmp_path / "b" / name)), name
    live_a = load_checkpoint(tmp_path / "a" / "last.pt")["extra"]["trainer"]["objective"]
    live_b = load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["trainer"]["objective"]
    assert _equal_states(live_a, live_b)
    assert full.history == resumed.history
    assert _rows(tmp_path / "a" / "train.csv") == _rows(tmp_path / "b" / "train.csv")
    assert full.final.val.overall == resumed.final.val.overall


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny):
    extra = ["--train.steps=2", "--train.val_every=2", "--eval.equivariance=false"]
    before = torch.get_num_threads()
    train(load_config(None, tiny(tmp_path / "a", *extra, "--train.threads=1")), quiet=True)
    assert torch.get_num_threads() == before  # the run's thread setting does not leak out
    train(load_config(None, tiny(tmp_path / "b", *extra)), quiet=True)
    train(load_config(None, tiny(tmp_path / "c", *extra, "--train.seed=1")), quiet=True)
    a, b, c = (_weights(tmp_path / k / "last.pt") for k in "abc")
    assert _equal_states(a, b)
    assert not _equal_states(a, c)


def test_training_lowers_the_loss(tmp_path, tiny):
    extra = [
        "--train.steps=40",
        "--train.log_every=10",
        "--train.val_every=40",
        "--optim.lr=3e-3",
        "--eval.equivariance=false",
        "--equivariance.mode=none",
    ]
    train(load_config(None, tiny(tmp_path / "run", *extra)), quiet=True)
    losses = [float(r["loss"]) for r in _rows(tmp_path / "run" / "train.csv")]
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0]


def test_resume_needs_a_checkpoint(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="no last.pt"):
        train(load_config(None, tiny(tmp_path / "empty")), run_dir=tmp_path / "empty", resume=True)


def test_figures_and_tensorboard_exactly_when_the_packages_are_installed(tmp_path, tiny):
    have_plots = importlib.util.find_spec("matplotlib") is not None
    have_tb = importlib.util.find_spec("tensorboard") is not None
    run_dir = tmp_path / "run"
    config = load_config(None, tiny(run_dir, "--logging.plots=true", "--logging.tensorboard=true"))
    result = train(config, quiet=True)
    names = {p.name for p in result.final.figures}
    expected = {"learning_curves.png", "parity_energy_val.png", "parity_forces_val.png"}
    assert names == (expected if have_plots else set())
    assert all((run_dir / n).stat().st_size > 0 for n in names)
    events = list((run_dir / "tensorboard").glob("events.out.tfevents*")) if have_tb else []
    assert (len(events) > 0) == have_tb
