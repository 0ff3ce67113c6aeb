"""The training objective ``L = sum_k w_k L_k`` over named terms (TransIP, Eq. 4), and its module.

:func:`compute_objective` runs the passes the terms ask for, once, and hands every term the same
:class:`~transip.training.ObjectiveInputs`; the terms themselves are in ``_terms.py``.

- The batch's forward pass computes forces when a term needs them and the batch has labels.
- A term that needs the rotated copy (TransIP's latent term) gets ``f(R x)`` from a second forward
  pass on the rotated copy (``latent_pass="separate"``) or from the same pass as ``f(x)``
  (``"joint"``: originals and rotated copies packed as one batch of ``2B`` molecules, which share
  every weight read; forces are taken from the originals only).

The modes are not flags but parts: a ``tau`` module makes it TransIP, ``augment=True`` makes it TransAug
(the batch is rotated before the forward pass), neither is plain training. Both together is TransIP
with the task on the rotated copy: the energies and forces are measured on ``R x`` (the pass with
forces runs on the copy) while the latent term still compares ``tau(R, f(x))`` with ``f(R x)``
(``f(x)`` from an embedding pass without forces): the passes of TransIP, swapped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from transip.data import Batch
from transip.model import TransIPOutput
from transip.symmetry import rotate_batch

from ._terms import FORCES, ROTATED, TAU, ObjectiveInputs, Term


@dataclass
class LossTerms:
    """The objective's weighted total and its unweighted terms by name (``None``: not measured).

    ``terms["force"]`` reads a term; all tensors are scalars on the model's device.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor | None] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor | None:
        return self.parts[name]

    def detach(self) -> LossTerms:
        return LossTerms(
            self.total.detach(), {k: None if v is None else v.detach() for k, v in self.parts.items()}
        )


def compute_objective(
    model: nn.Module,
    batch: Batch,
    rotations: torch.Tensor | None = None,
    *,
    terms: Sequence[Term],
    tau: nn.Module | None = None,
    augment: bool = False,
    latent_pass: Literal["separate", "joint"] = "separate",
    latent_fraction: float = 1.0,
    create_graph: bool = True,
) -> LossTerms:
    """One evaluation of the training objective on a batch.

    Args:
        model: a TransIP model (``model(batch, compute_forces=..., training=...)`` and ``model.embed``).
        batch: labelled batch (energies required, forces optional).
        rotations: ``(B, 3, 3)`` one rotation per molecule; needed for TransIP and TransAug.
        terms: the weighted terms (:class:`~transip.training.EnergyTerm`, ...), summed in order.
        tau: the tau-network (TransIP mode), handed to the terms.
        augment: rotate the batch by ``rotations`` before the forward pass (TransAug); with a term
            that reads the rotated copy, the task terms see the copy ``R x`` and the latent term
            compares ``tau(R, f(x))`` with the copy's embeddings (module docstring).
        latent_pass: how the rotated copy is embedded when a term needs it: ``"separate"``, a
            second forward pass (``model.embed``); ``"joint"``, the same forward pass as the batch
            (one batch of ``2B`` molecules, forces from the originals' energies only). Same loss
            and gradients up to rounding; which is faster depends on the batch size
            (``docs/performance.md``).
        latent_fraction: embed the rotated copies of only the first ``ceil(f B)`` molecules (at
            least one) and measure the latent term on those; the rotated pass then costs about
            ``f`` of a full one. Batches are shuffled, so the part is a random subset. ``1``: all.
            Not with ``augment`` (the task terms then need the whole rotated batch).
        create_graph: keep the force graph for backpropagation (training); ``False`` for validation.

    Returns:
        :class:`LossTerms` with the weighted total and every term, unweighted, by name.
    """
    needs = frozenset().union(*(t.needs for t in terms))
    if batch.energy is None:
        raise ValueError("training needs energy labels for every molecule of the batch")
    if (ROTATED in needs or TAU in needs or augment) and rotations is None:
        raise ValueError("TransIP and TransAug need one rotation per molecule")
    if TAU in needs and tau is None:
        raise ValueError(
            f"the terms {[t.name for t in terms if TAU in t.needs]} apply tau: pass a tau-network"
        )
    if latent_pass not in ("separate", "joint"):
        raise ValueError(f"unknown latent_pass {latent_pass!r}; expected 'separate' or 'joint'")
    if not 0.0 < latent_fraction <= 1.0:
        raise ValueError(f"latent_fraction must be in (0, 1], got {latent_fraction}")
    if augment and latent_fraction < 1.0:
        raise ValueError(
            "latent_fraction < 1 does not combine with augment: the task needs every rotated molecule"
        )
    want_forces = batch.forces is not None and FORCES in needs
    if ROTATED in needs:
        m = max(1, math.ceil(latent_fraction * batch.num_molecules))
        part = batch.head(m)  # the whole batch when m == B
        rotated = rotate_batch(part, rotations[:m])
        # TransIP: the task on x and R x embedded; with augment, the task on R x and x embedded
        task, other = (rotated, batch) if augment else (batch, rotated)
        if latent_pass == "joint":
            out, other_node, other_graph = _joint_forward(model, task, other, want_forces, create_graph)
        else:
            out = model(task, compute_forces=want_forces, training=create_graph)
            other_node, other_graph = model.embed(other)
        inputs = ObjectiveInputs(model, task, out, rotations, tau)
        inputs.latent_batch = part if part is not batch else None
        if augment:
            inputs.original_node, inputs.original_graph = other_node, other_graph
            inputs.rotated_node, inputs.rotated_graph = out.node_embedding, out.graph_embedding
        else:
            inputs.rotated_node, inputs.rotated_graph = other_node, other_graph
    else:
        if augment:
            batch = rotate_batch(batch, rotations)
        out = model(batch, compute_forces=want_forces, training=create_graph)
        inputs = ObjectiveInputs(model, batch, out, rotations, tau)
    parts = {t.name: t(inputs) for t in terms}
    weighted = [t.weight * parts[t.name] for t in terms if parts[t.name] is not None]
    if not weighted:
        raise ValueError(f"no term of {[t.name for t in terms]} could be evaluated on this batch")
    total = weighted[0]
    for w in weighted[1:]:
        total = total + w
    return LossTerms(total, parts)


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


