"""Gaussian radial-basis distance features (paper, Appendix A.4).

``phi_k(r) = exp(-gamma (r - mu_k)^2)`` with ``K`` centres ``mu_k`` uniform on ``[0, r_cut]`` and
``gamma = 1 / (2 delta^2)``, ``delta = r_cut / (K - 1)`` the centre spacing (the paper leaves gamma
out; one spacing per standard deviation makes neighbouring Gaussians overlap smoothly).

Two uses, both computed per attention bucket so no cross-molecule pair is ever formed:
    (a) per atom ``sum_{j != i} phi(r_ij) fc(r_ij)`` with the cosine cutoff
        ``fc(r) = (cos(pi r / r_cut) + 1) / 2`` for ``r < r_cut`` else 0;
    (b) per head a linear map of ``phi(r_ij)`` added to the attention logits
        (see :class:`~transip.model.SelfAttention`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._attention import AttentionLayout
from ._rbf_features import exp_floor, gaussian_pair_features

#: buckets with at most this many ``(B, N, N, K)`` elements get the neighbour sums by the plain
#: formula (16 MB in float32; a 256-atom batch of 9-atom molecules holds 28 * 81 * 32 = 73k)
DENSE_NEIGHBOUR_ELEMENTS = 1 << 22


def gaussian_rbf(r: torch.Tensor, centres: torch.Tensor, gamma: float) -> torch.Tensor:
    """``exp(-gamma (r - mu_k)^2)``.

    Shape:
        - r: ``(*)`` distances
        - centres: ``(K,)``
        - output: ``(*, K)``
    """
    # exponents below exp_floor underflow anyway; clamped, CPU exp runs ~15x faster on them
    x = (r[..., None] - centres.to(r.dtype)).square().mul_(-gamma)
    return torch.exp(x.clamp_min(exp_floor(r.dtype)))


def cosine_cutoff(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """``(cos(pi r / r_cut) + 1) / 2`` inside the cutoff, 0 outside; smooth at ``r_cut``."""
    return torch.where(r < cutoff, 0.5 * (torch.cos(r * (math.pi / cutoff)) + 1.0), torch.zeros_like(r))


def pair_distances(positions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances between the atoms of each molecule of a bucket, safe to differentiate twice.

    ``sqrt`` has an infinite derivative at 0, so the diagonal and padded pairs are fed a dummy
    value before the root and set to 0 after (no NaN leaks into the gradients).

    Shape:
        - positions: ``(B, N, 3)``
        - mask: ``(B, N)`` bool, real atoms
        - output: ``r (B, N, N)`` and ``pairs (B, N, N)`` bool, real ``i != j`` pairs
    """
    n = positions.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=positions.device)
    pairs = mask[:, :, None] & mask[:, None, :] & ~eye  # (B, N, N)
    diff = positions[:, :, None, :] - positions[:, None, :, :]  # (B, N, N, 3)
    d2 = (diff * diff).sum(-1)
    r = torch.sqrt(torch.where(pairs, d2, torch.ones_like(d2)))
    return torch.where(pairs, r, torch.zeros_like(r)), pairs


