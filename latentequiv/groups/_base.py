"""The matrix-group interface every sampler implements.

Shape glossary (used throughout ``latentequiv``):
    B  batch of group elements / samples
    N  points or tokens per sample
    D  embedding width
    d  dimension of the space the group acts on (3 for SO(3) and O(3), 2 for SO(2))

A group element is a ``(B, d, d)`` orthogonal matrix (any leading batch shape works). Vectors are
row vectors, so the action on ``x`` of shape ``(B, d)`` or ``(B, N, d)`` is ``x @ g.transpose(-1, -2)``,
i.e. ``x_i -> g x_i`` for every point. It is a left action: ``act(g @ h, x) == act(g, act(h, x))``.
"""

from __future__ import annotations

import abc

import torch


class Group(abc.ABC):
    """A matrix group acting linearly on ``R^d``.

    Subclasses implement :meth:`sample`; everything else follows from the matrices.
    """

    #: dimension of the space the group acts on
    dim: int
    #: whether every element has ``det = +1`` (SO(d)) rather than ``+1`` or ``-1`` (O(d))
    proper: bool = True

    @abc.abstractmethod
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` elements from the group's Haar (uniform) measure. Returns ``(n, d, d)``.

        ``dtype=None`` means ``torch.get_default_dtype()``.
        """

    def identity(
        self,
        n: int = 1,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` copies of the identity, ``(n, d, d)``."""
        dtype = dtype or torch.get_default_dtype()
        return torch.eye(self.dim, dtype=dtype, device=device).expand(n, self.dim, self.dim).clone()

    @staticmethod
    def compose(g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The product ``g h`` (apply ``h`` first, then ``g``)."""
        return g @ h

    @staticmethod
    def inverse(g: torch.Tensor) -> torch.Tensor:
        """The inverse of an orthogonal matrix is its transpose."""
        return g.transpose(-1, -2)

    @staticmethod
    def act(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply ``g`` to row vectors.

        Args:
            g: ``(B, d, d)`` group elements.
            x: ``(B, d)`` vectors or ``(B, N, d)`` point sets (``g[b]`` acts on every point of ``x[b]``);
                more leading dimensions broadcast the same way.

        Returns:
            Tensor shaped like ``x``.
        """
        if x.dim() == g.dim() - 1:
            return torch.einsum("...ij,...j->...i", g, x)
        return x @ g.transpose(-1, -2)

    def contains(self, g: torch.Tensor, *, atol: float | None = None) -> torch.Tensor:
        """Whether each matrix is an element: orthogonal (and ``det = +1`` for a proper group).

        Args:
            g: ``(..., d, d)`` matrices.
            atol: tolerance on ``|g^T g - I|`` and on the determinant; by default
                ``100 * eps`` of ``g``'s dtype times ``d``.

        Returns:
            ``(...)`` boolean tensor.
        """
        if atol is None:
            atol = 100 * self.dim * torch.finfo(g.dtype).eps
        eye = torch.eye(self.dim, dtype=g.dtype, device=g.device)
        right_shape = g.shape[-2:] == (self.dim, self.dim)
        if not right_shape:
            return torch.zeros(g.shape[:-2], dtype=torch.bool, device=g.device)
        orthogonal = ((g.transpose(-1, -2) @ g - eye).abs() <= atol).flatten(-2).all(-1)
        if not self.proper:
            return orthogonal
        return orthogonal & ((torch.linalg.det(g) - 1).abs() <= atol)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
