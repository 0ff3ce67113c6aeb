"""The latent objective beyond the paper (issue 10, item 4): the representation tau, the
low-rank hyper-linear tau, TransIP with the task on the rotated copy, and the consistency term.

Each option is checked against its definition, trains in a tiny ``transip train`` run, logs its
term and resumes bit for bit."""

import csv
import signal
from pathlib import Path

import pytest
import torch

from latentequiv.groups import SO3
from latentequiv.losses import latent_equivariance_loss
from latentequiv.representations import Irreps
from latentequiv.tau import HyperLinearTau, IdentityTau, MLPTau, RepresentationTau
from transip.checkpoint import load_checkpoint
from transip.data import Batch, read_dataset
from transip.model import TransIP, TransIPConfig, segment_pool
from transip.symmetry import rotate_batch
from transip.training import (
    ConfigError,
    ConsistencyTerm,
    EnergyTerm,
    ForceTerm,
    LatentTerm,
    TransIPObjective,
    build_tau,
    build_terms,
    check_config,
    compute_objective,
    energy_loss,
    force_loss,
    load_config,
    load_trained,
    train,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TASK = (EnergyTerm(5.0), ForceTerm(15.0))


@pytest.fixture(scope="module")
def batch():
    return Batch.from_molecules(list(read_dataset(FIXTURES / "g2_xtb_small.extxyz", index=":5")))


def _model(**options):
    torch.manual_seed(0)
    config = TransIPConfig.preset("tiny", d_model=32, n_layers=1, n_heads=2, num_rbf=8, **options)
    return TransIP(config).eval()  # no dropout: separate passes compare exactly


def _tau(seed=1):
    """An MLP tau moved off its identity start."""
    torch.manual_seed(seed)
    tau = MLPTau(32)
    with torch.no_grad():
        tau.mlp[-1].weight.normal_(0.0, 0.1)
    return tau


def _rotations(n, seed=0):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed))


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

# -- TransIP with the task on the rotated copy ---------------------------------------------------


def test_augment_task_measures_the_task_on_the_copy_and_the_latent_term_between_x_and_rx(batch):
    model, tau, R = _model(), _tau(), _rotations(batch.num_molecules)
    terms = [*TASK, LatentTerm(5.0, latent_equivariance_loss)]
    got = compute_objective(model, batch, R, terms=terms, tau=tau, augment=True)
    rotated = rotate_batch(batch, R)
    out = model(rotated, compute_forces=True, training=True)
    unit = model.energy_scale
    torch.testing.assert_close(got["energy"], energy_loss(out.energy, rotated.energy, batch.num_atoms, unit))
    torch.testing.assert_close(got["force"], force_loss(out.forces, rotated.forces, unit))
    z, _ = model.embed(batch)  # f(x), no forces
    latent = latent_equivariance_loss(tau, z, out.node_embedding, R[batch.batch])
    torch.testing.assert_close(got["equivariance"], latent)
    plain = compute_objective(model, batch, R, terms=terms, tau=tau)
    assert not torch.allclose(got["force"], plain["force"])  # the model is not equivariant yet
    torch.testing.assert_close(got["equivariance"], plain["equivariance"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("target", ["node", "graph"])
def test_augment_task_joint_pass_gives_the_separate_terms_and_gradients(batch, target):
    model, tau, R = _model(), _tau(), _rotations(batch.num_molecules, seed=3)
    objective = TransIPObjective(model, [*TASK, LatentTerm(5.0, latent_equivariance_loss, target)], tau, True)
    results = {}
    for layout in ("separate", "joint"):
        objective.latent_pass = layout
        objective.zero_grad()
        terms = objective(batch, R)
        terms.total.backward()
        grads = [p.grad.clone() for p in objective.parameters() if p.grad is not None]
        results[layout] = terms.detach(), grads
    (a, ga), (b, gb) = results["separate"], results["joint"]
    for name in ("energy", "force", "equivariance"):
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-5)


# -- the latent term on part of the batch ---------------------------------------------------------


@pytest.mark.parametrize("target", ["node", "graph"])
@pytest.mark.parametrize("latent_pass", ["separate", "joint"])
def test_latent_fraction_measures_the_latent_term_on_the_first_molecules_only(batch, target, latent_pass):
    model, tau, R = _model(), _tau(), _rotations(batch.num_molecules, seed=4)
    terms = [*TASK, LatentTerm(5.0, latent_equivariance_loss, target)]
    whole = compute_objective(model, batch, R, terms=terms, tau=tau, latent_pass=latent_pass)
    part = compute_objective(
        model, batch, R, terms=terms, tau=tau, latent_pass=latent_pass, latent_fraction=0.5
    )
    m = 3  # ceil(0.5 * 5)
    alone = compute_objective(model, batch.head(m), R[:m], terms=terms, tau=tau, latent_pass=latent_pass)
    torch.testing.assert_close(part["equivariance"], alone["equivariance"], rtol=1e-4, atol=1e-7)
    assert not torch.allclose(part["equivariance"], whole["equivariance"])
    for name in ("energy", "force"):  # the task terms still see the whole batch
        torch.testing.assert_close(part[name], whole[name], rtol=1e-5, atol=1e-7)
    tiny = compute_objective(model, batch, R, terms=terms, tau=tau, latent_fraction=1e-6)
    one = compute_objective(model, batch.head(1), R[:1], terms=terms, tau=tau)
    torch.testing.assert_close(tiny["equivariance"], one["equivariance"], rtol=1e-4, atol=1e-7)


def test_batch_head_is_the_batch_of_the_first_molecules(batch):
    molecules = batch.to_molecules()
    for m in (1, 3):
        got, want = batch.head(m), Batch.from_molecules(molecules[:m])
        for name in ("positions", "numbers", "ptr", "batch", "charge", "spin", "energy", "forces"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name))
        assert got.host is None and got.num_molecules == m
    assert batch.head(batch.num_molecules) is batch
    with pytest.raises(ValueError, match="at least one molecule"):
        batch.head(0)


