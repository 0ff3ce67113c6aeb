"""The memory-lean, twice-differentiable packed attention (`examples/fast_attention.py`).

The reference is the plain formula evaluated one molecule at a time with autograd in float64;
`fast_attend` must agree in the forward, the backward and the double backward, never mix molecules,
and keep no ``(N, N)`` tensor alive between the passes of a force-training step.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.data import Batch, Molecule
from transip.model import AttentionLayout, TransIP, TransIPConfig
from transip.model import _block as block_module


def _example(name: str):
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fast_attend = _example("fast_attention").fast_attend

H, E = 2, 3


def _ptr(sizes):
    return torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])


def _reference(q, k, v, sizes, pair=None):
    """Per-molecule ``softmax(q k^T / sqrt(E) + bias) v`` with plain autograd operations."""
    outs, start = [], 0
    for n in sizes:
        s = slice(start, start + n)
        qs, ks, vs = (x[s].transpose(0, 1) for x in (q, k, v))  # (H, n, E)
        logits = qs @ ks.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if pair is not None:
            logits = logits + pair[s, s].permute(2, 0, 1)
        outs.append((logits.softmax(-1) @ vs).transpose(0, 1))
        start += n
    return torch.cat(outs)


def _bucket_bias(pair, layout):
    """Per-bucket ``(B_b, H, N_b, N_b)`` bias cut from a bias defined on packed pairs ``(T, T, H)``."""
    return [pair[b.index[:, :, None], b.index[:, None, :]].permute(0, 3, 1, 2) for b in layout.buckets]


def _inputs(t, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(t, H, E, generator=g, dtype=torch.float64) for _ in range(3))
    pair = torch.randn(t, t, H, generator=g, dtype=torch.float64)
    return [x.requires_grad_(requires_grad) for x in (q, k, v, pair)]


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    growth=st.sampled_from([1.0, 1.25, math.inf]),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_forward_and_backward_match_per_molecule_reference(sizes, growth, with_bias, seed):
    q, k, v, pair = _inputs(sum(sizes), seed, requires_grad=True)
    pair = pair if with_bias else None
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=growth, slack=0)
    bias = None if pair is None else _bucket_bias(pair, layout)
    out, ref = fast_attend(q, k, v, layout, bias), _reference(q, k, v, sizes, pair)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    leaves = [q, k, v] + ([pair] if pair is not None else [])
    w = torch.randn_like(out)
    got = torch.autograd.grad((out * w).sum(), leaves, create_graph=True)
    want = torch.autograd.grad((ref * w).sum(), leaves, create_graph=True)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    # Second order: a loss on the first derivatives, differentiated again (the force-training pattern).
    second = torch.autograd.grad(sum((g * g).sum() for g in got), leaves)
    expected = torch.autograd.grad(sum((g * g).sum() for g in want), leaves)
    for a, b in zip(second, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("growth", [1.0, math.inf])
def test_gradcheck_and_gradgradcheck_with_padding_and_bias(growth):
    sizes = [3, 1, 4]
    q, k, v, pair = _inputs(sum(sizes), 0)
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=growth, slack=0)
    assert any(b.padded for b in layout.buckets) == (growth == math.inf)
    bias = [b.detach().requires_grad_(True) for b in _bucket_bias(pair, layout)]
    inputs = [x.requires_grad_(True) for x in (q, k, v)] + bias

    def fn(q, k, v, *bias):
        return fast_attend(q, k, v, layout, list(bias))

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(lambda q, k, v: fast_attend(q, k, v, layout), inputs[:3])


def test_molecules_never_see_each_other_in_any_order_of_derivative():
    sizes = [4, 7, 2]
    q, k, v, pair = _inputs(sum(sizes), 1, requires_grad=True)
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=math.inf)  # one padded bucket: masks matter
    out = fast_attend(q, k, v, layout, _bucket_bias(pair, layout))
    first, rest = slice(0, 4), slice(4, None)
    # Output of molecule 0 against inputs of the others: exactly zero, first and second order.
    grads = torch.autograd.grad(out[first].sum(), (q, k, v, pair), create_graph=True)
    for g in grads[:3]:
        assert torch.count_nonzero(g[rest]) == 0
    assert torch.count_nonzero(grads[3][rest]) == 0 and torch.count_nonzero(grads[3][:, rest]) == 0
    second = torch.autograd.grad(sum((g**2).sum() for g in grads), (q, k, v))
    for g in second:
        assert torch.count_nonzero(g[rest]) == 0
    # Changing another molecule's inputs leaves molecule 0's output bit-identical.
    with torch.no_grad():
        q2, k2, v2 = (x.clone() for x in (q, k, v))
        for x in (q2, k2, v2):
            x[rest] += 10.0
        other = fast_attend(q2, k2, v2, layout, _bucket_bias(pair, layout))
    assert torch.equal(other[first], out[first].detach())


def _saved_sizes(fn):
    """Element counts of every tensor autograd saves while ``fn`` runs."""
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sizes


def test_force_training_graph_keeps_no_attention_matrix():
    n = 48
    x = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    proj = torch.randn(3, 3 * H * E, dtype=torch.float64, requires_grad=True)
    layout = AttentionLayout.from_ptr(torch.tensor([0, n]))

    def step(attention):
        def run():
            q, k, v = (x @ proj).view(n, 3, H, E).unbind(1)
            energy = attention(q, k, v).pow(2).sum()
            (force,) = torch.autograd.grad(energy, x, create_graph=True)
            return force.pow(2).sum()

        return run

    lean = _saved_sizes(step(lambda q, k, v: fast_attend(q, k, v, layout)))
    plain = _saved_sizes(step(lambda q, k, v: _reference(q, k, v, [n])))
    assert max(plain) >= H * n * n  # the plain formula keeps (H, N, N) probabilities
    assert max(lean) < H * n * n


def test_dropout_path_is_twice_differentiable_and_identity_at_zero_rate():
    sizes = [5, 3]
    q, k, v, _ = _inputs(8, 2, requires_grad=True)
    layout = AttentionLayout.from_ptr(_ptr(sizes), growth=math.inf)
    torch.manual_seed(0)
    out = fast_attend(q, k, v, layout, dropout_p=0.5)
    (g,) = torch.autograd.grad(out.sum(), q, create_graph=True)
    (gg,) = torch.autograd.grad(g.pow(2).sum(), k)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0
    assert not torch.allclose(out, _reference(q, k, v, sizes))
    torch.testing.assert_close(fast_attend(q, k, v, layout, dropout_p=0.0), _reference(q, k, v, sizes))


def _molecules():
    g = torch.Generator().manual_seed(3)
    mols = []
    for n in (3, 9, 5):
        pos = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.5
        numbers = torch.randint(1, 9, (n,), generator=g)
        mols.append(Molecule(positions=pos.numpy(), numbers=numbers.numpy(), energy=0.0, forces=pos.numpy()))
    return mols


def test_swapping_into_transip_keeps_energies_forces_and_training_gradients(monkeypatch):
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny", dropout=0.0)).double()
    batch = Batch.from_molecules(_molecules(), dtype=torch.float64)

    def train_step():
        model.zero_grad()
        out = model(batch, training=True)
        (out.energy.square().sum() + out.forces.square().sum()).backward()
        return out.energy.detach(), out.forces.detach(), [p.grad.clone() for p in model.parameters()]

    energy, forces, grads = train_step()
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs.get("double_backward"))
        return fast_attend(*args, **kwargs)

    monkeypatch.setattr(block_module, "attend", counted)
    energy2, forces2, grads2 = train_step()
    assert calls == [True] * model.config.n_layers  # every layer went through the fast kernel
    torch.testing.assert_close(energy2, energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(forces2, forces, rtol=1e-9, atol=1e-10)
    for a, b in zip(grads2, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
