"""How far a trained model is from rotational symmetry, measured on data.

For each molecule one Haar rotation ``R`` per round; the rotated copy comes from
:func:`transip.symmetry.rotate_batch` (the one definition of the action). Measured:

- energy invariance: ``|E(Rx) - E(x)|`` per molecule (meV);
- force equivariance ("rotate, predict, unrotate"): ``|F(Rx) - R F(x)|`` over Cartesian components
  (meV/Å, comparable to a force MAE) and ``||F(Rx) - R F(x)||_F / ||F(Rx)||_F`` per molecule;
- latent equivariance (the paper's latent error, with the trained tau): ``||tau(R, z) - z_R||`` per
  item, absolute and relative to ``||z_R||`` (items are atoms for ``"node"`` embeddings, molecules
  for ``"graph"``), with the same definitions as :func:`latentequiv.probes.latent_equivariance_error`.
  Without a tau the identity is used, i.e. how much the embedding moves at all.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from latentequiv.groups import SO3
from transip.data import Batch
from transip.symmetry import rotate_batch, rotate_vectors

from ._loader import inference_batches
from ._sums import NamedSums

Target = Literal["node", "graph"]

#: the entries of :func:`rotation_statistics` (``energy_abs_max`` combines by max)
ROTATION_STATISTICS = (
    "energy_abs_sum",  # sum_b |dE_b| (eV)
    "energy_abs_max",  # max_b |dE_b| (eV)
    "n_molecules",
    "force_abs_sum",  # sum of |dF| components (eV/Å)
    "n_force_components",
    "force_rel_sum",  # sum_b ||dF_b|| / ||F_b||
    "n_force_molecules",
    "latent_abs_sum",  # sum over items of ||tau(R, z) - z_R||
    "latent_rel_sum",
    "n_latent_items",
)


@dataclass(frozen=True)
class EquivarianceMetrics:
    """Symmetry errors of a model on a dataset (see the module docstring for the definitions).

    Energies in meV, forces in meV/Å; ``None`` where not measured.
    """

    n_rotations: int
    dtype: str
    n_molecules: int
    energy_abs_mean: float | None
    energy_abs_max: float | None
    force_abs_mean: float | None
    force_rel_mean: float | None
    latent_abs_mean: float | None
    latent_rel_mean: float | None
    latent_target: str
    latent_tau: str

    def as_dict(self) -> dict:
        return asdict(self)


def rotation_statistics(
    model: nn.Module,
    batch: Batch,
    rotations: torch.Tensor,
    *,
    tau: nn.Module | None = None,
    target: Target = "node",
    output=None,
    compute_forces: bool = True,
) -> torch.Tensor:
    """Summed symmetry errors of one batch under one rotation per molecule.

    Args:
        model: the TransIP model.
        batch: the molecules.
        rotations: ``(B, 3, 3)``.
        tau: the trained tau-network (``None``: identity).
        target: which embedding the tau acts on.
        output: ``model(batch)`` if already computed (saves a forward pass).
        compute_forces: also measure forces.

    Returns:
        :class:`NamedSums` of :data:`ROTATION_STATISTICS` (add batches with ``+``).
    """
    if output is None:
        output = model(batch, compute_forces=compute_forces, training=False)
    rotated = model(rotate_batch(batch, rotations), compute_forces=compute_forces, training=False)
    s = empty_statistics(batch.positions.device)
    de = (rotated.energy.double() - output.energy.double()).abs()  # (B,)
    s.add(energy_abs_sum=de.sum(), energy_abs_max=de.max(), n_molecules=de.numel())
    if compute_forces and output.forces is not None and rotated.forces is not None:
        expected = rotate_vectors(output.forces.double(), rotations.to(torch.float64)[batch.batch])
        diff = rotated.forces.double() - expected  # (T, 3)
        n = batch.num_molecules
        sq = torch.zeros(n, 2, dtype=torch.float64, device=diff.device).index_add_(
            0, batch.batch, torch.stack([diff.pow(2).sum(-1), rotated.forces.double().pow(2).sum(-1)], -1)
        )  # (B, 2)
        eps = torch.finfo(torch.float64).eps
        s.add(
            force_abs_sum=diff.abs().sum(),
            n_force_components=diff.numel(),
            force_rel_sum=(sq[:, 0].sqrt() / (sq[:, 1].sqrt() + eps)).sum(),
            n_force_molecules=n,
        )
    if target == "graph":
        z, z_rot, g = output.graph_embedding, rotated.graph_embedding, rotations
    else:
        z, z_rot, g = output.node_embedding, rotated.node_embedding, rotations[batch.batch]
    with torch.no_grad():
        predicted = z if tau is None else tau(g.to(z.dtype), z)
    err = (predicted - z_rot).double().norm(dim=-1)  # (items,)
    eps = torch.finfo(z_rot.dtype).eps
    s.add(
        latent_abs_sum=err.sum(),
        latent_rel_sum=(err / (z_rot.double().norm(dim=-1) + eps)).sum(),
        n_latent_items=err.numel(),
    )
    return s


def empty_statistics(device: torch.device | str | None = None) -> NamedSums:
    """Zero :func:`rotation_statistics` (what a process without molecules contributes)."""
    return NamedSums(ROTATION_STATISTICS, maxima=("energy_abs_max",), device=device)


def summarise_statistics(
    stats: NamedSums, *, n_rotations: int, dtype: torch.dtype, target: str, tau: nn.Module | None
) -> EquivarianceMetrics:
    """Turn summed statistics into :class:`EquivarianceMetrics`."""
    s = stats.to_dict()

    def ratio(num: str, den: str, scale: float = 1.0) -> float | None:
        return s[num] / s[den] * scale if s[den] > 0 else None

    return EquivarianceMetrics(
        n_rotations=n_rotations,
        dtype=str(dtype).removeprefix("torch."),
        n_molecules=round(s["n_molecules"] / max(n_rotations, 1)),
        energy_abs_mean=ratio("energy_abs_sum", "n_molecules", 1000.0),
        energy_abs_max=s["energy_abs_max"] * 1000.0 if s["n_molecules"] > 0 else None,
        force_abs_mean=ratio("force_abs_sum", "n_force_components", 1000.0),
        force_rel_mean=ratio("force_rel_sum", "n_force_molecules"),
        latent_abs_mean=ratio("latent_abs_sum", "n_latent_items"),
        latent_rel_mean=ratio("latent_rel_sum", "n_latent_items"),
        latent_target=target,
        latent_tau="identity (no tau)" if tau is None else type(tau).__name__,
    )


def equivariance_report(
    model: nn.Module,
    dataset,
    *,
    tau: nn.Module | None = None,
    target: Target = "node",
    n_rotations: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    max_atoms: int = 1024,
    compute_forces: bool = True,
) -> EquivarianceMetrics:
    """Measure energy, force and latent symmetry errors of ``model`` on ``dataset``.

    The model (and tau) are evaluated on copies cast to ``dtype`` (float64 by default, so that
    what is reported is the model's symmetry error rather than rounding); the caller's modules are
    not modified.

    Args:
        model: a TransIP model.
        dataset: molecules (labels are not needed).
        tau: the trained tau-network, or ``None``.
        target: ``"node"`` or ``"graph"`` embeddings for the latent error.
        n_rotations: rotations drawn per molecule.
        seed: seed of the rotation generator (CPU generator, reproducible).
        dtype: working precision.
        device: where to run.
        max_atoms: atoms per batch.
        compute_forces: also measure the forces (costs a backward pass).

    Returns:
        :class:`EquivarianceMetrics`; this is a measurement: it never raises on large errors.
    """
    model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    tau = None if tau is None else copy.deepcopy(tau).to(device=device, dtype=dtype).eval()
    generator = torch.Generator().manual_seed(seed)
    stats = empty_statistics(device)
    for item in inference_batches(dataset, max_atoms=max_atoms, group_by="none", dtype=dtype, device=device):
        b = item.batch
        output = model(b, compute_forces=compute_forces, training=False)
        for _ in range(n_rotations):
            rotations = (
                SO3().sample(b.num_molecules, generator=generator, dtype=torch.float64).to(device, dtype)
            )
            s = rotation_statistics(
                model, b, rotations, tau=tau, target=target, output=output, compute_forces=compute_forces
            )
            stats = stats + s
    return summarise_statistics(stats, n_rotations=n_rotations, dtype=dtype, target=target, tau=tau)
