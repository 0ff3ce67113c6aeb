"""The objective: energy and force terms by hand, and each mode against its definition."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from latentequiv.groups import SO3
from latentequiv.losses import contrastive_latent_loss, latent_equivariance_loss
from latentequiv.tau import MLPTau
from transip.data import Batch, read_dataset
from transip.model import TransIP, TransIPConfig
from transip.symmetry import rotate_batch
from transip.training import (
    EnergyTerm,
    ForceTerm,
    LatentTerm,
    TransIPObjective,
    compute_objective,
    energy_loss,
    force_loss,
    load_config,
    pad_tokens,
    train,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_energy_loss_by_hand():
    pred = torch.tensor([1.0, 2.0], dtype=torch.float64)
    true = torch.tensor([0.0, 4.0], dtype=torch.float64)
    n = torch.tensor([2, 4])
    # mse: ((1/2)^2 + (-2/2)^2) / 2 ; per atom: ((0.5/2)^2 + (-0.5/2)^2) / 2
    assert float(energy_loss(pred, true, n, 2.0, "mse")) == pytest.approx(0.625)
    assert float(energy_loss(pred, true, n, 2.0, "per_atom_mse")) == pytest.approx(0.0625)


def test_force_loss_by_hand():
    pred = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    true = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert float(force_loss(pred, true, 1.0, "l2")) == pytest.approx(2.5)  # mean(5, 0)
    assert float(force_loss(pred, true, 5.0, "l2")) == pytest.approx(0.5)
    assert float(force_loss(pred, true, 1.0, "squared")) == pytest.approx(12.5)  # mean(25, 0)


@pytest.fixture(scope="module")
def batch():
    return Batch.from_molecules(list(read_dataset(FIXTURES / "g2_xtb_small.extxyz", index=":6")))


@pytest.fixture
def model():
    torch.manual_seed(0)
    # eval(): no dropout, so separate forward passes can be compared exactly
    return TransIP(TransIPConfig.preset("tiny", d_model=32, n_layers=1, n_heads=2, num_rbf=8)).eval()


#: the default run's task weights
TASK = (EnergyTerm(5.0), ForceTerm(15.0))


def latent(weight=5.0, loss=latent_equivariance_loss, **options):
    return LatentTerm(weight, loss, **options)


def rotations(n, seed=0):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed))


def test_plain_mode_is_the_weighted_sum_of_energy_and_force_terms(model, batch):
    terms = compute_objective(model, batch, terms=[EnergyTerm(2.0), ForceTerm(3.0)])
    out = model(batch, training=True)
    l_e = energy_loss(out.energy, batch.energy, batch.num_atoms, model.energy_scale)
    l_f = force_loss(out.forces, batch.forces, model.energy_scale)
    assert set(terms.parts) == {"energy", "force"}
    torch.testing.assert_close(terms["energy"], l_e)
    torch.testing.assert_close(terms["force"], l_f)
    torch.testing.assert_close(terms.total, 2.0 * l_e + 3.0 * l_f)


def test_a_term_is_a_name_a_weight_and_a_function(model, batch):
    # the property: a new term joins the weighted sum and the named parts without touching the rest
    @dataclass(frozen=True)
    class MeanEnergy:
        weight: float
        name: str = "mean_energy"
        needs: frozenset = frozenset()
        task: bool = False

        def __call__(self, inputs):
            return inputs.output.energy.mean().float()

        def size(self, batch):
            return batch.num_molecules

    base = compute_objective(model, batch, terms=TASK)
    more = compute_objective(model, batch, terms=[*TASK, MeanEnergy(0.5)])
    torch.testing.assert_close(more["mean_energy"], model(batch).energy.mean().float())
    torch.testing.assert_close(more.total, base.total + 0.5 * more["mean_energy"])
    objective = TransIPObjective(model, [*TASK, MeanEnergy(0.5)])
    assert objective.logged_terms == ("energy", "force", "equivariance", "mean_energy")


def test_term_units_divide_the_errors(model, batch):
    out = model(batch, training=True)
    terms = compute_objective(model, batch, terms=[EnergyTerm(1.0, unit=2.0), ForceTerm(1.0, unit=0.5)])
    torch.testing.assert_close(terms["energy"], energy_loss(out.energy, batch.energy, batch.num_atoms, 2.0))
    torch.testing.assert_close(terms["force"], force_loss(out.forces, batch.forces, 0.5))


def test_a_zero_force_weight_skips_the_forces(model, batch):
    terms = compute_objective(model, batch, terms=[EnergyTerm(1.0), ForceTerm(0.0)])
    assert terms["force"] is None


def test_transaug_trains_on_the_rotated_batch(model, batch):
    r = rotations(batch.num_molecules)
    terms = compute_objective(model, batch, r, terms=TASK, augment=True)
    direct = compute_objective(model, rotate_batch(batch, r), terms=TASK)
    torch.testing.assert_close(terms.total, direct.total)
    assert not torch.allclose(terms.total, compute_objective(model, batch, terms=TASK).total)


def test_transip_latent_term_is_the_latentequiv_loss_on_node_embeddings(model, batch):
    tau = MLPTau(32, hidden=16, residual=True, identity_init=False)
    r = rotations(batch.num_molecules, seed=1)
    terms = compute_objective(model, batch, r, terms=[*TASK, latent(7.0)], tau=tau)
    z = model(batch, training=True).node_embedding
    z_rot, _ = model.embed(rotate_batch(batch, r))
    expected = latent_equivariance_loss(tau, z, z_rot, r[batch.batch])
    torch.testing.assert_close(terms["equivariance"], expected)
    plain = compute_objective(model, batch, terms=TASK)
    torch.testing.assert_close(terms.total, plain.total + 7.0 * expected)
    terms.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tau.parameters())


def test_graph_target_and_contrastive_padded_tokens(model, batch):
    tau = MLPTau(32, hidden=16)
    r = rotations(batch.num_molecules, seed=2)
    graph = compute_objective(model, batch, r, terms=[*TASK, latent(target="graph")], tau=tau)
    _, g_rot = model.embed(rotate_batch(batch, r))
    expected = latent_equivariance_loss(tau, model(batch, training=True).graph_embedding, g_rot, r)
    torch.testing.assert_close(graph["equivariance"], expected)
    nce_term = latent(loss=contrastive_latent_loss, padded=True)
    nce = compute_objective(model, batch, r, terms=[*TASK, nce_term], tau=tau)
    assert torch.isfinite(nce["equivariance"]) and nce["equivariance"] > 0


def test_pad_tokens_places_every_atom(batch):
    z = torch.arange(batch.positions.shape[0], dtype=torch.float32)[:, None].expand(-1, 4)  # (T, 4)
    padded, mask = pad_tokens(z, batch)
    assert mask.sum(1).tolist() == batch.num_atoms.tolist()
    for b in range(batch.num_molecules):
        lo, hi = int(batch.ptr[b]), int(batch.ptr[b + 1])
        assert torch.equal(padded[b, : hi - lo], z[lo:hi])
        assert torch.equal(padded[b, hi - lo :], torch.zeros_like(padded[b, hi - lo :]))


def test_cat_puts_the_second_batch_after_the_first(model, batch):
    small = Batch.from_molecules(batch.to_molecules()[:2])
    joined = Batch.cat([batch, small])
    t, b = batch.positions.shape[0], batch.num_molecules
    assert joined.num_molecules == b + 2
    assert torch.equal(joined.positions[:t], batch.positions)
    assert torch.equal(joined.positions[t:], small.positions)
    assert joined.ptr.tolist() == batch.ptr.tolist() + (small.ptr[1:] + t).tolist()
    assert torch.equal(joined.batch[t:], small.batch + b)
    assert joined.sources == batch.sources + small.sources
    assert torch.equal(joined.energy, torch.cat([batch.energy, small.energy]))
    assert joined.host.offsets == tuple(joined.ptr.tolist())
    # molecules do not interact: each molecule's energy and forces are its own
    together, alone = model(joined), model(small)
    torch.testing.assert_close(together.energy[b:], alone.energy)
    torch.testing.assert_close(together.forces[t:], alone.forces, rtol=1e-4, atol=1e-5)


def _terms_and_gradients(objective: TransIPObjective, batch, r):
    params = [*objective.model.parameters(), *objective.tau.parameters()]
    for p in params:
        p.grad = None
    terms = objective(batch, r)
    terms.total.backward()
    return terms.detach(), [p.grad.clone() for p in params]


@pytest.mark.parametrize(
    ("target", "loss", "padded"),
    [
        ("node", latent_equivariance_loss, False),
        ("node", contrastive_latent_loss, True),
        ("graph", latent_equivariance_loss, False),
    ],
    ids=["node-packed", "node-padded", "graph"],
)
def test_joint_pass_gives_the_separate_terms_and_gradients(model, batch, target, loss, padded):
    # the property: packing the rotated copies into the batch's own forward pass changes neither
    # the loss terms nor the gradient of any parameter of the model or tau (float32 rounding)
    model.set_energy_scale(50.0)  # keeps the energy term near 1, so all gradients are of one size
    tau = MLPTau(32, hidden=16, residual=True, identity_init=False)
    r = rotations(batch.num_molecules, seed=3)
    terms = [*TASK, latent(7.0, loss, target=target, padded=padded)]
    results = {
        layout: _terms_and_gradients(TransIPObjective(model, terms, tau=tau, latent_pass=layout), batch, r)
        for layout in ("separate", "joint")
    }
    (sep, sep_grads), (joint, joint_grads) = results["separate"], results["joint"]
    assert sep["equivariance"] > 1e-3  # a latent term that is there to get wrong
    torch.testing.assert_close(joint.total, sep.total, rtol=1e-5, atol=0.0)
    for name in ("energy", "force", "equivariance"):
        torch.testing.assert_close(joint[name], sep[name], rtol=1e-5, atol=0.0)
    assert len(joint_grads) == len(sep_grads)
    for g_joint, g_sep in zip(joint_grads, sep_grads, strict=True):
        scale = float(g_sep.abs().max())
        assert scale > 0
        torch.testing.assert_close(g_joint, g_sep, rtol=1e-4, atol=1e-5 * scale)


def test_tiny_training_run_with_the_joint_pass_follows_the_separate_one(tmp_path, tiny):
    # no dropout: the two layouts then see the same randomness, and the runs agree step by step
    extra = ["--model.dropout=0", "--eval.equivariance=false", "--train.log_every=1"]
    runs = {
        layout: train(
            load_config(None, tiny(tmp_path / layout, *extra, f"--equivariance.latent_pass={layout}")),
            quiet=True,
        )
        for layout in ("separate", "joint")
    }
    assert all(not r.interrupted and r.step == 6 for r in runs.values())
    rows = {layout: _train_rows(tmp_path / layout / "train.csv") for layout in runs}
    assert len(rows["joint"]) == 6
    for key in ("loss", "loss_energy", "loss_force", "loss_equivariance"):
        torch.testing.assert_close(
            torch.tensor([r[key] for r in rows["joint"]], dtype=torch.float64),
            torch.tensor([r[key] for r in rows["separate"]], dtype=torch.float64),
            rtol=1e-3,
            atol=0.0,
        )
    assert runs["joint"].final.val.overall.force_mae == pytest.approx(
        runs["separate"].final.val.overall.force_mae, rel=1e-3
    )


def _train_rows(path):
    import csv

    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if k.startswith("loss")} for r in csv.DictReader(f)]


def test_misuse_is_reported(model, batch):
    with pytest.raises(ValueError, match="one rotation per molecule"):
        compute_objective(model, batch, terms=TASK, augment=True)
    with pytest.raises(ValueError, match="needs a term that reads the rotated copy"):
        TransIPObjective(model, TASK, tau=MLPTau(32))
    with pytest.raises(ValueError, match="distinct names"):
        TransIPObjective(model, [EnergyTerm(1.0), EnergyTerm(2.0)])
    with pytest.raises(ValueError, match="unknown latent_pass 'both'"):
        compute_objective(model, batch, terms=TASK, latent_pass="both")
