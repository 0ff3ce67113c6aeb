"""The latent objective beyond the paper (issue 10, item 4): the representation tau, the
low-rank hyper-linear tau, TransIP with the task on the rotated copy, and the consistency term.

Each option is checked against its definition, trains in a tiny ``transip train`` run, logs its
term and resumes bit for bit."""

import csv
import signal

import pytest
import torch

from latentequiv.representations import Irreps
from latentequiv.tau import HyperLinearTau, RepresentationTau
from transip.checkpoint import load_checkpoint
from transip.model import TransIP
from transip.training import ConfigError, build_tau, check_config, load_config, load_trained, train


def _rows(path, drop=("time", "cpu_time")):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _tau_of(*overrides, d_model=96):
    config = load_config(None, [f"--model.d_model={d_model}", *overrides])
    check_config(config)
    return build_tau(config.equivariance, d_model)


# -- the representation tau --------------------------------------------------------------------


def test_representation_tau_fills_the_width_with_l_0_1_2_in_a_learned_basis():
    tau = _tau_of("--equivariance.tau=representation")
    assert isinstance(tau, RepresentationTau) and tau.learn_basis
    assert tau.irreps == Irreps("36x0 + 10x1 + 6x2") and tau.dim == 96
    chosen = _tau_of("--equivariance.tau=representation", "--equivariance.tau_irreps=36x0+15x1+3x2")
    assert chosen.irreps == Irreps("36x0 + 15x1 + 3x2")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["--equivariance.tau=representation", "--equivariance.tau_irreps=8x0+8x1"], "dimension 32"),
        (["--equivariance.tau=representation", "--equivariance.tau_irreps=8y1"], "cannot parse"),
        (["--equivariance.tau_irreps=96x0"], "only read with equivariance.tau=representation"),
        (["--equivariance.tau=hyperlinear", "--equivariance.tau_rank=-1"], "tau_rank"),
    ],
)
def test_tau_combinations_that_make_no_sense_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        _tau_of(*overrides)


# -- the low-rank hyper-linear tau --------------------------------------------------------------


@pytest.mark.parametrize(("rank", "expected"), [(None, 8), (4, 4), (0, None)])
def test_hyperlinear_rank_is_tau_rank_and_zero_is_the_full_matrix(rank, expected):
    extra = [] if rank is None else [f"--equivariance.tau_rank={rank}"]
    tau = _tau_of("--equivariance.tau=hyperlinear", *extra, d_model=32)
    assert isinstance(tau, HyperLinearTau) and tau.rank == expected
    with torch.no_grad():  # move off the identity start, then look at rank(M(R) - I)
        for p in tau.parameters():
            p.add_(torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    g = torch.linalg.qr(torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(1)))[0]
    a = tau.matrix(g) - torch.eye(32)
    assert int(torch.linalg.matrix_rank(a[0])) == (32 if expected is None else expected)


# -- tiny runs: each option trains, logs its term and resumes exactly ------------------------------

OPTIONS = {
    "representation": ["--equivariance.tau=representation"],
    "lowrank": ["--equivariance.tau=hyperlinear", "--equivariance.tau_rank=4"],
}


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_trains_and_resumes_bit_for_bit(tmp_path, tiny, option):
    extra = [
        *OPTIONS[option],
        "--train.steps=6",
        "--data.max_atoms_per_batch=40",
        "--train.val_every=3",
        "--train.checkpoint_every=100",
    ]
    full = train(load_config(None, tiny(tmp_path / "a", *extra)), quiet=True)
    assert not full.interrupted and full.step == 6

    def interrupt(step):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    cut = train(load_config(None, tiny(tmp_path / "b", *extra)), quiet=True, on_step=interrupt)
    assert cut.interrupted and cut.step == 2
    resumed = train(
        load_config(tmp_path / "b" / "config.yaml"), run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert resumed.step == 6
    for name in ("last.pt", "best.pt"):
        a, b = (load_checkpoint(tmp_path / k / name) for k in "ab")
        assert _equal_states(a["state_dict"], b["state_dict"]), name
        assert _equal_states(a["extra"]["tau"], b["extra"]["tau"]), name
    rows = _rows(tmp_path / "a" / "train.csv")
    assert rows == _rows(tmp_path / "b" / "train.csv") and full.history == resumed.history
    assert all(r["loss_equivariance"] != "" for r in rows)
    _, tau, config = load_trained(tmp_path / "a" / "best.pt")
    trained = load_checkpoint(tmp_path / "a" / "best.pt")["extra"]["tau"]
    assert _equal_states(tau.state_dict(), trained)
    torch.manual_seed(config.train.seed)  # the run's start: the model, then tau, from the seed
    TransIP(config.model.config)
    start = build_tau(config.equivariance, config.model.config.d_model).state_dict()
    assert start.keys() == trained.keys() and not _equal_states(start, trained)  # tau was trained
