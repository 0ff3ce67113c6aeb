"""The training objective ``L = lambda_E L_E + lambda_F L_F + lambda_equiv L_equiv`` (TransIP, Eq. 4).

- ``L_E`` compares *total* energies, whose difference equals the difference of referenced energies
  (the element references cancel), divided by an energy unit ``s`` (default the model's
  ``energy_scale``; :func:`compute_objective`'s ``energy_unit``): ``"mse"`` is
  ``mean_b ((E_pred - E_true) / s)^2``; ``"per_atom_mse"`` divides each error by the atom count first.
- ``L_F`` is the paper's force norm, ``"l2"``: ``mean_i ||F_pred_i - F_true_i||_2 / s_F`` over
  atoms, or ``"squared"``: ``mean_i ||F_pred_i - F_true_i||^2 / s_F^2``, with a force unit ``s_F``
  (eV/Å; default the model's ``energy_scale`` read per Å, ``force_unit`` otherwise, e.g. the force
  RMS). It is only computed when the batch has forces.
- ``L_equiv`` (TransIP mode only) is the latent loss of :mod:`latentequiv.losses` between
  ``tau(R, f(x))`` and ``f(R x)``, on per-atom (``"node"``) or pooled (``"graph"``) embeddings.
  ``f(R x)`` comes from a second forward pass on the rotated copy (``latent_pass="separate"``) or
  from the same pass as ``f(x)`` (``"joint"``: originals and rotated copies packed as one batch of
  ``2B`` molecules, which share every weight read; forces are taken from the originals only).

The modes are not flags but parts: a ``tau`` module makes it TransIP, ``augment=True`` makes it TransAug
(the batch is rotated before the forward pass), neither is plain training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from transip.data import Batch
from transip.model import TransIPOutput
from transip.symmetry import rotate_batch

LatentLoss = Callable[..., torch.Tensor]


@dataclass
class LossTerms:
    """The objective and its parts (unweighted), all scalars on the model's device."""

    total: torch.Tensor
    energy: torch.Tensor
    force: torch.Tensor | None = None
    equivariance: torch.Tensor | None = None

    def detach(self) -> LossTerms:
        return LossTerms(
            *(
                None if v is None else v.detach()
                for v in (self.total, self.energy, self.force, self.equivariance)
            )
        )


def energy_loss(
    pred: torch.Tensor,
    true: torch.Tensor,
    num_atoms: torch.Tensor,
    scale: torch.Tensor | float,
    kind: Literal["mse", "per_atom_mse"] = "mse",
) -> torch.Tensor:
    """Scaled squared energy error.

    The difference is taken in the dtype of the totals (float64 when the model adds float64 element
    references) and only then cast to the working dtype, so large total energies lose no precision.

    Args:
        pred, true: total energies (eV).
        num_atoms: atoms per molecule.
        scale: the model's energy scale (eV).
        kind: ``"mse"`` or ``"per_atom_mse"`` (error divided by the atom count).

    Shape:
        - pred, true, num_atoms: ``(B,)``
        - output: scalar
    """
    diff = pred - true.to(pred.dtype)  # (B,)
    if kind == "per_atom_mse":
        diff = diff / num_atoms.to(diff.dtype)
    elif kind != "mse":
        raise ValueError(f"unknown energy loss {kind!r}")
    return (diff / scale).pow(2).mean()


def force_loss(
    pred: torch.Tensor, true: torch.Tensor, scale: torch.Tensor | float, kind: Literal["l2", "squared"] = "l2"
) -> torch.Tensor:
    """Scaled per-atom force error norm, averaged over atoms.

    Shape:
        - pred, true: ``(T, 3)`` (eV/Å)
        - output: scalar
    """
    diff = (pred - true.to(pred.dtype)) / scale  # (T, 3)
    if kind == "l2":
        return torch.linalg.vector_norm(diff, dim=-1).mean()
    if kind == "squared":
        return diff.pow(2).sum(-1).mean()
    raise ValueError(f"unknown force loss {kind!r}")


