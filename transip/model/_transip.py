"""TransIP: atoms as tokens, a plain Transformer, a pooled energy and conservative forces.

Architecture (paper, Section 3.1 and Appendix A)::

    x_c   = x - x_com                                  centred positions, (T, 3)
    h     = concat(phi_Z(Z), phi_x(x_c))               tokens, (T, D)
    h    += W sum_{j != i} phi(r_ij) fc(r_ij)           optional RBF atom features
    h    += W' sum_{j != i} e(Z_j) (x) phi(r_ij) fc(r_ij) optional neighbour-element RBF features
    h    += W'' vec(G_i)                               optional three-body (angular) features
    b     = psi_q(q) + psi_s(s)                        per molecule, (B, D)
    h     = Block_l(h + b, attention bias w_l . phi(r_ij)) for l = 1..L
    h     = LayerNorm(h)                               node embeddings, (T, D)
    E     = scale * sum_i head(h_i) + sum_i e_ref[Z_i]  (or head(mean_i h_i) with mean pooling)
    F     = -dE/dx                                     autograd, (T, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from ..data import Batch, HostSummary
from ._angular import AngularFeatures
from ._attention import AttentionLayout
from ._block import TransformerBlock, split_layers
from ._config import TransIPConfig
from ._embedding import AtomTokens, GlobalBias, centre_of_mass, check_numbers
from ._rbf import RadialBasis
from ._readout import EnergyHead, ReferencedEnergy, segment_pool


@dataclass
class TransIPOutput:
    """What :class:`TransIP` returns for a batch.

    Attributes:
        energy: ``(B,)`` float64 total energies, eV, element references included.
        forces: ``(T, 3)`` forces, eV/Å, in the dtype of ``batch.positions``; ``None`` when not asked.
        node_embedding: ``(T, D)`` final (normalised) atom embeddings.
        graph_embedding: ``(B, D)`` mean of each molecule's atom embeddings.
    """

    energy: torch.Tensor
    forces: torch.Tensor | None
    node_embedding: torch.Tensor
    graph_embedding: torch.Tensor

    def detach(self) -> TransIPOutput:
        return replace(self, **{f.name: _detach(getattr(self, f.name)) for f in fields(self)})


def _detach(x):
    return x.detach() if isinstance(x, torch.Tensor) else x


class TransIP(nn.Module):
    """The TransIP interatomic potential.

    Args:
        config: the hyper-parameters.
        element_references: optional per-element reference energies, a
            :class:`transip.data.ElementReferences` or a ``(119,)`` tensor (see
            :meth:`set_element_references`).

    Example:
        >>> from transip.data import Batch, Molecule
        >>> model = TransIP(TransIPConfig.preset("tiny"))
        >>> water = Molecule(positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], numbers=[8, 1, 1])
        >>> out = model(Batch.from_molecules([water, water]))
        >>> out.energy.shape, out.energy.dtype, out.forces.shape
        (torch.Size([2]), torch.float64, torch.Size([6, 3]))
    """

    def __init__(self, config: TransIPConfig, element_references=None):
        super().__init__()
        c = self.config = config
        species_dim, position_dim = c.token_dims
        self.tokens = AtomTokens(c.d_model, species_dim, position_dim, c.max_z)
        self.rbf = RadialBasis(c.num_rbf, c.rbf_cutoff) if c.num_rbf > 0 else None
        self.rbf_embed = nn.Linear(c.num_rbf, c.d_model) if c.num_rbf > 0 else None
        s = c.neighbour_channels
        self.neighbour_species = nn.Embedding(c.max_z + 1, s) if s > 0 else None
        self.neighbour_embed = nn.Linear(s * c.num_rbf, c.d_model) if s > 0 else None
        p = c.angular_channels
        self.angular = AngularFeatures(c.num_rbf, s, p, c.d_model) if p > 0 else None
        self.global_bias = GlobalBias(c.d_model, c.charge_range, c.spin_range)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.mlp_ratio, c.num_rbf, c.dropout, c.attn_dropout)
            for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = EnergyHead(c.d_model)
        self.force_head = nn.Linear(c.d_model, 3) if c.direct_forces else None
        self.energy = ReferencedEnergy()
        self._compiled_blocks: tuple = ()  # a tuple, not a ModuleList: no extra state_dict entries
        if element_references is not None:
            self.set_element_references(element_references)

    def compile_blocks(self, enable: bool = True, **options) -> TransIP:
        """Run the Transformer blocks through :func:`torch.compile` (in place; returns ``self``).

        Only passes that need no second derivative use the compiled blocks: inference, energy and
        forces with ``training=False`` (what the ASE calculator does), and training without a force
        loss. Conservative-force training keeps the eager blocks, because torch.compile's autograd
        has no double backward (``torch.compile with aot_autograd does not currently support double
        backward``). Weights are shared with the eager blocks and the state dict is unchanged.

        Measured on a 2-core CPU (``docs/performance.md``): it does not pay there (TransIP-S
        energy + forces at 0.64-0.68x the eager speed, 17 s to compile), so it is off by default.

        Args:
            enable: ``False`` returns to the eager blocks.
            **options: passed to :func:`torch.compile` (``mode``, ``backend``, ``dynamic``...).
        """
        self._compiled_blocks = tuple(torch.compile(b, **options) for b in self.blocks) if enable else ()
        return self

    def forward(self, batch: Batch, *, compute_forces: bool = True, training: bool = False) -> TransIPOutput:
        """Energies, forces and embeddings of a packed batch.

        Args:
            batch: the molecules.
            compute_forces: also return forces (``-dE/dx``, or the direct head's prediction).
            training: keep the autograd graph of all outputs so a loss on them can be
                back-propagated (conservative forces then use ``create_graph=True`` and the
                double-differentiable attention path). With ``False`` all outputs are detached.
        """
        conservative = compute_forces and self.force_head is None
        positions = batch.positions
        if conservative and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        with torch.set_grad_enabled(torch.is_grad_enabled() or conservative):
            node = self._encode(
                positions, batch, double_backward=conservative and training, param_grads=training
            )
            graph = segment_pool(node, batch.batch, batch.num_molecules, "mean")  # (B, D)
            energy = self.readout(node, graph, batch)  # (B,) float64
            forces = None
            if conservative:
                (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=training)
                forces = -grad  # (T, 3)
            elif compute_forces:
                forces = self.force_head(node).to(positions.dtype)
        out = TransIPOutput(energy, forces, node, graph)
        return out if training else out.detach()

    def embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Node ``(T, D)`` and graph ``(B, D)`` embeddings, differentiable, without forces."""
        node = self._encode(batch.positions, batch)
        return node, segment_pool(node, batch.batch, batch.num_molecules, "mean")

    def _encode(
        self,
        positions: torch.Tensor,
        batch: Batch,
        *,
        double_backward: bool = False,
        param_grads: bool = True,
    ) -> torch.Tensor:
        c, num_molecules = self.config, batch.num_molecules
        layout = self.plan(batch)
        x = positions.to(self.norm.weight.dtype)  # the model's precision; grads flow back in the input's
        com = centre_of_mass(x, self.tokens.masses[batch.numbers], batch.batch, num_molecules)  # (B, 3)
        x = x - com[batch.batch]  # (T, 3)
        h = self.tokens(batch.numbers, x)  # (T, D)
        biases = [None] * c.n_layers
        if self.rbf is not None:
            # all layers' (H, K) logit-bias maps at once; the (N, N, K) features are never stored
            weight = torch.cat([block.attn.rbf_bias.weight for block in self.blocks])  # (L H, K)
            # detached outputs never reach the parameters: spare the custom backward their gradient
            weight = weight if param_grads else weight.detach()
            e = None if self.neighbour_species is None else self.neighbour_species(batch.numbers)  # (T, S)
            pair_bias, atom_phi, species_phi, gram = self.rbf.projected(x, layout, weight, e, self.angular)
            h = h + self.rbf_embed(atom_phi)  # atom_phi: (T, K); pair_bias: [(B_b, N_b, N_b, L H)]
            if species_phi is not None:
                h = h + self.neighbour_embed(species_phi.flatten(1))  # (T, S K) -> (T, D)
            if gram is not None:
                h = h + self.angular(gram)  # (T, P P) -> (T, D)
            biases = split_layers(pair_bias, c.n_layers)  # L lists of [(B_b, H, N_b, N_b)]
        bias = self.global_bias(batch.charge, batch.spin, check=False)[batch.batch]  # (T, D)
        blocks = self.blocks if double_backward or not self._compiled_blocks else self._compiled_blocks
        for block, logits in zip(blocks, biases, strict=True):
            h = block(h + bias, layout, logits, double_backward=double_backward)
        return self.norm(h)

    def readout(self, node: torch.Tensor | None, graph: torch.Tensor | None, batch: Batch) -> torch.Tensor:
        """Total energies from embeddings: ``scale * sum_i head(node_i) + sum_i e_ref[Z_i]`` (sum
        pooling) or ``scale * head(graph) + sum_i e_ref[Z_i]`` (mean pooling).

        The readout of :meth:`forward`, usable on other embeddings than the model's own (e.g. on
        transformed ones in a training objective).

        Args:
            node: ``(T, D)`` atom embeddings; read with sum pooling (``None`` allowed with mean).
            graph: ``(B, D)`` molecule embeddings; read with mean pooling (``None``: the mean of
                ``node``).
            batch: the molecules (atomic numbers and molecule index of every atom).

        Returns:
            ``(B,)`` float64 total energies, eV.
        """
        if self.config.pooling == "sum":
            if node is None:
                raise ValueError("sum pooling reads the atom embeddings: node must be given")
            raw = segment_pool(self.head(node), batch.batch, batch.num_molecules, "sum")  # (B,)
        else:
            if graph is None:
                graph = segment_pool(node, batch.batch, batch.num_molecules, "mean")  # (B, D)
            raw = self.head(graph)  # (B,)
        return self.energy(raw, batch.numbers, batch.batch, batch.num_molecules)

    def plan(self, batch: Batch) -> AttentionLayout:
        """Check the batch against the model's ranges and bucket its molecules for attention.

        Everything the host needs is the molecule offsets (for the layout) and the extremes of
        atomic numbers, charges and spins (for the checks). A batch from
        :meth:`Batch.from_molecules` carries them on the host (``batch.host``), so the pass reads
        nothing from the device; otherwise they come back in **one** small read. The detailed
        error messages are only computed when a value is out of range.

        Raises:
            ValueError: an atomic number outside ``1..max_z``, a charge or spin multiplicity outside
                the configured ranges, or a molecule longer than ``max_atoms``.
        """
        c = self.config
        h = batch.host
        if h is None:  # one read: the offsets and the extremes, as a summary of the batch
            extremes = [v for t in (batch.numbers, batch.charge, batch.spin) for v in torch.aminmax(t)]
            values = torch.cat([batch.ptr, torch.stack(extremes).to(batch.ptr)]).tolist()
            z_lo, z_hi, q_lo, q_hi, s_lo, s_hi = values[-6:]
            h = HostSummary(tuple(values[:-6]), (z_lo, z_hi), (q_lo, q_hi), (s_lo, s_hi))
        (z_lo, z_hi), (q_lo, q_hi), (s_lo, s_hi) = h.numbers, h.charge, h.spin
        if z_lo < 1 or z_hi > c.max_z:
            check_numbers(batch.numbers, c.max_z)
        if not (c.charge_range[0] <= q_lo and q_hi <= c.charge_range[1]) or not (
            c.spin_range[0] <= s_lo and s_hi <= c.spin_range[1]
        ):
            self.global_bias.check(batch.charge, batch.spin)
        if h.largest > c.max_atoms:
            raise ValueError(f"a molecule has {h.largest} atoms; the context length is {c.max_atoms}")
        return AttentionLayout.from_offsets(
            list(h.offsets), device=batch.ptr.device, growth=c.bucket_growth, slack=c.bucket_slack
        )

    @property
    def energy_scale(self) -> torch.Tensor:
        """``()`` float64 buffer: the head predicts referenced energies in this unit (eV)."""
        return self.energy.scale

    def set_energy_scale(self, scale: float) -> None:
        """Set the head's energy unit (e.g. the RMS of referenced training energies)."""
        if not float(scale) > 0:
            raise ValueError(f"energy scale must be positive, got {scale}")
        self.energy.scale.fill_(float(scale))

    @property
    def element_energies(self) -> torch.Tensor:
        """``(119,)`` float64 reference energy per atomic number, eV."""
        return self.energy.element_energies

    def set_element_references(self, refs) -> None:
        """Set the per-element reference energies added to every prediction.

        Args:
            refs: a :class:`transip.data.ElementReferences` (its ``energies``) or anything
                ``torch.as_tensor`` turns into ``(119,)`` values in eV, indexed by atomic number.
        """
        values = torch.as_tensor(getattr(refs, "energies", refs), dtype=torch.float64)
        target = self.energy.element_energies
        if values.shape != target.shape:
            raise ValueError(
                f"element references must have shape {tuple(target.shape)}, got {tuple(values.shape)}"
            )
        target.copy_(values.to(target.device))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"d_model={c.d_model}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
            f"num_rbf={c.num_rbf}, pooling={c.pooling}"
        )
