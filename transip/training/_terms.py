"""The terms of the training objective: each a name, a weight and a function of the model's outputs.

The objective is ``L = sum_k w_k L_k`` over a list of terms (TransIP, Eq. 4, has three):

- :class:`EnergyTerm`, ``L_E``: *total* energies, whose difference equals the difference of
  referenced energies (the element references cancel), divided by an energy unit ``s`` (default
  the model's ``energy_scale``): ``"mse"`` is ``mean_b ((E_pred - E_true) / s)^2``;
  ``"per_atom_mse"`` divides each error by the atom count first.
- :class:`ForceTerm`, ``L_F``: the paper's force norm, ``"l2"``: ``mean_i ||F_pred_i - F_true_i||_2
  / s_F`` over atoms, or ``"squared"``: ``mean_i ||F_pred_i - F_true_i||^2 / s_F^2``, with a force
  unit ``s_F`` (eV/Å; default the model's ``energy_scale`` read per Å). Only where the batch has
  forces.
- :class:`LatentTerm`, ``L_equiv`` (TransIP mode): the latent loss of :mod:`latentequiv.losses`
  between ``tau(R, f(x))`` and ``f(R x)``, on per-atom (``"node"``) or pooled (``"graph"``)
  embeddings.
- :class:`ConsistencyTerm`, ``L_cons`` (TransIP mode, optional): the model's energy readout applied
  to ``tau(R, f(x))`` must give the molecule's energy, ``E_cons = readout(tau(R, f(x)))``, compared
  with the label like ``L_E``.

A term reads an :class:`ObjectiveInputs` (what one evaluation of the model produced) and returns
an unweighted scalar, or ``None`` when the batch lacks what it measures. It declares what it reads
(``needs``) so that the objective runs only the passes some term asks for.

Adding a term: a small class with ``name``, ``weight``, ``needs``, ``task`` and ``__call__`` (see
:class:`Term`), one config key for its weight, one line in :func:`transip.training.build_terms`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import nn

from transip.data import Batch
from transip.model import TransIPOutput

LatentLoss = Callable[..., torch.Tensor]

#: what a term may read beyond the outputs on the batch: the forces, the rotated copy's embeddings,
#: tau applied to the batch's embeddings (the rotations and a tau-network)
FORCES, ROTATED, TAU = "forces", "rotated", "tau"


@dataclass
class ObjectiveInputs:
    """What the terms read: one evaluation of the model on a batch (and its rotated copy).

    Attributes:
        model: the model (its ``energy_scale`` is the default unit).
        batch: the labelled batch the outputs belong to (already rotated in TransAug mode, and in
            TransIP mode with the task on the rotated copy).
        output: ``model(batch)``; ``forces`` only when a term needs them and the batch has labels.
        rotations: ``(B, 3, 3)``, one per molecule (TransIP and TransAug), else ``None``.
        tau: the tau-network (TransIP mode), else ``None``.
        rotated_node, rotated_graph: ``(T, D)`` and ``(B, D)`` embeddings of the rotated copy
            ``f(R x)`` when a term needs them, else ``None``.
        original_node, original_graph: the embeddings ``f(x)`` of the unrotated molecules when
            ``output`` is not theirs (the task on the rotated copy), else ``None``: ``f(x)`` is then
            ``output``'s (:meth:`source`).
        latent_batch: the molecules whose rotated copy was embedded, the first ``m`` of ``batch``
            (``equivariance.latent_fraction``); ``None``: all of them.
    """

    model: nn.Module
    batch: Batch
    output: TransIPOutput
    rotations: torch.Tensor | None = None
    tau: nn.Module | None = None
    rotated_node: torch.Tensor | None = None
    rotated_graph: torch.Tensor | None = None
    original_node: torch.Tensor | None = None
    original_graph: torch.Tensor | None = None
    latent_batch: Batch | None = None

    def source(self, target: Literal["node", "graph"]) -> torch.Tensor:
        """``f(x)``, the embeddings tau acts on: ``(T, D)`` for ``"node"``, ``(B, D)`` for ``"graph"``."""
        if target == "node":
            return self.output.node_embedding if self.original_node is None else self.original_node
        return self.output.graph_embedding if self.original_graph is None else self.original_graph


class Term(Protocol):
    """One part of the objective.

    Attributes:
        name: the term's name; the training log writes its mean as ``loss_<name>``.
        weight: its lambda in the weighted sum.
        needs: what it reads beyond the energies and embeddings of the batch (:data:`FORCES`,
            :data:`ROTATED`).
        task: a task term is also measured on the validation set (with the batch's own outputs
            only), and the validation ``loss`` is the weighted sum of the task terms.
    """

    name: str
    weight: float
    needs: frozenset[str]
    task: bool

    def __call__(self, inputs: ObjectiveInputs) -> torch.Tensor | None:
        """The unweighted scalar, or ``None`` when the batch lacks what the term measures."""

    def size(self, batch: Batch) -> int:
        """How many items the term's mean runs over (to add batches up on the validation set)."""


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
        scale: the energy unit (eV).
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


@dataclass(frozen=True)
class EnergyTerm:
    """``L_E`` (module docstring); ``unit`` in eV, ``None``: the model's ``energy_scale``."""

    weight: float
    kind: Literal["mse", "per_atom_mse"] = "mse"
    unit: float | None = None
    name: str = "energy"
    needs: frozenset[str] = frozenset()
    task: bool = True

    def __call__(self, inputs: ObjectiveInputs) -> torch.Tensor | None:
        b = inputs.batch
        if b.energy is None:
            return None
        unit = inputs.model.energy_scale if self.unit is None else self.unit
        return energy_loss(inputs.output.energy, b.energy, b.num_atoms, unit, self.kind)

    def size(self, batch: Batch) -> int:
        return batch.num_molecules


