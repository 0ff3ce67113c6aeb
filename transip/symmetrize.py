"""Symmetry at inference time: predict a molecule in several orientations and combine them.

TransIP is not rotation-equivariant by construction; its predictions change slightly with the
orientation of the input. Four modes (:class:`Symmetry`, spelled as on the command line):

- ``"none"``: the model as it is, one pass.
- ``"random"``: one fresh Haar rotation per call (per molecule). No orientation is preferred, so
  over many calls (an MD run) the symmetry error averages out instead of acting as a fixed bias.
- ``"average:K"``: the mean over ``K`` Haar rotations ``R_k``,
  ``E(x) = 1/K sum_k E_m(R_k x)``, ``F(x) = 1/K sum_k R_k^T F_m(R_k x)``; the rotations are fixed
  for the call, so ``F = -dE/dx`` exactly. The symmetry error shrinks like ``1/sqrt(K)``.
- ``"frames"``: exact frame averaging over the 4 proper principal-axes frames
  (:func:`latentequiv.frames.pca_frames`): ``E(x) = 1/4 sum_k E_m(g_k(x)^T x)`` is exactly
  invariant, and its forces, ``-dE/dx`` with the derivative taken through the frames, are exactly
  equivariant and conservative.

With ``K >= 2`` orientations (``average:K``, ``frames``) the spread of the per-orientation
predictions is returned too (:class:`SymmetricPrediction`): a free uncertainty estimate.

Frames and their degeneracies. The frames are the eigenvectors of the positions' covariance (the
unweighted second moment about the centroid, not the inertia tensor), each axis up to sign; the 4
proper sign patterns are all averaged, so the sign ambiguity costs nothing. Two eigenvalues that
coincide leave the axes in their plane undefined:

- linear molecules (every diatomic): the two small eigenvalues are both 0. The positions in any
  frame depend only on the molecular axis, so energies stay exact; the two frames that share the
  axis' sign see the same input with opposite transverse axes, so the transverse parts of the
  forces cancel and forces stay exactly equivariant. The derivative through the undefined axes
  is 0/0, so for such molecules the frames are held fixed while differentiating (forces are then
  the rotated-back average, exact for a linear molecule up to the model's torque about the
  molecular axis, which is zero).
- symmetric tops (exact NH3, CH4, benzene geometries): the frame inside the degenerate plane is
  whatever the eigensolver returns, so the result is not exactly invariant there; near such
  geometries the frames, and hence the prediction, change fast. MD frames are never exactly
  symmetric; every molecule of the bundled datasets is exact to round-off (tested).

A gap counts as degenerate below ``DEGENERATE_GAP`` times the largest eigenvalue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from latentequiv.frames import pca_frames, principal_axes
from latentequiv.groups import SO3

from .data import Batch
from .symmetry import rotate_batch, rotate_vectors

__all__ = ["DEGENERATE_GAP", "SymmetricPrediction", "Symmetry", "orientations", "symmetric_predict"]

#: relative eigenvalue gap under which a molecule's frames are held fixed when differentiating
DEGENERATE_GAP = 1e-6

Kind = Literal["none", "random", "average", "frames"]


@dataclass(frozen=True)
class Symmetry:
    """How predictions are symmetrised; :meth:`parse` reads ``"none" | "random" | "average:K" | "frames"``."""

    kind: Kind = "none"
    k: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("none", "random", "average", "frames"):
            raise ValueError(f"unknown symmetry {self.kind!r}: none, random, average:K or frames")
        if self.kind == "average" and self.k < 1:
            raise ValueError(f"symmetry average:K needs K >= 1, got {self.k}")

    @classmethod
    def parse(cls, spec: str | Symmetry | None) -> Symmetry:
        if spec is None:
            return cls()
        if isinstance(spec, Symmetry):
            return spec
        m = re.fullmatch(r"average:(\d+)", spec.strip())
        if m:
            return cls("average", int(m.group(1)))
        if spec.strip() in ("none", "random", "frames"):
            return cls(spec.strip())  # type: ignore[arg-type]
        raise ValueError(f"unknown symmetry {spec!r}: none, random, average:K (e.g. average:8) or frames")

    @property
    def copies(self) -> int:
        """Model evaluations per molecule."""
        return {"none": 1, "random": 1, "average": self.k, "frames": 4}[self.kind]

    def __str__(self) -> str:
        return f"average:{self.k}" if self.kind == "average" else self.kind


@dataclass(frozen=True)
class SymmetricPrediction:
    """What :func:`symmetric_predict` returns (detached; energies float64, eV and eV/Å).

    Attributes:
        energy: ``(B,)`` energies.
        forces: ``(T, 3)`` forces, or ``None``.
        energy_spread: ``(B,)`` standard deviation of the per-orientation energies (``None`` for
            one orientation).
        force_spread: ``(T,)`` per atom, ``sqrt(1/K sum_k |f_k - mean f|^2)`` of the rotated-back
            per-orientation forces (``None`` for one orientation or without forces).
        copies: orientations per molecule.
    """

    energy: torch.Tensor
    forces: torch.Tensor | None
    energy_spread: torch.Tensor | None
    force_spread: torch.Tensor | None
    copies: int


def orientations(
    batch: Batch, symmetry: Symmetry, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The rotations applied to each molecule, ``(B, K, 3, 3)`` in the positions' dtype.

    Frames are ``g_k^T`` (each molecule moved into its frames), differentiable in the positions.
    """
    x = batch.positions
    B, K = batch.num_molecules, symmetry.copies
    if symmetry.kind == "none":
        return torch.eye(3, dtype=x.dtype, device=x.device).expand(B, 1, 3, 3)
    if symmetry.kind in ("random", "average"):
        r = SO3().sample(B * K, generator=generator, dtype=torch.float64)
        return r.to(device=x.device, dtype=x.dtype).reshape(B, K, 3, 3)
    padded, mask = _padded(batch)  # (B, N, 3), (B, N)
    padded = padded.double()
    values, _ = principal_axes(padded.detach(), mask)  # (B, 3) decreasing
    gaps = (values[:, :-1] - values[:, 1:]).min(dim=1).values
    degenerate = gaps <= DEGENERATE_GAP * values[:, 0].abs().clamp(min=torch.finfo(values.dtype).tiny)
    frames = pca_frames(padded.detach(), mask=mask)  # (B, 4, 3, 3)
    live = (~degenerate).nonzero().flatten()
    if padded.requires_grad and live.numel():
        # separate eigensolver call: a degenerate molecule's 0/0 must not reach the others' gradients
        frames = frames.index_put((live,), pca_frames(padded[live], mask=mask[live]))
    return frames.transpose(-1, -2).to(x.dtype)


