"""The shortcuts that make TransIP fast keep its results: contiguous-run buckets, the one-matmul
RBF attention bias of all layers, and the batch plan read from the host once."""

import math

import pytest
import torch
from einops import rearrange
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import Batch, Molecule
from transip.model import AttentionLayout, TransIP, TransIPConfig, segment_pool
from transip.model._block import rbf_logit_biases

F64 = torch.float64


def _ptr(sizes):
    return torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=10),
    growth=st.sampled_from([1.0, 1.25, math.inf]),
    slack=st.integers(0, 20),
)
def test_gather_scatter_round_trip_and_runs_are_views(sizes, growth, slack):
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=growth, slack=slack)
    x = torch.randn(sum(sizes), 3)
    blocks = layout.gather(x)
    assert torch.equal(layout.scatter(blocks), x)
    for bucket, block in zip(layout.buckets, blocks, strict=True):
        assert torch.equal(block, x[bucket.index])  # same values as plain indexing
        if bucket.start is not None:  # a run: no padding, adjacent members, and no copy
            assert not bucket.padded
            assert torch.equal(bucket.index.flatten(), torch.arange(bucket.index.numel()) + bucket.start)
            assert block.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    assert (layout.rows is None) == all(b.start is not None for b in layout.buckets)


def test_equal_sizes_and_single_molecules_are_runs_padding_is_not():
    assert AttentionLayout.from_ptr(_ptr([9] * 32)).rows is None
    assert AttentionLayout.from_ptr(_ptr([50])).rows is None
    per_molecule = AttentionLayout.from_ptr(_ptr([30, 5, 12]), growth=1.0, slack=0)
    assert per_molecule.rows is None and per_molecule.runs == (2, 0, 1)  # buckets sorted by size
    padded = AttentionLayout.from_ptr(_ptr([30, 5, 12]), growth=math.inf)
    assert padded.rows is not None and padded.buckets[0].start is None
    interleaved = AttentionLayout.from_ptr(_ptr([9, 30, 9]), growth=1.0, slack=0)
    assert interleaved.rows is not None  # the two 9-atom molecules are not adjacent


def test_from_offsets_equals_from_ptr():
    sizes = [4, 17, 3, 17, 40]
    a = AttentionLayout.from_ptr(_ptr(sizes))
    b = AttentionLayout.from_offsets(_ptr(sizes).tolist())
    assert [x.shape for x in a.buckets] == [x.shape for x in b.buckets]
    assert all(torch.equal(x.index, y.index) for x, y in zip(a.buckets, b.buckets, strict=True))
    assert torch.equal(a.rows, b.rows) and torch.equal(a.inverse, b.inverse)


def test_one_matmul_bias_equals_each_layers_own_projection():
    g = torch.Generator().manual_seed(0)
    layers, heads, k = 3, 4, 8
    weights = [torch.randn(heads, k, generator=g, dtype=F64) for _ in range(layers)]
    pair_phi = [
        torch.rand(2, 5, 5, k, generator=g, dtype=F64),
        torch.rand(1, 11, 11, k, generator=g, dtype=F64),
    ]
    got = rbf_logit_biases(pair_phi, weights)
    assert len(got) == layers
    for w, per_bucket in zip(weights, got, strict=True):
        for phi, bias in zip(pair_phi, per_bucket, strict=True):
            want = rearrange(phi @ w.T, "b i j h -> b h i j")
            torch.testing.assert_close(bias, want, rtol=1e-12, atol=1e-12)


def test_one_matmul_bias_gradient_reaches_every_layer():
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(2, 4, generator=g, dtype=F64, requires_grad=True) for _ in range(3)]
    phi = torch.rand(1, 6, 6, 4, generator=g, dtype=F64, requires_grad=True)
    probes = [torch.randn(1, 2, 6, 6, generator=g, dtype=F64) for _ in weights]

    def loss(project):
        return sum((b[0] * p).sum() for b, p in zip(project(), probes, strict=True))

    fused = torch.autograd.grad(loss(lambda: rbf_logit_biases([phi], weights)), [phi, *weights])
    separate = torch.autograd.grad(
        loss(lambda: [rbf_logit_biases([phi], [w])[0] for w in weights]), [phi, *weights]
    )
    for a, b in zip(fused, separate, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_mean_pool_counts_atoms_without_bincount():
    x = torch.arange(12.0).view(6, 2)
    batch = torch.tensor([0, 0, 0, 2, 2, 2])  # molecule 1 is empty: divided by 1, stays 0
    pooled = segment_pool(x, batch, 3, "mean")
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 3.0], [0.0, 0.0], [8.0, 9.0]]))


def _water(charge=0, spin=1, numbers=(8, 1, 1)):
    return Molecule([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], list(numbers), charge=charge, spin=spin)


@pytest.mark.parametrize(
    ("molecule", "match"),
    [
        (_water(charge=11), r"charge \[11\] outside .* \(molecules \[1\]\)"),
        (_water(spin=0), r"spin multiplicity \[0\] outside"),
        (_water(numbers=(8, 1, 119)), r"atomic numbers \[119\] outside 1..118"),
    ],
)
def test_plan_names_the_bad_value(molecule, match):
    model = TransIP(TransIPConfig.preset("tiny"))
    with pytest.raises(ValueError, match=match):
        model.plan(Batch.from_molecules([_water(), molecule]))


def test_plan_is_the_forward_layout():
    model = TransIP(TransIPConfig.preset("tiny", bucket_growth=1.0, bucket_slack=0))
    batch = Batch.from_molecules([_water(), _water(), Molecule([[0, 0, 0], [1.1, 0, 0]], [6, 8])])
    layout = model.plan(batch)
    assert [b.shape for b in layout.buckets] == [(1, 2), (2, 3)]
    assert layout.num_atoms == 8


def test_compiled_blocks_serve_inference_and_force_training_stays_eager():
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny", dropout=0.0)).double()
    batch = Batch.from_molecules([_water(), Molecule([[0, 0, 0], [1.1, 0, 0]], [6, 8])], dtype=F64)
    eager = model(batch)
    keys = set(model.state_dict())
    model.compile_blocks(backend="eager", dynamic=False)  # dynamo tracing only: fast, same maths
    assert set(model.state_dict()) == keys
    compiled = model(batch)
    torch.testing.assert_close(compiled.energy, eager.energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(compiled.forces, eager.forces, rtol=1e-12, atol=1e-12)
    out = model(batch, training=True)  # a force loss needs the double backward compile lacks
    (out.energy.sum() + out.forces.square().sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.compile_blocks(enable=False)._compiled_blocks == ()


def test_default_bucketing_pads_and_gives_the_per_molecule_results():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mols = [Molecule(torch.randn(n, 3, generator=g).numpy() * 2, [6] * n) for n in (3, 20, 9, 25, 4)]
    batch = Batch.from_molecules(mols, dtype=F64)
    model = TransIP(TransIPConfig.preset("tiny")).double().eval()  # growth 1.25, slack 16
    assert any(b.padded for b in model.plan(batch).buckets)
    out = model(batch)
    single = [model(Batch.from_molecules([m], dtype=F64)) for m in mols]
    torch.testing.assert_close(out.energy, torch.cat([s.energy for s in single]), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.forces, torch.cat([s.forces for s in single]), rtol=1e-9, atol=1e-10)
