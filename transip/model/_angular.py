"""Three-body (angular) token features: invariant Gram matrices of neighbour-direction moments.

For atom ``i`` with neighbours ``j`` (unit vectors ``u_ij = (x_j - x_i) / r_ij``), learned radial
channels ``q_ijp = sum_{s,k} W_{p,sk} e_s(Z_j) phi_k(r_ij)`` (``P`` channels mixing the neighbour's
element embedding ``e`` and the Gaussian RBF ``phi``) and the cosine cutoff ``fc``:

    V_ipc = sum_{j != i} fc(r_ij) q_ijp u_ijc            (T, P, 3)   first moments of directions
    G_ipq = sum_c V_ipc V_iqc / n_avg                    (T, P, P)   their Gram matrix
    h_i  += Linear(vec(G_i))                             (T, D)

``G_ipq = sum_{j,l} fc_ij fc_il q_ijp q_ilq cos(theta_jil)``: the angles between pairs of bonds at
``i``, weighted by what sits at which distance, the three-body part of the environment (the
``G`` of MACE's correlation order two, or SOAP's power spectrum for ``l = 1``). The features are
invariant by construction; they are inputs to the Transformer, not equivariant layers. ``n_avg``
(a constant, 8) keeps ``G`` of order one for organic molecules.

The pair tensors are dense per attention bucket, ``O(B_b N_b^2 (K + P))`` memory: meant for the
molecules of training sets (tens of atoms); a 1000-atom molecule needs a few hundred MB here.
"""

from __future__ import annotations

import torch
from torch import nn

#: the typical neighbour count that divides ``G`` (a fixed constant, not fitted)
N_AVG = 8.0


class AngularFeatures(nn.Module):
    """``Linear(vec(G_i))`` of the module docstring.

    Args:
        num_rbf: ``K`` of the radial basis.
        species_dim: ``S``, width of the neighbour-element embedding ``e``.
        channels: ``P``, radial-element channels whose direction moments are compared.
        d_model: output width ``D``.

    The pair quantities come from :meth:`~transip.model.RadialBasis.projected`, which calls
    :meth:`gram` per bucket; ``forward`` maps the scattered ``(T, P P)`` result to ``(T, D)``.
    """

    def __init__(self, num_rbf: int, species_dim: int, channels: int, d_model: int):
        super().__init__()
        self.mix = nn.Linear(species_dim * num_rbf, channels, bias=False)
        self.out = nn.Linear(channels * channels, d_model)
        self.channels = channels

    def gram(
        self,
        pos: torch.Tensor,
        r: torch.Tensor,
        pairs: torch.Tensor,
        fc: torch.Tensor,
        phi: torch.Tensor,
        e: torch.Tensor,
    ) -> torch.Tensor:
        """``vec(G_i)`` of one bucket, from the pair quantities :meth:`RadialBasis.projected` has
        already computed there (so ``phi`` is evaluated once per bucket for all the features).

        Shape:
            - pos: ``(B, N, 3)``; r, pairs, fc: ``(B, N, N)``; phi: ``(B, N, N, K)``; e: ``(B, N, S)``
            - output: ``(B, N, P P)``
        """
        w = self.mix.weight.view(self.channels, e.shape[-1], -1)  # (P, S, K)
        q = torch.einsum("bijk,bjs,psk->bijp", phi, e, w)  # (B, N, N, P)
        diff = pos[:, None, :, :] - pos[:, :, None, :]  # x_j - x_i, (B, N, N, 3)
        u = diff / torch.where(pairs, r, torch.ones_like(r))[..., None]  # unit vectors, 0 off-pairs
        v = torch.einsum("bij,bijp,bijc->bipc", fc, q, u)  # (B, N, P, 3)
        return (torch.einsum("bipc,biqc->bipq", v, v) / N_AVG).flatten(2)  # (B, N, P P)

    def forward(self, gram: torch.Tensor) -> torch.Tensor:
        """``Linear(vec(G))``: ``(T, P P)`` to ``(T, D)``."""
        return self.out(gram)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
