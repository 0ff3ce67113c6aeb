"""evaluate(), the symmetry report and the prediction writer on a real fixture with a tiny TransIP."""

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from latentequiv.groups import SO3
from latentequiv.probes import equivariance_error, invariance_error, latent_equivariance_error
from latentequiv.tau import MLPTau
from transip.data import Batch, read_dataset
from transip.evaluation import (
    equivariance_report,
    evaluate,
    format_equivariance,
    rotation_statistics,
    write_predictions,
)
from transip.model import TransIP, TransIPConfig
from transip.symmetry import rotate_batch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def dataset():
    return read_dataset(FIXTURES / "g2_xtb_small.extxyz", index=":8")


@pytest.fixture(scope="module")
def model(dataset):
    torch.manual_seed(0)
    m = TransIP(TransIPConfig.preset("tiny", d_model=32, n_layers=1, n_heads=2, num_rbf=8))
    m.set_element_references(torch.linspace(-5, 0, 119, dtype=torch.float64))
    return m.eval()


def test_evaluate_matches_per_molecule_predictions(model, dataset):
    report = evaluate(model, dataset, max_atoms=20, group_by="source", keep_predictions=True)
    e_err, e_atom, f_abs, cos, n_comp = [], [], 0.0, [], 0
    for mol in dataset:
        out = model(Batch.from_molecules([mol]))
        de = abs(float(out.energy[0]) - mol.energy)
        e_err.append(de)
        e_atom.append(de / len(mol))
        f = out.forces.double().numpy()
        f_abs += np.abs(f - mol.forces).sum()
        n_comp += f.size
        cos += list(
            (f * mol.forces).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(mol.forces, axis=1))
        )
    m = report.overall
    assert m.energy_mae == pytest.approx(1000 * np.mean(e_err), rel=1e-5)
    assert m.energy_per_atom_mae == pytest.approx(1000 * np.mean(e_atom), rel=1e-5)
    assert m.force_mae == pytest.approx(1000 * f_abs / n_comp, rel=1e-4)
    assert m.force_cosine == pytest.approx(np.mean(cos), abs=1e-5)
    assert set(report.subsets) == {mol.source for mol in dataset}
    assert sum(s.n_molecules for s in report.subsets.values()) == len(dataset)
    p = report.predictions
    assert p.energy.shape == (len(dataset),) and p.forces.shape == (int(dataset.sizes.sum()), 3)
    assert np.allclose(p.energy_true, [mol.energy for mol in dataset])
    expected_ref = [float(model.element_energies[torch.from_numpy(mol.numbers)].sum()) for mol in dataset]
    assert np.allclose(p.energy_reference, expected_ref)


def test_symmetry_report_of_a_non_equivariant_model_is_positive_and_matches_latentequiv_probes(
    model, dataset
):
    tau = MLPTau(32, hidden=16, identity_init=False).eval()
    report = equivariance_report(model, dataset, tau=tau, n_rotations=2, seed=3, max_atoms=1000)
    assert report.energy_abs_mean > 0 and report.force_abs_mean > 0 and report.latent_rel_mean > 0
    assert report.dtype == "float64" and report.n_molecules == len(dataset)
    assert "latent" in format_equivariance(report)

    # the same numbers from latentequiv's probes, with the rotate_batch action and the same rotations
    batch = Batch.from_molecules(list(dataset), dtype=torch.float64)
    m64, tau64 = model.double(), tau.double()
    try:
        act = lambda g, b: rotate_batch(b, g)  # noqa: E731
        latent = latent_equivariance_error(
            lambda b: m64.embed(b)[0].detach(),
            lambda g, z: tau64(g[batch.batch], z).detach(),
            batch,
            group=SO3(),
            input_action=act,
            n_samples=2,
            generator=torch.Generator().manual_seed(3),
            batch_size=batch.num_molecules,
        )
        energy = invariance_error(
            lambda b: m64(b, compute_forces=False).energy,
            batch,
            group=SO3(),
            input_action=act,
            n_samples=2,
            generator=torch.Generator().manual_seed(3),
            batch_size=batch.num_molecules,
        )
        forces = equivariance_error(
            lambda b: m64(b).forces,
            batch,
            group=SO3(),
            input_action=act,
            output_action=lambda g, f: torch.einsum("tij,tj->ti", g[batch.batch], f),
            n_samples=2,
            generator=torch.Generator().manual_seed(3),
            batch_size=batch.num_molecules,
        )
    finally:
        model.float(), tau.float()
    assert report.latent_abs_mean == pytest.approx(latent.abs_mean, rel=1e-9)
    assert report.latent_rel_mean == pytest.approx(latent.rel_mean, rel=1e-9)
    assert report.energy_abs_mean / 1000 == pytest.approx(energy.abs_mean, rel=1e-9)
    # per-atom vector norms (probe) vs the per-component mean (report): |v|/3 <= mean|v_k| <= |v|/sqrt(3)
    assert forces.abs_mean / 3 <= report.force_abs_mean / 1000 <= forces.abs_mean / np.sqrt(3)


