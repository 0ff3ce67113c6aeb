"""No device reads in the hot path: a batch from ``Batch.from_molecules`` carries what the host needs.

On an accelerator every ``.item()``, ``.tolist()``, ``bool(t)``, ``nonzero`` or boolean-mask index of a
device tensor makes the host wait for the device. On the CPU such reads are free, so they are caught
here by their calls instead: :class:`DeviceReads` records every torch call that would read a tensor's
values on the host (through ``__torch_function__``, so it sees calls made from Python, not reads inside
C++ kernels).
"""

import traceback

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode

from latentequiv.groups import SO3
from latentequiv.losses import contrastive_latent_loss, latent_equivariance_loss
from latentequiv.tau import MLPTau
from transip.data import Batch, HostSummary, Molecule
from transip.model import TransIP, TransIPConfig
from transip.symmetry import rotate_batch
from transip.training import EnergyTerm, ForceTerm, LatentTerm, TransIPObjective, train_step

_READS = {
    "tolist", "item", "__bool__", "__int__", "__float__", "__index__", "numpy", "cpu",
    "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive",
}  # fmt: skip


def _is_bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class DeviceReads(TorchFunctionMode):
    """Records torch calls that read tensor values on the host, with where they were made."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        read = name in _READS
        if name == "repeat_interleave" and len(args) > 1 and isinstance(args[1], torch.Tensor):
            read = kwargs.get("output_size") is None
        if name == "__getitem__" and _is_bool_index(args[1]):
            read = True
        if read:
            caller = traceback.extract_stack(limit=3)[0]
            self.calls.append((name, f"{caller.filename}:{caller.lineno}"))
        return func(*args, **kwargs)


def _molecules(sizes, seed=0, charge=0, spin=1):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        m = Molecule(rng.normal(size=(n, 3)) * 1.5, rng.integers(1, 10, n), charge=charge, spin=spin)
        m.energy, m.forces = float(rng.normal()), rng.normal(size=(n, 3))
        out.append(m)
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TransIP(TransIPConfig.preset("tiny"))


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    charges=st.lists(st.integers(-3, 3), min_size=6, max_size=6),
    spins=st.lists(st.integers(1, 4), min_size=6, max_size=6),
)
def test_from_molecules_summary_matches_the_tensors(sizes, charges, spins):
    mols = _molecules(sizes)
    for m, q, s in zip(mols, charges, spins, strict=False):
        m.charge, m.spin = q, s
    b = Batch.from_molecules(mols)
    assert b.host.offsets == tuple(b.ptr.tolist())
    assert b.host.numbers == (int(b.numbers.min()), int(b.numbers.max()))
    assert b.host.charge == (int(b.charge.min()), int(b.charge.max()))
    assert b.host.spin == (int(b.spin.min()), int(b.spin.max()))
    assert torch.equal(b.batch, torch.repeat_interleave(torch.arange(len(sizes)), b.num_atoms))
    # moving, casting and rotating keep the summary
    assert b.to(dtype=torch.float64).host == b.host
    rotations = SO3().sample(len(sizes), generator=torch.Generator().manual_seed(0))
    assert rotate_batch(b, rotations).host == b.host


def test_forward_with_summary_reads_nothing_and_matches_the_fallback(model):
    model.eval()
    batch = Batch.from_molecules(_molecules([5, 7, 12, 3]))
    with DeviceReads() as reads:
        out = model(batch)
    assert reads.calls == []
    fallback = Batch(**{**vars(batch), "host": None})
    with DeviceReads() as reads:
        ref = model(fallback)
    assert [name for name, _ in reads.calls] == ["tolist"]  # the one read of the fallback
    torch.testing.assert_close(out.energy, ref.energy, rtol=0, atol=0)
    torch.testing.assert_close(out.forces, ref.forces, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("latent", "latent_pass"),
    [
        ({"target": "node"}, "separate"),
        ({"target": "graph"}, "separate"),
        ({"target": "node"}, "joint"),
        ({"target": "node", "padded": True, "loss": contrastive_latent_loss}, "separate"),
    ],
    ids=["node", "graph", "joint", "contrastive"],
)
def test_training_step_with_latent_term_reads_nothing(model, latent, latent_pass):
    model.train()
    batch = Batch.from_molecules(_molecules([4, 9, 9, 6], seed=1))
    terms = [
        EnergyTerm(5.0),
        ForceTerm(15.0),
        LatentTerm(**{"weight": 5.0, "loss": latent_equivariance_loss, **latent}),
    ]
    objective = TransIPObjective(model, terms, tau=MLPTau(model.config.d_model), latent_pass=latent_pass)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    rotations = SO3().sample(4, generator=torch.Generator().manual_seed(1))
    train_step(objective, optimizer, scheduler, batch, rotations)  # optimiser state created outside
    with DeviceReads() as reads:
        terms, grad_norm = train_step(objective, optimizer, scheduler, batch, rotations)
    assert reads.calls == []
    assert torch.isfinite(terms.total) and torch.isfinite(grad_norm)


@settings(max_examples=25, deadline=None)
@given(groups=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=4), min_size=1, max_size=4))
def test_cat_is_packing_all_the_molecules_at_once(groups):
    parts = [_molecules(sizes, seed=k, charge=k - 1, spin=k + 1) for k, sizes in enumerate(groups)]
    joined = Batch.cat([Batch.from_molecules(mols) for mols in parts])
    whole = Batch.from_molecules([m for mols in parts for m in mols])
    assert joined.host == whole.host
    for name in ("positions", "numbers", "ptr", "batch", "charge", "spin", "energy", "forces"):
        assert torch.equal(getattr(joined, name), getattr(whole, name)), name
    unlabelled = Batch(**{**vars(Batch.from_molecules(parts[0])), "energy": None, "host": None})
    mixed = Batch.cat([unlabelled, Batch.from_molecules(parts[0])])
    assert mixed.energy is None and mixed.forces is not None and mixed.host is None


def test_the_detector_sees_reads(model):
    """The check above could fail: the detector flags the reads the model used to make."""
    t = torch.arange(6)
    with DeviceReads() as reads:
        t.tolist()
        bool(t[0])
        t[t > 2]
        torch.repeat_interleave(t, t)
    assert [name for name, _ in reads.calls] == ["tolist", "__bool__", "__getitem__", "repeat_interleave"]


def test_out_of_range_inputs_are_still_reported_from_the_summary(model):
    (mol,) = _molecules([4])
    mol.charge = 99
    with pytest.raises(ValueError, match="charge"):
        model(Batch.from_molecules([mol]))
    mol.charge = 0
    batch = Batch.from_molecules([mol])
    tiny_z = TransIP(TransIPConfig.preset("tiny", max_z=5))
    batch.numbers[:] = 7
    batch = Batch(**{**vars(batch), "host": HostSummary(batch.host.offsets, (7, 7), (0, 0), (1, 1))})
    with pytest.raises(ValueError, match=r"atomic numbers \[7\] outside 1..5"):
        tiny_z(batch)


def test_a_stale_summary_is_refused():
    a, b = Batch.from_molecules(_molecules([3, 4])), Batch.from_molecules(_molecules([5]))
    with pytest.raises(ValueError, match="Batch.host describes 2 molecules and 7 atoms"):
        Batch(**{**vars(b), "host": a.host})