class RadialBasis(nn.Module):
    """Gaussian RBF expansion of all intra-molecular distances of a batch.

    Args:
        num_rbf: number of channels ``K`` (>= 1).
        cutoff: largest centre and cosine-cutoff radius, Å.
    """

    def __init__(self, num_rbf: int, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num_rbf), persistent=False)
        spacing = cutoff / max(num_rbf - 1, 1)
        self.gamma = 0.5 / spacing**2

    def forward(
        self, positions: torch.Tensor, layout: AttentionLayout
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Pair features per bucket and the per-atom cutoff-weighted sum.

        Shape:
            - positions: ``(T, 3)``
            - output: ``[(B_b, N_b, N_b, K)]`` per bucket, and ``(T, K)`` per-atom sums
        """
        pair_phi, atom_phi = [], []
        for bucket, pos in zip(layout.buckets, layout.gather(positions), strict=True):
            r, pairs = pair_distances(pos, bucket.mask)  # (B_b, N_b, N_b)
            phi = gaussian_rbf(r, self.centres, self.gamma)  # (B_b, N_b, N_b, K)
            weight = cosine_cutoff(r, self.cutoff) * pairs  # self and padding pairs excluded
            # sum_j w_ij phi_ij as (1, N) @ (N, K) per atom: no (B_b, N_b, N_b, K) product tensor
            atom_phi.append(torch.matmul(weight.unsqueeze(-2), phi).squeeze(-2))  # (B_b, N_b, K)
            pair_phi.append(phi)
        return pair_phi, layout.scatter(atom_phi)

    def projected(
        self,
        positions: torch.Tensor,
        layout: AttentionLayout,
        weight: torch.Tensor,
        neighbour: torch.Tensor | None = None,
        angular=None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``phi(r_ij) @ weight.T`` per bucket and the per-atom cutoff-weighted sums, as
        ``forward`` followed by a linear map, but without keeping any ``(N_b, N_b, K)`` tensor
        for the backward passes (:func:`~transip.model._rbf_features.gaussian_pair_features`).

        With ``neighbour`` (a weight per atom and channel, e.g. a learned embedding of its element),
        also the neighbour-weighted sums ``A_isk = sum_{j != i} e_s(j) fc(r_ij) phi_k(r_ij)``: which
        elements sit at which distances, the two-body part of an atom's environment.

        With ``angular`` too (an :class:`~transip.model._angular.AngularFeatures`), its three-body
        Gram features, from the same pair distances, cutoff and Gaussians of each bucket.

        Shape:
            - positions: ``(T, 3)``; weight: ``(M, K)``; neighbour: ``(T, S)``
            - output: ``[(B_b, N_b, N_b, M)]`` per bucket, ``(T, K)`` per-atom sums,
              ``(T, S, K)`` neighbour-weighted sums (``None`` without ``neighbour``) and
              ``(T, P P)`` Gram features (``None`` without ``angular``)
        """
        if angular is not None and neighbour is None:
            raise ValueError("the angular features weight neighbours by element: pass neighbour too")
        pair_out, atom_phi, species_phi, grams = [], [], [], []
        blocks = layout.gather(neighbour) if neighbour is not None else [None] * len(layout.buckets)
        for bucket, pos, e in zip(layout.buckets, layout.gather(positions), blocks, strict=True):
            r, pairs = pair_distances(pos, bucket.mask)  # (B_b, N_b, N_b)
            weight_ij = cosine_cutoff(r, self.cutoff) * pairs  # self and padding pairs excluded
            y, a = gaussian_pair_features(r, weight_ij, weight, self.centres, self.gamma)
            pair_out.append(y)  # (B_b, N_b, N_b, M)
            atom_phi.append(a)  # (B_b, N_b, K)
            if e is None:
                continue
            b, n, _ = r.shape
            dense = b * n * n * self.centres.numel() <= DENSE_NEIGHBOUR_ELEMENTS
            # the Gaussians of every pair, once for both features (the angular ones always need them)
            phi = gaussian_rbf(r, self.centres, self.gamma) if dense or angular is not None else None
            species_phi.append(self._neighbour_sums(r, weight_ij, e, phi if dense else None))
            if angular is not None:
                grams.append(angular.gram(pos, r, pairs, weight_ij, phi, e))  # (B_b, N_b, P P)
        species = layout.scatter(species_phi) if neighbour is not None else None
        gram = layout.scatter(grams) if angular is not None else None
        return pair_out, layout.scatter(atom_phi), species, gram

    def _neighbour_sums(
        self, r: torch.Tensor, weight_ij: torch.Tensor, e: torch.Tensor, phi: torch.Tensor | None
    ) -> torch.Tensor:
        """``sum_j e_s(j) w_ij phi_k(r_ij)`` for one bucket.

        Small buckets (up to :data:`DENSE_NEIGHBOUR_ELEMENTS` pair-channel elements), which come
        with their Gaussians ``phi``, take the plain formula; larger ones (``phi=None``) go
        through the memory-lean pair features with the ``S`` channels in the batch dimension and an
        empty projection, so no ``(N, N, K)`` tensor is kept (at the price of evaluating ``phi``
        once per channel).

        Shape:
            - r, weight_ij: ``(B, N, N)``; e: ``(B, N, S)``; phi: ``(B, N, N, K)`` or ``None``
            - output: ``(B, N, S, K)``
        """
        b, n, _ = r.shape
        s, k = e.shape[-1], self.centres.numel()
        if phi is not None:  # (B, N, N, K)
            return torch.einsum("bij,bjs,bijk->bisk", weight_ij, e, phi)
        c = (weight_ij[:, None] * e.permute(0, 2, 1)[:, :, None, :]).reshape(b * s, n, n)  # (B S, N, N)
        rs = r[:, None].expand(b, s, n, n).reshape(b * s, n, n)
        empty = r.new_zeros(0, k)
        _, a = gaussian_pair_features(rs, c, empty, self.centres, self.gamma)  # (B S, N, K)
        return a.view(b, s, n, -1).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"num_rbf={self.centres.numel()}, cutoff={self.cutoff}, gamma={self.gamma:.4g}"
