"""How a group acts on a molecule: the one place that defines it.

Positions rotate about the centre of mass (so the rotated copy stays centred where the original
was), forces rotate as vectors, the cell rotates row-wise, energies and all scalars are unchanged.
Every caller (TransAug, the latent-equivariance pairs, the probes) goes through these functions.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from ase.data import atomic_masses

from .data import Batch
from .model import centre_of_mass


def rotate_vectors(vectors: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """``R_t v_t`` for every row: each vector rotated by its own matrix.

    Shape:
        - vectors: ``(T, 3)``, rotations: ``(T, 3, 3)``
        - output: ``(T, 3)``
    """
    return torch.einsum("tij,tj->ti", rotations, vectors)


def molecule_centres(batch: Batch) -> torch.Tensor:
    """Each molecule's centre of mass ``(B, 3)`` (ASE's masses; :func:`transip.model.centre_of_mass`)."""
    x = batch.positions
    masses = torch.as_tensor(atomic_masses, dtype=x.dtype, device=x.device)[batch.numbers]  # (T,)
    return centre_of_mass(x, masses, batch.batch, batch.num_molecules)


def rotate_batch(batch: Batch, rotations: torch.Tensor) -> Batch:
    """Rotate every molecule of a packed batch by its own rotation.

    Args:
        batch: packed batch with ``B`` molecules.
        rotations: ``(B, 3, 3)`` rotation matrices (any orthogonal matrices act the same way).

    Returns:
        A new batch; positions rotated about each molecule's centre of mass, forces rotated,
        everything else shared with the input.
    """
    r = rotations.to(batch.positions.dtype)[batch.batch]  # (T, 3, 3)
    com = molecule_centres(batch)[batch.batch]  # (T, 3)
    positions = rotate_vectors(batch.positions - com, r) + com
    forces = None
    if batch.forces is not None:
        forces = rotate_vectors(batch.forces, r.to(batch.forces.dtype))
    return replace(batch, positions=positions, forces=forces)