@dataclass(frozen=True)
class ForceTerm:
    """``L_F`` (module docstring); ``unit`` in eV/Å, ``None``: the model's ``energy_scale`` per Å.

    With ``weight == 0`` the forces are not computed in training (the term is ``None`` there) but
    still measured on the validation set."""

    weight: float
    kind: Literal["l2", "squared"] = "l2"
    unit: float | None = None
    name: str = "force"
    task: bool = True

    @property
    def needs(self) -> frozenset[str]:
        return frozenset({FORCES}) if self.weight != 0 else frozenset()

    def __call__(self, inputs: ObjectiveInputs) -> torch.Tensor | None:
        forces, true = inputs.output.forces, inputs.batch.forces
        if forces is None or true is None:
            return None
        unit = inputs.model.energy_scale if self.unit is None else self.unit
        return force_loss(forces, true, unit, self.kind)

    def size(self, batch: Batch) -> int:
        return 0 if batch.forces is None else batch.forces.shape[0]


@dataclass(frozen=True)
class LatentTerm:
    """``L_equiv`` (module docstring): ``loss(tau, z, z_rotated, g, mask=...)`` on the embeddings.

    Args:
        weight: ``lambda_equiv``.
        loss: e.g. :func:`latentequiv.losses.latent_equivariance_loss`.
        target: per-atom (``"node"``) or pooled (``"graph"``) embeddings.
        padded: for ``"node"``, pass padded ``(B, N, D)`` tokens with a mask instead of packed
            ``(T, D)`` tokens (the contrastive loss needs it: its items must be molecules).
    """

    weight: float
    loss: LatentLoss
    target: Literal["node", "graph"] = "node"
    padded: bool = False
    name: str = "equivariance"
    needs: frozenset[str] = frozenset({ROTATED})
    task: bool = False

    def __call__(self, inputs: ObjectiveInputs) -> torch.Tensor | None:
        x, tau = inputs, inputs.tau
        # the molecules with an embedded rotated copy: the first m of the batch (or all)
        b = x.batch if x.latent_batch is None else x.latent_batch
        m, t = b.num_molecules, b.positions.shape[0]
        rotations = x.rotations[:m]
        if self.target == "graph":
            g = rotations.to(x.rotated_graph.dtype)  # (m, 3, 3)
            return self.loss(tau, x.source("graph")[:m], x.rotated_graph, g)
        if self.padded:
            z, mask = pad_tokens(x.source("node")[:t], b)
            z_rot, _ = pad_tokens(x.rotated_node, b)
            return self.loss(tau, z, z_rot, rotations.to(z.dtype), mask=mask)
        g = rotations.to(x.rotated_node.dtype)[b.batch]  # (t, 3, 3)
        return self.loss(tau, x.source("node")[:t], x.rotated_node, g)

    def size(self, batch: Batch) -> int:
        return batch.num_molecules if self.target == "graph" or self.padded else batch.positions.shape[0]


@dataclass(frozen=True)
class ConsistencyTerm:
    """``L_cons``: the energy read out of ``tau(R, f(x))`` against the molecule's label.

    A rotated molecule has the energy of the molecule, so if ``tau(R, f(x))`` stands for
    ``f(R x)``, the model's own readout (:meth:`transip.model.TransIP.readout`) applied to it must
    give the labelled energy:

    - ``target="node"``: ``z'_i = tau(R_b, z_i)`` for every atom ``i`` of molecule ``b``, then
      ``E_cons,b = scale * sum_i head(z'_i) + sum_i e_ref[Z_i]`` (sum pooling; with mean pooling
      ``scale * head(mean_i z'_i) + ...``);
    - ``target="graph"``: ``E_cons,b = scale * head(tau(R_b, mean_i z_i)) + ...`` (mean pooling only:
      with sum pooling the head reads atoms, and tau of the pooled embedding says nothing about them).

    ``L_cons = energy_loss(E_cons, E_true)`` with the energy term's form (``kind``) and unit. The
    gradient reaches the head, tau and the encoder.

    Args:
        weight: ``lambda_cons``.
        kind, unit: as :class:`EnergyTerm`'s (``unit=None``: the model's ``energy_scale``).
        target: the embeddings tau acts on.
    """

    weight: float
    kind: Literal["mse", "per_atom_mse"] = "mse"
    unit: float | None = None
    target: Literal["node", "graph"] = "node"
    name: str = "consistency"
    needs: frozenset[str] = frozenset({TAU})
    task: bool = False

    def __call__(self, inputs: ObjectiveInputs) -> torch.Tensor | None:
        b, model, tau = inputs.batch, inputs.model, inputs.tau
        if b.energy is None:
            return None
        z = inputs.source(self.target)  # (T, D) or (B, D)
        g = inputs.rotations.to(z.dtype)  # (B, 3, 3)
        if self.target == "graph":
            energy = model.readout(None, tau(g, z), b)  # (B,)
        else:
            node = tau(g[b.batch], z)  # (T, D): each atom turned by its molecule's rotation
            energy = model.readout(node, None, b)  # (B,); mean pooling reads mean_i node_i
        unit = model.energy_scale if self.unit is None else self.unit
        return energy_loss(energy, b.energy, b.num_atoms, unit, self.kind)

    def size(self, batch: Batch) -> int:
        return batch.num_molecules