# -- the consistency term --------------------------------------------------------------------------


def test_consistency_is_the_readout_of_tau_of_the_node_embeddings_by_hand(batch):
    model, tau, R = _model(), _tau(), _rotations(batch.num_molecules)
    got = compute_objective(model, batch, R, terms=[ConsistencyTerm(1.0, unit=2.0)], tau=tau)
    z = model(batch, compute_forces=False, training=True).node_embedding
    node = tau(R[batch.batch], z)
    raw = segment_pool(model.head(node), batch.batch, batch.num_molecules, "sum").double()
    refs = segment_pool(model.element_energies[batch.numbers], batch.batch, batch.num_molecules, "sum")
    energy = raw * model.energy_scale + refs
    expected = ((energy - batch.energy) / 2.0).pow(2).mean()
    torch.testing.assert_close(got["consistency"], expected)
    assert got.total == got["consistency"]


def test_consistency_with_the_identity_tau_is_the_energy_term(batch):
    model, R = _model(), _rotations(batch.num_molecules)
    for kind in ("mse", "per_atom_mse"):
        terms = [EnergyTerm(1.0, kind), ConsistencyTerm(1.0, kind)]
        got = compute_objective(model, batch, R, terms=terms, tau=IdentityTau())
        torch.testing.assert_close(got["consistency"], got["energy"])


def test_consistency_on_graph_embeddings_with_mean_pooling_reads_head_of_tau_of_the_mean(batch):
    model, tau, R = _model(pooling="mean"), _tau(), _rotations(batch.num_molecules)
    got = compute_objective(model, batch, R, terms=[ConsistencyTerm(1.0, target="graph")], tau=tau)
    graph = model(batch, compute_forces=False, training=True).graph_embedding
    energy = model.readout(None, tau(R, graph), batch)
    torch.testing.assert_close(
        got["consistency"], energy_loss(energy, batch.energy, batch.num_atoms, model.energy_scale)
    )
    # node target with mean pooling: head(mean_i tau(R, z_i)), not head(tau(R, mean_i z_i))
    node = compute_objective(model, batch, R, terms=[ConsistencyTerm(1.0)], tau=tau)
    assert not torch.allclose(node["consistency"], got["consistency"], rtol=1e-8, atol=0.0)


def test_consistency_alone_trains_the_head_tau_and_encoder(batch):
    model, tau, R = _model(), _tau(), _rotations(batch.num_molecules)
    got = compute_objective(model, batch, R, terms=[ConsistencyTerm(1.0)], tau=tau)
    got.total.backward()
    for name, module in (("head", model.head), ("tau", tau), ("encoder", model.blocks)):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    with pytest.raises(ValueError, match="apply tau"):
        compute_objective(model, batch, R, terms=[ConsistencyTerm(1.0)])


def test_consistency_shares_the_energy_terms_form_and_unit():
    config = load_config(None, ["--equivariance.consistency_weight=5", "--loss.energy=per_atom_mse"])
    check_config(config)
    terms = {t.name: t for t in build_terms(config)}
    cons = terms["consistency"]
    assert cons.weight == 5.0 and cons.kind == terms["energy"].kind == "per_atom_mse"
    assert cons.unit == terms["energy"].unit and cons.target == "node" and not cons.task
    default = {t.name for t in build_terms(load_config(None, []))}
    assert default == {"energy", "force", "equivariance"}  # off by default


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["--equivariance.mode=transaug", "--equivariance.augment_task=true"], "augment_task needs"),
        (["--equivariance.mode=none", "--equivariance.consistency_weight=1"], "needs equivariance.mode"),
        (["--equivariance.target=graph", "--equivariance.consistency_weight=1"], "pooling=mean"),
        (["--equivariance.consistency_weight=-1"], "0 \\(off\\) or positive"),
        (["--equivariance.latent_fraction=0"], "must be in \\(0, 1\\]"),
        (["--equivariance.latent_fraction=1.5"], "must be in \\(0, 1\\]"),
        (["--equivariance.mode=transaug", "--equivariance.latent_fraction=0.5"], "latent_fraction < 1 needs"),
        (["--equivariance.augment_task=true", "--equivariance.latent_fraction=0.5"], "without augment_task"),
    ],
)
def test_objective_combinations_that_make_no_sense_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(load_config(None, overrides))
    graph_mean = [
        "--equivariance.target=graph",
        "--equivariance.consistency_weight=1",
        "--model.pooling=mean",
    ]
    check_config(load_config(None, graph_mean))


OPTIONS = {
    "representation": ["--equivariance.tau=representation"],
    "lowrank": ["--equivariance.tau=hyperlinear", "--equivariance.tau_rank=4"],
    "augment_task": ["--equivariance.augment_task=true"],
    "consistency": ["--equivariance.consistency_weight=5"],
    "latent_fraction": ["--equivariance.latent_fraction=0.5"],
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
    assert all((r.get("loss_consistency", "") != "") == (option == "consistency") for r in rows)
    _, tau, config = load_trained(tmp_path / "a" / "best.pt")
    trained = load_checkpoint(tmp_path / "a" / "best.pt")["extra"]["tau"]
    assert _equal_states(tau.state_dict(), trained)
    torch.manual_seed(config.train.seed)  # the run's start: the model, then tau, from the seed
    TransIP(config.model.config)
    start = build_tau(config.equivariance, config.model.config.d_model).state_dict()
    assert start.keys() == trained.keys() and not _equal_states(start, trained)  # tau was trained