def pad_tokens(z: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed ``(T, D)`` embeddings to a padded ``(B, N_max, D)`` tensor and its ``(B, N_max)`` mask.

    ``N_max`` comes from the batch's host summary when it has one (no device read)."""
    n_max = batch.host.largest if batch.host is not None else int(batch.num_atoms.max())
    pos = torch.arange(z.shape[0], device=z.device) - batch.ptr[:-1][batch.batch]  # (T,)
    out = z.new_zeros(batch.num_molecules, n_max, z.shape[-1])
    out[batch.batch, pos] = z
    mask = torch.zeros(batch.num_molecules, n_max, dtype=torch.bool, device=z.device)
    mask[batch.batch, pos] = True
    return out, mask


def compute_objective(
    model: nn.Module,
    batch: Batch,
    rotations: torch.Tensor | None = None,
    *,
    tau: nn.Module | None = None,
    latent_loss: LatentLoss | None = None,
    augment: bool = False,
    target: Literal["node", "graph"] = "node",
    padded_latent: bool = False,
    energy_weight: float = 5.0,
    force_weight: float = 15.0,
    equivariance_weight: float = 5.0,
    energy_kind: Literal["mse", "per_atom_mse"] = "mse",
    force_kind: Literal["l2", "squared"] = "l2",
    latent_pass: Literal["separate", "joint"] = "separate",
    energy_unit: float | None = None,
    force_unit: float | None = None,
    create_graph: bool = True,
) -> LossTerms:
    """One evaluation of the training objective on a batch.

    Args:
        model: a TransIP model (``model(batch, compute_forces=..., training=...)`` and ``model.embed``).
        batch: labelled batch (energies required, forces optional).
        rotations: ``(B, 3, 3)`` one rotation per molecule; needed for TransIP and TransAug.
        tau: the tau-network; when given, the latent term is added (TransIP mode).
        latent_loss: ``(tau, z, z_rotated, g, mask=...) -> scalar``, e.g.
            :func:`latentequiv.losses.latent_equivariance_loss`.
        augment: rotate the batch by ``rotations`` before the forward pass (TransAug).
        target: latent loss on per-atom (``"node"``) or pooled (``"graph"``) embeddings.
        padded_latent: for ``"node"``, pass padded ``(B, N, D)`` tokens with a mask instead of packed
            ``(T, D)`` tokens (needed by the contrastive loss, whose items must be molecules).
        energy_weight, force_weight, equivariance_weight: the lambdas.
        energy_kind, force_kind: forms of ``L_E`` and ``L_F`` (module docstring).
        energy_unit, force_unit: the divisors of the energy error (eV) and of the force error
            (eV/Å); ``None``: the model's ``energy_scale`` (the head's unit).
        latent_pass: how the rotated copy is embedded (TransIP mode): ``"separate"``, a second
            forward pass (``model.embed``); ``"joint"``, the same forward pass as the batch (one
            batch of ``2B`` molecules, forces from the originals' energies only). Same loss and
            gradients up to rounding; which is faster depends on the batch size
            (``docs/performance.md``).
        create_graph: keep the force graph for backpropagation (training); ``False`` for validation.

    Returns:
        :class:`LossTerms` with the weighted total and the unweighted parts.
    """
    if batch.energy is None:
        raise ValueError("training needs energy labels for every molecule of the batch")
    if (tau is not None or augment) and rotations is None:
        raise ValueError("TransIP and TransAug need one rotation per molecule")
    if latent_pass not in ("separate", "joint"):
        raise ValueError(f"unknown latent_pass {latent_pass!r}; expected 'separate' or 'joint'")
    if augment:
        batch = rotate_batch(batch, rotations)
    want_forces = batch.forces is not None and force_weight != 0
    rotated = rotate_batch(batch, rotations) if tau is not None else None
    if rotated is not None and latent_pass == "joint":
        out, node_rot, graph_rot = _joint_forward(model, batch, rotated, want_forces, create_graph)
    else:
        out = model(batch, compute_forces=want_forces, training=create_graph)
    e_unit = model.energy_scale if energy_unit is None else energy_unit
    f_unit = model.energy_scale if force_unit is None else force_unit
    l_e = energy_loss(out.energy, batch.energy, batch.num_atoms, e_unit, energy_kind)
    total = energy_weight * l_e
    l_f = None
    if want_forces and out.forces is not None:
        l_f = force_loss(out.forces, batch.forces, f_unit, force_kind)
        total = total + force_weight * l_f
    l_eq = None
    if rotated is not None:
        if latent_pass == "separate":
            node_rot, graph_rot = model.embed(rotated)
        if target == "graph":
            l_eq = latent_loss(tau, out.graph_embedding, graph_rot, rotations.to(graph_rot.dtype))
        elif padded_latent:
            z, mask = pad_tokens(out.node_embedding, batch)
            z_rot, _ = pad_tokens(node_rot, batch)
            l_eq = latent_loss(tau, z, z_rot, rotations.to(z.dtype), mask=mask)
        else:
            g = rotations.to(node_rot.dtype)[batch.batch]  # (T, 3, 3)
            l_eq = latent_loss(tau, out.node_embedding, node_rot, g)
        total = total + equivariance_weight * l_eq
    return LossTerms(total=total, energy=l_e, force=l_f, equivariance=l_eq)


def _joint_forward(
    model: nn.Module, batch: Batch, rotated: Batch, want_forces: bool, create_graph: bool
) -> tuple[TransIPOutput, torch.Tensor, torch.Tensor]:
    """The batch and its rotated copy in one forward pass.

    The forces are ``-d(sum of all 2B energies)/dx``; molecules do not interact (attention, centre
    of mass and pooling are per molecule), so the originals' rows equal ``-d(sum_b E_b)/dx`` of the
    originals alone. The rotated rows still ride through the force graph: the price of sharing
    the weight reads.

    Returns:
        ``(out, node_rot, graph_rot)``: the originals' outputs, the copies' ``(T, D)`` node and
        ``(B, D)`` graph embeddings.
    """
    t, b = batch.positions.shape[0], batch.num_molecules
    both = model(Batch.cat([batch, rotated]), compute_forces=want_forces, training=create_graph)
    out = TransIPOutput(
        energy=both.energy[:b],
        forces=None if both.forces is None else both.forces[:t],
        node_embedding=both.node_embedding[:t],
        graph_embedding=both.graph_embedding[:b],
    )
    return out, both.node_embedding[t:], both.graph_embedding[b:]


class TransIPObjective(nn.Module):
    """The model, the optional tau-network and the objective's settings as one module.

    Wrapping both trainable parts in one module gives one parameter list for the optimiser and the
    EMA, and one module to hand to ``DistributedDataParallel``. ``forward`` is
    :func:`compute_objective`.

    Args:
        model: the TransIP model.
        tau: tau-network (TransIP mode) or ``None``.
        latent_loss: the latent loss callable (needed with ``tau``).
        augment: TransAug mode.
        **settings: the remaining keyword arguments of :func:`compute_objective`.
    """

    def __init__(
        self,
        model: nn.Module,
        tau: nn.Module | None = None,
        latent_loss: LatentLoss | None = None,
        augment: bool = False,
        **settings,
    ) -> None:
        super().__init__()
        if tau is not None and latent_loss is None:
            raise ValueError("a tau-network needs a latent loss")
        if tau is not None and augment:
            raise ValueError("TransIP (tau) and TransAug (augment) are separate modes")
        self.model = model
        self.tau = tau
        self.latent_loss = latent_loss
        self.augment = augment
        self.settings = settings

    def forward(
        self, batch: Batch, rotations: torch.Tensor | None = None, create_graph: bool = True
    ) -> LossTerms:
        return compute_objective(
            self.model,
            batch,
            rotations,
            tau=self.tau,
            latent_loss=self.latent_loss,
            augment=self.augment,
            create_graph=create_graph,
            **self.settings,
        )

    @property
    def needs_rotations(self) -> bool:
        return self.tau is not None or self.augment

    def extra_repr(self) -> str:
        mode = "transip" if self.tau is not None else "transaug" if self.augment else "none"
        return f"mode={mode}, " + ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
