"""The tau-network interface and the one helper every tau shares.

A tau-network says how a group element acts on an embedding: ``tau(g, z) -> z'`` with ``g`` of shape
``(B, d, d)`` and ``z`` of shape ``(B, D)`` (one embedding per sample) or ``(B, N, D)`` (tokens), in
which case ``g[b]`` acts on every token of ``z[b]``. The output has the shape of ``z``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ..groups import Group


@runtime_checkable
class Tau(Protocol):
    """Anything callable as ``tau(g, z) -> z'`` (every ``nn.Module`` in :mod:`latentequiv.tau` is one).

    Shape:
        - g: ``(B, d, d)``
        - z: ``(B, D)`` or ``(B, N, D)``
        - output: same as ``z``
    """

    def __call__(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


def group_features(g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Flatten ``g`` to ``vec(g)`` (row-major) and broadcast it over the token axis of ``z``.

    Args:
        g: group elements.
        z: embeddings whose leading (and optional token) axes the result matches.

    Shape:
        - g: ``(B, d, d)``
        - z: ``(B, D)`` or ``(B, N, D)``
        - output: ``(B, d*d)`` or ``(B, N, d*d)``, dtype and device of ``z``

    Example:
        >>> g = torch.eye(3).expand(2, 3, 3)
        >>> group_features(g, torch.zeros(2, 7, 16)).shape
        torch.Size([2, 7, 9])
    """
    check_shapes(g, z)
    vec = g.reshape(g.shape[0], -1).to(dtype=z.dtype, device=z.device)  # (B, d*d)
    if z.dim() == 3:
        vec = vec[:, None, :].expand(-1, z.shape[1], -1)  # (B, N, d*d)
    return vec


def resolve_group_dim(group_dim: int | Group) -> int:
    """``d`` from an int or from a group (``SO2()`` gives 2, ``SO3()`` and ``O3()`` give 3)."""
    if isinstance(group_dim, Group):
        return group_dim.dim
    if isinstance(group_dim, bool) or not isinstance(group_dim, int) or group_dim < 1:
        raise ValueError(f"group_dim must be a positive int or a latentequiv Group, got {group_dim!r}")
    return group_dim


def check_group_dim(g: torch.Tensor, group_dim: int, owner: str) -> None:
    """Raise a ``ValueError`` naming the fix when ``g`` is not ``(B, group_dim, group_dim)``."""
    if g.dim() == 3 and g.shape[-1] == g.shape[-2] and g.shape[-1] != group_dim:
        raise ValueError(
            f"{owner} was built for {group_dim}x{group_dim} group elements but got "
            f"{g.shape[-1]}x{g.shape[-1]}; build it with group_dim={g.shape[-1]} or group_dim=<the group>"
        )


def check_shapes(g: torch.Tensor, z: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``g`` is ``(B, d, d)`` and ``z`` is ``(B, D)`` or ``(B, N, D)``."""
    if g.dim() != 3 or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"g must have shape (B, d, d), got {tuple(g.shape)}")
    if z.dim() not in (2, 3):
        raise ValueError(f"z must have shape (B, D) or (B, N, D), got {tuple(z.shape)}")
    if z.shape[0] != g.shape[0]:
        raise ValueError(f"g and z disagree on the batch size: {g.shape[0]} vs {z.shape[0]}")