def _padded(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(B, N, 3)`` (zeros past each molecule's end, differentiable) and the mask ``(B, N)``."""
    ptr = batch.host.offsets if batch.host is not None else tuple(batch.ptr.tolist())
    sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:], strict=True)]
    x = batch.positions
    slot = torch.arange(x.shape[0], device=x.device) - batch.ptr[batch.batch]  # (T,)
    padded = x.new_zeros(batch.num_molecules, max(sizes), 3).index_put((batch.batch, slot), x)
    mask = torch.zeros(batch.num_molecules, max(sizes), dtype=torch.bool, device=x.device)
    mask[batch.batch, slot] = True
    return padded, mask


def symmetric_predict(
    model: nn.Module,
    batch: Batch,
    symmetry: Symmetry | str = "none",
    *,
    compute_forces: bool = True,
    generator: torch.Generator | None = None,
) -> SymmetricPrediction:
    """Energies and forces of ``batch`` under ``symmetry`` (see the module docstring).

    All orientations go through the model in one batch of ``K B`` molecules; forces are the
    derivative of the averaged energy (through the frames for ``"frames"``), computed from the
    model's own per-orientation forces by one vector-Jacobian product.

    Args:
        model: a TransIP model (used as it is: put it in eval mode first).
        batch: the molecules.
        symmetry: a :class:`Symmetry` or its spelling.
        compute_forces: also return forces (and their spread).
        generator: random source of the rotations (``"random"``, ``"average:K"``).

    Returns:
        A :class:`SymmetricPrediction`.
    """
    sym = Symmetry.parse(symmetry)
    K, B = sym.copies, batch.num_molecules
    if sym.kind == "none":
        out = model(batch, compute_forces=compute_forces, training=False)
        return SymmetricPrediction(out.energy.double(), out.forces, None, None, 1)
    conservative = compute_forces and getattr(model, "force_head", None) is None
    x = batch.positions.detach()
    if conservative and sym.kind == "frames":
        x = x.requires_grad_(True)
    with torch.set_grad_enabled(torch.is_grad_enabled() or x.requires_grad):
        base = replace(batch, positions=x)
        rotations = orientations(base, sym, generator=generator)  # (B, K, 3, 3)
        # K copies, copy-major: copy k of every molecule, then copy k + 1
        copies = Batch.cat([rotate_batch(base, rotations[:, k]) for k in range(K)])
        out = model(copies, compute_forces=compute_forces, training=False)
        energies = out.energy.double().reshape(K, B)  # (K, B)
        energy_spread = energies.std(dim=0, correction=0) if K > 1 else None
        forces = force_spread = None
        if compute_forces:
            T = x.shape[0]
            r = rotations.detach().transpose(0, 1)[:, batch.batch]  # (K, T, 3, 3)
            back = rotate_vectors(out.forces.reshape(K * T, 3), r.transpose(-1, -2).reshape(K * T, 3, 3))
            back = back.reshape(K, T, 3)  # R_k^T F_m(R_k x)
            forces = back.mean(dim=0)  # (T, 3)
            if x.requires_grad:  # -dE/dx through the frames: one vector-Jacobian product
                (forces,) = torch.autograd.grad(copies.positions, x, out.forces / K)
            force_spread = (back - back.mean(dim=0)).pow(2).sum(-1).mean(0).sqrt() if K > 1 else None
    return SymmetricPrediction(
        energies.mean(dim=0).detach(),
        None if forces is None else forces.detach(),
        None if energy_spread is None else energy_spread.detach(),
        None if force_spread is None else force_spread.detach(),
        K,
    )
