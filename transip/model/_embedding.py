"""Atom tokens and the molecule-level charge/spin bias (paper, Section 3.1).

``h_i = concat(phi_Z(Z_i), phi_x(x_i - x_com))`` where ``x_com`` is the molecule's centre of mass:
centring makes every token, hence the energy, exactly translation invariant.
``b = psi_q(q) + psi_s(s)`` is added to every token of the molecule at the input of every layer.
"""

from __future__ import annotations

import torch
from ase.data import atomic_masses
from torch import nn


def centre_of_mass(
    positions: torch.Tensor, masses: torch.Tensor, batch: torch.Tensor, num_molecules: int
) -> torch.Tensor:
    """Mass-weighted centre of each molecule of a packed batch.

    Args:
        positions: packed coordinates.
        masses: per-atom masses (any unit).
        batch: molecule index of each atom.
        num_molecules: ``B``.

    Shape:
        - positions: ``(T, 3)``, masses: ``(T,)``, batch: ``(T,)``
        - output: ``(B, 3)``
    """
    masses = masses.to(positions.dtype)
    total = positions.new_zeros(num_molecules).index_add_(0, batch, masses)  # (B,)
    moment = positions.new_zeros(num_molecules, 3).index_add(0, batch, positions * masses[:, None])
    return moment / total.clamp_min(torch.finfo(positions.dtype).tiny)[:, None]


class AtomTokens(nn.Module):
    """Token of each atom from its atomic number and centred position.

    Args:
        d_model: output width ``D``.
        species_dim: width of the atomic-number embedding table.
        position_dim: width of the coordinate MLP's output.
        max_z: largest atomic number.

    Shape:
        - numbers: ``(T,)``, positions: ``(T, 3)`` already centred
        - output: ``(T, D)``
    """

    def __init__(self, d_model: int, species_dim: int, position_dim: int, max_z: int = 118):
        super().__init__()
        self.species = nn.Embedding(max_z + 1, species_dim)
        self.position = nn.Sequential(
            nn.Linear(3, position_dim), nn.GELU(), nn.Linear(position_dim, position_dim)
        )
        width = species_dim + position_dim
        self.project = nn.Linear(width, d_model) if width != d_model else None
        # masses for the centre of mass; float64, index 0 is ASE's dummy element
        masses = torch.as_tensor(atomic_masses[: max_z + 1], dtype=torch.float64)
        self.register_buffer("masses", masses, persistent=False)

    def forward(self, numbers: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.species(numbers), self.position(positions)], dim=-1)  # (T, Dz + Dx)
        return h if self.project is None else self.project(h)


class GlobalBias(nn.Module):
    """``psi_q(q) + psi_s(s)``: learned embeddings of total charge and spin multiplicity.

    Args:
        d_model: output width ``D``.
        charge_range: inclusive ``(min, max)`` charges with an embedding row.
        spin_range: inclusive ``(min, max)`` multiplicities ``2S + 1`` with an embedding row.

    Shape:
        - charge, spin: ``(B,)`` int64
        - output: ``(B, D)``

    Raises:
        ValueError: a charge or spin outside its range (checked on every call unless
            ``check=False``: :class:`~transip.model.TransIP` checks its batches itself, together
            with everything else, in one read of the device).
    """

    def __init__(self, d_model: int, charge_range: tuple[int, int], spin_range: tuple[int, int]):
        super().__init__()
        self.charge_range = tuple(charge_range)
        self.spin_range = tuple(spin_range)
        self.charge = nn.Embedding(charge_range[1] - charge_range[0] + 1, d_model)
        self.spin = nn.Embedding(spin_range[1] - spin_range[0] + 1, d_model)

    def forward(self, charge: torch.Tensor, spin: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        if check:
            self.check(charge, spin)
        return self.charge(charge - self.charge_range[0]) + self.spin(spin - self.spin_range[0])

    def check(self, charge: torch.Tensor, spin: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the molecules whose charge or spin has no embedding row."""
        _check_range("charge", charge, self.charge_range)
        _check_range("spin multiplicity", spin, self.spin_range)

    def extra_repr(self) -> str:
        return f"charge_range={self.charge_range}, spin_range={self.spin_range}"


def _check_range(name: str, values: torch.Tensor, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    bad = (values < lo) | (values > hi)
    if bool(bad.any()):
        raise ValueError(
            f"{name} {values[bad].tolist()} outside the model's range [{lo}, {hi}] "
            f"(molecules {bad.nonzero().flatten().tolist()}); widen TransIPConfig.{name.split()[0]}_range"
        )


def check_numbers(numbers: torch.Tensor, max_z: int) -> None:
    """Raise ``ValueError`` for atomic numbers outside ``1..max_z``."""
    bad = (numbers < 1) | (numbers > max_z)
    if bool(bad.any()):
        raise ValueError(f"atomic numbers {sorted(set(numbers[bad].tolist()))} outside 1..{max_z}")
