"""Exact properties of the TransIP backbone, in float64 on real molecules."""

import math
from dataclasses import replace
from functools import cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import Batch, Molecule, bundled_dataset, read_dataset
from transip.model import TransIP, TransIPConfig

G2 = bundled_dataset("g2_xtb")
F64 = torch.float64


@cache
def g2_molecules() -> tuple[Molecule, ...]:
    """One frame of each size 3..14 and of each charge/spin state from the bundled GFN2-xTB set."""
    # ASE's own reader seeks through a .gz file slowly (~30 s here); read_dataset decompresses once
    dataset = read_dataset(G2)
    first, state = {}, {}
    for i in range(len(dataset)):
        mol = dataset[i]
        first.setdefault(len(mol.numbers), i)
        state.setdefault((mol.charge, mol.spin), i)
    picks = [first[n] for n in sorted(first)] + [i for _, i in sorted(state.items())]
    return tuple(
        Molecule(m.positions, m.numbers, charge=m.charge, spin=m.spin) for m in (dataset[i] for i in picks)
    )


def _model(**overrides) -> TransIP:
    torch.manual_seed(0)
    return TransIP(TransIPConfig.preset("tiny", **overrides)).to(F64).eval()


def _batch(mols) -> Batch:
    return Batch.from_molecules(list(mols), dtype=F64)