class _Invariant(torch.nn.Module):
    """Exactly invariant stand-in: energy = sum of pair distances, embeddings = distance features."""

    def forward(self, batch, *, compute_forces=True, training=False):
        from types import SimpleNamespace

        pos = batch.positions.detach().requires_grad_(True)
        d = (pos[:, None] - pos[None]).norm(dim=-1)  # (T, T)
        same = batch.batch[:, None] == batch.batch[None]
        node = torch.stack([(d * same).sum(1), (d.pow(2) * same).sum(1)], -1)  # (T, 2)
        energy = torch.zeros(batch.num_molecules, dtype=pos.dtype).index_add(0, batch.batch, node[:, 0])
        forces = -torch.autograd.grad(energy.sum(), pos)[0] if compute_forces else None
        graph = torch.zeros(batch.num_molecules, 2, dtype=pos.dtype).index_add(0, batch.batch, node)
        return SimpleNamespace(
            energy=energy.detach(),
            forces=forces,
            node_embedding=node.detach(),
            graph_embedding=graph.detach(),
        )


def test_symmetry_statistics_vanish_for_an_exactly_invariant_model(dataset):
    batch = Batch.from_molecules(list(dataset), dtype=torch.float64)
    r = SO3().sample(batch.num_molecules, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for target in ("node", "graph"):
        s = rotation_statistics(_Invariant(), batch, r, target=target).to_dict()
        assert s["energy_abs_sum"] < 1e-10 and s["force_abs_sum"] < 1e-10 and s["latent_abs_sum"] < 1e-10
        assert s["n_molecules"] == batch.num_molecules


def test_prediction_writer_round_trip(model, dataset, tmp_path):
    path = write_predictions(model, dataset, tmp_path / "out" / "pred.extxyz", max_atoms=16)
    frames = ase.io.read(path, ":")
    report = evaluate(model, dataset, keep_predictions=True)
    assert len(frames) == len(dataset)
    offsets = np.concatenate([[0], np.cumsum(dataset.sizes)])
    for i, (atoms, mol) in enumerate(zip(frames, dataset, strict=True)):
        assert atoms.get_potential_energy() == pytest.approx(report.predictions.energy[i], abs=1e-6)
        np.testing.assert_allclose(
            atoms.get_forces(), report.predictions.forces[offsets[i] : offsets[i + 1]], atol=1e-6
        )
        assert atoms.info["ref_energy"] == pytest.approx(mol.energy)
        np.testing.assert_allclose(atoms.arrays["ref_forces"], mol.forces)
        assert (atoms.info["charge"], atoms.info["spin"], atoms.info["source"]) == (
            mol.charge,
            mol.spin,
            mol.source,
        )
        np.testing.assert_allclose(atoms.positions, mol.positions)
    # the written file reads back as a dataset whose labels are the predictions
    again = read_dataset(path)
    assert again[0].energy == pytest.approx(report.predictions.energy[0], abs=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["pred.extxyz"]  # no temporary left behind


def test_prediction_writer_leaves_an_existing_file_intact_on_failure(model, tmp_path):
    target = tmp_path / "pred.extxyz"
    target.write_text("previous\n")

    class Broken(torch.utils.data.Dataset):
        sizes = np.array([3])

        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_predictions(model, Broken(), target)
    assert target.read_text() == "previous\n"