#: the ``train.csv`` columns ``loss_<name>`` written in every mode (empty where a term is absent),
#: so that runs of all modes share one layout; further terms add their own columns after these
LOGGED_TERMS = ("energy", "force", "equivariance")


class TransIPObjective(nn.Module):
    """The model, the optional tau-network and the objective's terms as one module.

    Wrapping both trainable parts in one module gives one parameter list for the optimiser and the
    EMA, and one module to hand to ``DistributedDataParallel``. ``forward`` is
    :func:`compute_objective`.

    Args:
        model: the TransIP model.
        terms: the weighted terms, built once (:func:`~transip.training.build_terms`).
        tau: tau-network (TransIP mode) or ``None``; a term must read it.
        augment: TransAug mode; with ``tau``, TransIP with the task on the rotated copy.
        latent_pass: ``"separate"`` or ``"joint"`` (:func:`compute_objective`).
        latent_fraction: the part of each batch with a rotated copy (:func:`compute_objective`).
    """

    def __init__(
        self,
        model: nn.Module,
        terms: Sequence[Term],
        tau: nn.Module | None = None,
        augment: bool = False,
        latent_pass: Literal["separate", "joint"] = "separate",
        latent_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        names = [t.name for t in terms]
        if not terms or len(set(names)) != len(names):
            raise ValueError(f"the objective needs terms with distinct names, got {names}")
        reads_rotated = any(ROTATED in t.needs for t in terms)
        if tau is not None and not reads_rotated:
            raise ValueError("a tau-network needs a term that reads the rotated copy (a LatentTerm)")
        self.model = model
        self.tau = tau
        self.terms = tuple(terms)
        self.augment = augment
        self.latent_pass = latent_pass
        self.latent_fraction = latent_fraction

    def forward(
        self, batch: Batch, rotations: torch.Tensor | None = None, create_graph: bool = True
    ) -> LossTerms:
        return compute_objective(
            self.model,
            batch,
            rotations,
            terms=self.terms,
            tau=self.tau,
            augment=self.augment,
            latent_pass=self.latent_pass,
            latent_fraction=self.latent_fraction,
            create_graph=create_graph,
        )

    def term(self, name: str) -> Term | None:
        """The term called ``name``, or ``None``."""
        return next((t for t in self.terms if t.name == name), None)

    @property
    def logged_terms(self) -> tuple[str, ...]:
        """The names of the ``loss_<name>`` columns of ``train.csv`` (:data:`LOGGED_TERMS` first)."""
        return tuple(dict.fromkeys([*LOGGED_TERMS, *(t.name for t in self.terms)]))

    @property
    def needs_rotations(self) -> bool:
        return self.augment or any(t.needs & {ROTATED, TAU} for t in self.terms)

    def extra_repr(self) -> str:
        mode = "transaug" if self.augment else "none"
        if self.tau is not None:
            mode = "transip+augment" if self.augment else "transip"
        terms = ", ".join(f"{t.name}={t.weight:g}" for t in self.terms)
        part = f", latent_fraction={self.latent_fraction:g}" if self.latent_fraction < 1 else ""
        return f"mode={mode}, terms=({terms}), latent_pass={self.latent_pass}{part}"
