"""How a group acts on a molecule: the one place that defines it.

Positions rotate about the centre of mass (so the rotated copy stays centred where the original
was), forces rotate as vectors, the cell rotates row-wise, energies and all scalars are unchanged.
Every caller (TransAug, the latent-equivariance pairs, the probes) goes through these functions.
"""

from __future__ import annotations

import torch

from .data import Batch


def _centre(positions: torch.Tensor, numbers: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Per-molecule centre of mass ``(B, 3)`` of packed positions."""
    from ase.data import atomic_masses

    masses = torch.as_tensor(atomic_masses, dtype=positions.dtype, device=positions.device)[numbers]
    total = torch.zeros(n, dtype=positions.dtype, device=positions.device).index_add_(0, index, masses)
    weighted = torch.zeros(n, 3, dtype=positions.dtype, device=positions.device)
    weighted.index_add_(0, index, positions * masses[:, None])
    return weighted / total[:, None]


def rotate_batch(batch: Batch, rotations: torch.Tensor) -> Batch:
    """Rotate every molecule of a packed batch by its own rotation.

    Args:
        batch: packed batch with ``B`` molecules.
        rotations: ``(B, 3, 3)`` rotation matrices (any orthogonal matrices act the same way).

    Returns:
        A new batch; positions rotated about each molecule's centre of mass, forces rotated,
        everything else shared with the input.
    """
    from dataclasses import replace

    r = rotations.to(batch.positions.dtype)[batch.batch]  # (T, 3, 3)
    com = _centre(batch.positions, batch.numbers, batch.batch, batch.num_molecules)[batch.batch]
    positions = torch.einsum("tij,tj->ti", r, batch.positions - com) + com
    forces = None
    if batch.forces is not None:
        forces = torch.einsum("tij,tj->ti", r.to(batch.forces.dtype), batch.forces)
    return replace(batch, positions=positions, forces=forces)
