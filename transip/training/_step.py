"""One optimisation step and one validation pass, as functions of their inputs.

Nothing here knows about files, logging or the step budget; the loop in ``_trainer.py`` drives
them. With ``DistributedDataParallel`` the objective passed in is the wrapped module and the
validation sums are all-reduced before :func:`validation_metrics`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from latentequiv.groups import SO3
from transip.data import subset
from transip.evaluation import (
    MetricAccumulator,
    NamedSums,
    inference_batches,
    rotation_statistics,
    summarise_statistics,
)

from ._objective import LossTerms, TransIPObjective
from ._terms import ObjectiveInputs


def autocast_context(device: torch.device, amp: str):
    """bf16 autocast on CUDA when asked; a no-op otherwise."""
    if amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    batch,
    rotations: torch.Tensor | None,
    *,
    grad_clip: float = 100.0,
    amp: str = "none",
) -> tuple[LossTerms, torch.Tensor | None]:
    """Forward, backward, clip, optimiser and scheduler step.

    Args:
        objective: a :class:`TransIPObjective` (or a DDP wrapper of one).
        optimizer, scheduler: stepped once.
        batch: the training batch, on the model's device.
        rotations: ``(B, 3, 3)`` for TransIP/TransAug, else ``None``.
        grad_clip: maximum global gradient norm (``0`` disables clipping).
        amp: ``"bf16"`` for autocast on CUDA, ``"none"``.

    Returns:
        ``(terms, grad_norm)``, detached tensors on the device (no host synchronisation here).
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(batch.positions.device, amp):
        terms = objective(batch, rotations)
    terms.total.backward()
    grad_norm = None
    if grad_clip > 0:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).detach()
    optimizer.step()
    scheduler.step()
    return terms.detach(), grad_norm


class IndexedRotations:
    """Haar-random rotations indexed by molecule: the same ``(seed, i)`` always gives the same one.

    Rotations are drawn in blocks of ``block`` molecules, block ``k`` from a generator seeded
    with ``(seed, k)``, so any subset of molecules, in any batches, gets the rotations a full
    pass gives them.

    Example:
        >>> r = IndexedRotations(seed=0)
        >>> torch.equal(r(np.array([3, 700]))[1], r(np.array([700]))[0])
        True
    """

    def __init__(self, seed: int, block: int = 256) -> None:
        self.seed, self.block = int(seed), int(block)
        self._cache: dict[int, torch.Tensor] = {}

    def _block(self, k: int) -> torch.Tensor:
        if k not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            state = np.random.SeedSequence([self.seed % 2**63, k]).generate_state(1, np.uint64)[0]
            generator = torch.Generator().manual_seed(int(state >> 2))
            self._cache[k] = SO3().sample(self.block, generator=generator, dtype=torch.float64)
        return self._cache[k]

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        """``(B, 3, 3)`` float64 rotations of molecules ``indices`` (CPU)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = torch.empty(idx.size, 3, 3, dtype=torch.float64)
        blocks = idx // self.block
        for k in np.unique(blocks):
            rows = np.nonzero(blocks == k)[0]
            out[torch.from_numpy(rows)] = self._block(int(k))[torch.from_numpy(idx[rows] % self.block)]
        return out


def validation_sums(
    objective: TransIPObjective,
    dataset,
    *,
    max_atoms: int,
    dtype: torch.dtype,
    device: torch.device,
    equivariance: bool = True,
    target: str | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[MetricAccumulator, NamedSums, NamedSums | None]:
    """One pass over the validation set: accuracy sums, task-term sums and symmetry-error sums.

    The rotation of molecule ``i`` for the symmetry errors is a function of ``(seed, i)`` only
    (:class:`IndexedRotations`), so validation neither depends on nor disturbs the training
    randomness, and a sharded pass measures what a single pass does.

    With ``world_size > 1`` only molecules ``rank, rank + world_size, ...`` are evaluated; the
    sums of all ranks add up to those of the whole set (the maximum in the symmetry sums aside,
    which combines by ``max``).

    Args:
        target: the embedding of the latent symmetry error, ``"node"`` or ``"graph"`` (default:
            the latent term's, else ``"node"``; the run passes ``equivariance.target``).

    Returns:
        ``(metrics, losses, symmetry)``: a :class:`MetricAccumulator`; for every task term ``k``
        (:attr:`Term.task <transip.training.Term>`) the sums ``k`` (its value times its size) and
        ``n_k`` (its size); the summed :func:`transip.evaluation.rotation_statistics` (``None`` if
        not measured).
    """
    model = objective.model
    tasks = [t for t in objective.terms if t.task]
    rotations_of = IndexedRotations(seed)
    acc = MetricAccumulator()
    losses = NamedSums([n for t in tasks for n in (t.name, f"n_{t.name}")], device=device)
    symmetry = None
    shard = np.arange(rank, len(dataset), world_size)
    if shard.size == 0:
        return acc, losses, symmetry
    part = dataset if world_size == 1 else subset(dataset, shard)
    if target is None:
        target = getattr(objective.term("equivariance"), "target", "node")
    for item in inference_batches(part, max_atoms=max_atoms, group_by="none", dtype=dtype, device=device):
        b = item.batch
        want_forces = b.forces is not None
        out = model(b, compute_forces=want_forces, training=False)
        acc.update(
            b.num_atoms,
            b.batch,
            energy_pred=out.energy,
            energy_true=b.energy,
            forces_pred=out.forces,
            forces_true=b.forces,
        )
        inputs = ObjectiveInputs(model, b, out)
        for term in tasks:
            value = term(inputs)
            if value is not None:
                n = term.size(b)
                losses.add(**{term.name: value.double() * n, f"n_{term.name}": n})
        if equivariance:
            rotations = rotations_of(shard[item.indices]).to(device, dtype)
            stats = rotation_statistics(
                model, b, rotations, tau=objective.tau, target=target, output=out, compute_forces=want_forces
            )
            symmetry = stats if symmetry is None else symmetry + stats
    return acc, losses, symmetry


def validation_metrics(
    objective: TransIPObjective,
    acc: MetricAccumulator,
    losses: NamedSums,
    symmetry: NamedSums | None,
) -> dict[str, float | None]:
    """Flat metrics of a validation pass (the ``val.csv`` columns).

    ``loss`` is the weighted sum of the task terms measured, ``lambda_E L_E + lambda_F L_F``
    (comparable across modes), ``loss_<name>`` each task term; accuracy in meV, meV/atom, meV/Å;
    symmetry errors as in :class:`transip.evaluation.EquivarianceMetrics`.
    """
    m = acc.compute()
    tasks = [t for t in objective.terms if t.task]
    means = {t.name: losses.ratio(t.name, f"n_{t.name}") for t in tasks}
    measured = [t.weight * means[t.name] for t in tasks if means[t.name] is not None]
    out = {
        "loss": sum(measured) if measured else None,
        **{f"loss_{name}": v for name, v in means.items()},
        "energy_mae": m.energy_mae,
        "energy_per_atom_mae": m.energy_per_atom_mae,
        "force_mae": m.force_mae,
        "force_cosine": m.force_cosine,
    }
    if symmetry is not None:
        # the target only labels the report, and the label is not a column
        eq = summarise_statistics(symmetry, n_rotations=1, dtype=torch.float64, target="", tau=objective.tau)
        out.update(
            rotation_energy_mae=eq.energy_abs_mean,
            rotation_force_mae=eq.force_abs_mean,
            latent_error=eq.latent_abs_mean,
            latent_rel_error=eq.latent_rel_mean,
        )
    return out