def _big_molecule(n: int, seed: int) -> Molecule:
    """A random-but-physical-density blob of ``n`` C/H/O atoms (to exercise larger buckets)."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=F64) * (n ** (1 / 3))
    numbers = torch.tensor([1, 6, 8])[torch.randint(0, 3, (n,), generator=g)]
    return Molecule(pos.numpy(), numbers.numpy())


@settings(max_examples=15, deadline=None)
@given(shift=st.lists(st.floats(-100.0, 100.0), min_size=3, max_size=3))
def test_energy_translation_invariant_forces_unchanged(shift):
    model, batch = _model(), _batch(g2_molecules())
    out = model(batch)
    moved = model(replace(batch, positions=batch.positions + torch.tensor(shift, dtype=F64)))
    torch.testing.assert_close(moved.energy, out.energy, rtol=0, atol=1e-9)
    torch.testing.assert_close(moved.forces, out.forces, rtol=0, atol=1e-8)


def test_energy_permutation_invariant_forces_equivariant():
    model, mols = _model(), g2_molecules()
    batch = _batch(mols)
    g = torch.Generator().manual_seed(3)
    perm = torch.cat(
        [s + torch.randperm(len(m), generator=g) for s, m in zip(batch.ptr[:-1], mols, strict=True)]
    )
    permuted = replace(batch, positions=batch.positions[perm], numbers=batch.numbers[perm])
    out, out_p = model(batch), model(permuted)
    torch.testing.assert_close(out_p.energy, out.energy, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out_p.forces, out.forces[perm], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"num_rbf": 0},
        {"pooling": "mean"},
        {"neighbour_channels": 4},
        {"neighbour_channels": 4, "angular_channels": 5},
    ],
)
def test_forces_are_minus_energy_gradient_by_central_differences(overrides):
    model = _model(**overrides)
    mol = g2_molecules()[4]  # 7 atoms
    batch = _batch([mol])
    forces = model(batch).forces
    h = 1e-5
    fd = torch.zeros_like(batch.positions)
    for i in range(len(mol)):
        for a in range(3):
            step = torch.zeros_like(batch.positions)
            step[i, a] = h
            up = model(replace(batch, positions=batch.positions + step), compute_forces=False).energy
            down = model(replace(batch, positions=batch.positions - step), compute_forces=False).energy
            fd[i, a] = -(up - down).item() / (2 * h)
    torch.testing.assert_close(forces, fd, rtol=1e-6, atol=1e-7)


def test_charge_and_spin_change_the_energy_of_the_same_geometry():
    model, mol = _model(), g2_molecules()[2]
    states = [(0, 1), (1, 2), (-1, 2), (0, 3), (1, 1)]
    mols = [replace(mol, charge=q, spin=s) for q, s in states]
    energy = model(_batch(mols)).energy
    gaps = (energy[:, None] - energy[None, :]).abs() + torch.eye(len(states), dtype=F64)
    assert bool((gaps > 1e-6).all()), energy


@pytest.mark.parametrize(
    "layout", [{}, {"bucket_growth": 1.0, "bucket_slack": 0}, {"bucket_growth": math.inf}]
)
def test_batched_results_equal_per_molecule_results(layout):
    model = _model(**layout)
    mols = [*g2_molecules(), _big_molecule(40, 0), _big_molecule(90, 1)]
    out = model(_batch(mols))
    single = [model(_batch([m])) for m in mols]
    torch.testing.assert_close(out.energy, torch.cat([s.energy for s in single]), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.forces, torch.cat([s.forces for s in single]), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out.node_embedding, torch.cat([s.node_embedding for s in single]))
    torch.testing.assert_close(out.graph_embedding, torch.cat([s.graph_embedding for s in single]))


def test_embed_matches_forward_embeddings():
    model, batch = _model(), _batch(g2_molecules())
    node, graph = model.embed(batch)
    out = model(batch)
    torch.testing.assert_close(node, out.node_embedding)
    torch.testing.assert_close(graph, out.graph_embedding)
    assert node.shape == (batch.positions.shape[0], 64) and graph.shape == (batch.num_molecules, 64)


def test_training_keeps_graph_for_force_loss_and_inference_detaches():
    model = _model()
    model.train()
    batch = _batch(g2_molecules()[:5])
    out = model(batch, training=True)
    assert out.forces.requires_grad and out.energy.requires_grad
    loss = out.energy.square().mean() + out.forces.square().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the force loss alone reaches the attention weights: second-order path through attention
    model.zero_grad()
    model(batch, training=True).forces.square().sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.blocks[0].attn.rbf_bias.weight.grad.abs().sum() > 0
    model.eval()
    detached = model(batch)
    assert not detached.energy.requires_grad and not detached.forces.requires_grad


def test_forces_computed_under_no_grad():
    model, batch = _model(), _batch(g2_molecules()[:3])
    with torch.no_grad():
        out = model(batch)
    torch.testing.assert_close(out.forces, model(batch).forces)


def test_element_references_add_exactly_and_stay_float64():
    model, batch = _model(), _batch(g2_molecules())
    base = model(batch).energy
    refs = torch.zeros(119, dtype=F64)
    values = [-13.6, -1030.1, -1485.3, -2042.6, -2713.2, -9283.9, -10831.5, -12577.1]
    refs[[1, 6, 7, 8, 9, 15, 16, 17]] = torch.tensor(values, dtype=F64)
    model.set_element_references(refs)
    shift = torch.zeros(batch.num_molecules, dtype=F64).index_add_(0, batch.batch, refs[batch.numbers])
    torch.testing.assert_close(model(batch).energy - base, shift, rtol=0, atol=1e-9)
    model.float()
    assert model.element_energies.dtype == F64 and model.energy_scale.dtype == F64
    assert torch.equal(model.element_energies, refs)  # not rounded through float32

    class Refs:  # duck-typed transip.data.ElementReferences
        energies = refs * 2

    model.set_element_references(Refs())
    assert torch.equal(model.element_energies, refs * 2)
    with pytest.raises(ValueError, match="shape"):
        model.set_element_references(torch.zeros(10))


def test_energy_scale_multiplies_the_head():
    model, batch = _model(), _batch(g2_molecules()[:4])
    base = model(batch)
    model.set_energy_scale(2.5)
    torch.testing.assert_close(model(batch).energy, 2.5 * base.energy)
    torch.testing.assert_close(model(batch).forces, 2.5 * base.forces)
    with pytest.raises(ValueError):
        model.set_energy_scale(0.0)


def test_float32_model_float64_positions():
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny")).eval()
    out = model(_batch(g2_molecules()[:3]))
    assert out.energy.dtype == F64 and out.forces.dtype == F64
    assert out.node_embedding.dtype == torch.float32


def test_direct_force_head_is_not_conservative():
    model = _model(direct_forces=True)
    batch = _batch(g2_molecules()[:3])
    out = model(batch)
    assert out.forces.shape == batch.positions.shape
    pos = batch.positions.clone().requires_grad_(True)
    energy = model(replace(batch, positions=pos), compute_forces=False, training=True).energy
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    assert not torch.allclose(out.forces, -grad)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("charge", 11, "charge"), ("charge", -11, "charge"), ("spin", 0, "spin"), ("spin", 12, "spin")],
)
def test_out_of_range_charge_or_spin_raises(field, value, match):
    mol = replace(g2_molecules()[0], **{field: value})
    with pytest.raises(ValueError, match=match):
        _model()(_batch([g2_molecules()[1], mol]))


def test_bad_atomic_numbers_and_too_many_atoms_raise():
    mol = g2_molecules()[0]
    with pytest.raises(ValueError, match="atomic numbers"):
        _model()(_batch([replace(mol, numbers=mol.numbers * 0)]))
    with pytest.raises(ValueError, match="context length"):
        _model(max_atoms=5)(_batch([g2_molecules()[5]]))
