"""The objective: energy and force terms by hand, and each mode against its definition."""

from pathlib import Path

import pytest
import torch

from latentequiv.groups import SO3
from latentequiv.losses import contrastive_latent_loss, latent_equivariance_loss
from latentequiv.tau import MLPTau
from transip.data import Batch, read_dataset
from transip.model import TransIP, TransIPConfig
from transip.symmetry import rotate_batch
from transip.training import TransIPObjective, compute_objective, energy_loss, force_loss
from transip.training._objective import pad_tokens

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


def rotations(n, seed=0):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed))


def test_plain_mode_is_the_weighted_sum_of_energy_and_force_terms(model, batch):
    terms = compute_objective(model, batch, energy_weight=2.0, force_weight=3.0)
    out = model(batch, training=True)
    l_e = energy_loss(out.energy, batch.energy, batch.num_atoms, model.energy_scale)
    l_f = force_loss(out.forces, batch.forces, model.energy_scale)
    assert terms.equivariance is None
    torch.testing.assert_close(terms.energy, l_e)
    torch.testing.assert_close(terms.force, l_f)
    torch.testing.assert_close(terms.total, 2.0 * l_e + 3.0 * l_f)


def test_transaug_trains_on_the_rotated_batch(model, batch):
    r = rotations(batch.num_molecules)
    terms = compute_objective(model, batch, r, augment=True)
    direct = compute_objective(model, rotate_batch(batch, r))
    torch.testing.assert_close(terms.total, direct.total)
    assert not torch.allclose(terms.total, compute_objective(model, batch).total)


def test_transip_latent_term_is_the_latentequiv_loss_on_node_embeddings(model, batch):
    tau = MLPTau(32, hidden=16, residual=True, identity_init=False)
    r = rotations(batch.num_molecules, seed=1)
    terms = compute_objective(
        model, batch, r, tau=tau, latent_loss=latent_equivariance_loss, equivariance_weight=7.0
    )
    z = model(batch, training=True).node_embedding
    z_rot, _ = model.embed(rotate_batch(batch, r))
    expected = latent_equivariance_loss(tau, z, z_rot, r[batch.batch])
    torch.testing.assert_close(terms.equivariance, expected)
    plain = compute_objective(model, batch)
    torch.testing.assert_close(terms.total, plain.total + 7.0 * expected)
    terms.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tau.parameters())


def test_graph_target_and_contrastive_padded_tokens(model, batch):
    tau = MLPTau(32, hidden=16)
    r = rotations(batch.num_molecules, seed=2)
    graph = compute_objective(model, batch, r, tau=tau, latent_loss=latent_equivariance_loss, target="graph")
    _, g_rot = model.embed(rotate_batch(batch, r))
    expected = latent_equivariance_loss(tau, model(batch, training=True).graph_embedding, g_rot, r)
    torch.testing.assert_close(graph.equivariance, expected)
    nce = compute_objective(model, batch, r, tau=tau, latent_loss=contrastive_latent_loss, padded_latent=True)
    assert torch.isfinite(nce.equivariance) and nce.equivariance > 0


def test_pad_tokens_places_every_atom(batch):
    z = torch.arange(batch.positions.shape[0], dtype=torch.float32)[:, None].expand(-1, 4)  # (T, 4)
    padded, mask = pad_tokens(z, batch)
    assert mask.sum(1).tolist() == batch.num_atoms.tolist()
    for b in range(batch.num_molecules):
        lo, hi = int(batch.ptr[b]), int(batch.ptr[b + 1])
        assert torch.equal(padded[b, : hi - lo], z[lo:hi])
        assert torch.equal(padded[b, hi - lo :], torch.zeros_like(padded[b, hi - lo :]))


def test_misuse_is_reported(model, batch):
    with pytest.raises(ValueError, match="one rotation per molecule"):
        compute_objective(model, batch, augment=True)
    with pytest.raises(ValueError, match="separate modes"):
        TransIPObjective(model, tau=MLPTau(32), latent_loss=latent_equivariance_loss, augment=True)
    with pytest.raises(ValueError, match="needs a latent loss"):
        TransIPObjective(model, tau=MLPTau(32))
