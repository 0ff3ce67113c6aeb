"""Real Wigner-D matrices: the irreducible representations of SO(3) (and O(3)).

For a rotation ``R = so3_exp(omega)`` the degree-``l`` matrix is the exponential of the Lie-algebra
representation (:func:`irrep_generators`)::

    D^l(R) = expm(omega_x J_x + omega_y J_y + omega_z J_z),    omega = so3_log(R)

which is a group homomorphism ``D(R1 R2) = D(R1) D(R2)`` because integer-``l`` irreps are single
valued (``D(so3_exp(2 pi n)) = I``), so the choice of logarithm at angle ``pi`` does not matter.
The basis is real spherical harmonics ``Y_l`` with ``Y_l(R r) = D^l(R) Y_l(r)``; for ``l = 1`` it
is ``(x, y, z)``, so ``D^1(R) = R``. See ``docs/latentequiv/conventions.md`` for the basis of
``l >= 2`` (the same as e3nn >= 0.5).
"""

from __future__ import annotations

import torch

from ..groups import so3_log
from ._generators import irrep_generators


def _proper_wigner_D(l: int, R: torch.Tensor) -> torch.Tensor:
    if l == 0:
        return torch.ones(*R.shape[:-2], 1, 1, dtype=R.dtype, device=R.device)
    if l == 1:
        return R
    J = irrep_generators(l, dtype=R.dtype, device=R.device)  # (3, 2l+1, 2l+1)
    omega = so3_log(R)  # (..., 3)
    return torch.linalg.matrix_exp(torch.einsum("...k,kij->...ij", omega, J))


def wigner_D(l: int, R: torch.Tensor, *, parity: int | None = None) -> torch.Tensor:
    """Real Wigner-D matrices of degree ``l``.

    Args:
        l: degree, ``l >= 0`` (any ``l``; tested against e3nn for ``l <= 4``).
        R: rotation matrices. With ``parity=None`` they must be proper (``det = +1``) for ``l >= 2``
            (``ValueError`` otherwise: an improper ``R`` has no degree-``l`` matrix until a parity is
            chosen); for ``l = 0`` and ``l = 1`` the natural parity ``(-1)^l`` is used, so
            ``wigner_D(1, R) == R`` for every orthogonal ``R``.
        parity: for O(3): ``+1`` (even, "e") or ``-1`` (odd, "o"). An improper ``R = -R'``
            (``R'`` proper) then acts as ``parity * D^l(R')``, so ``l = 1`` with ``parity=-1`` is a
            polar vector (``D = R``) and with ``parity=+1`` an axial vector (``D = det(R) R``).

    Shape:
        - R: ``(..., 3, 3)``
        - output: ``(..., 2l+1, 2l+1)``, orthogonal, same dtype and device as ``R``.

    Example:
        >>> from latentequiv.groups import SO3
        >>> R = SO3().sample(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> D = wigner_D(2, R)
        >>> D.shape
        torch.Size([2, 5, 5])
        >>> torch.allclose(wigner_D(2, R[0] @ R[1]), D[0] @ D[1])
        True
    """
    if l < 0:
        raise ValueError(f"degree l must be >= 0, got {l}")
    if parity is None:
        if l >= 2 and bool((torch.linalg.det(R) < 0).any()):
            raise ValueError(
                f"wigner_D(l={l}) got an improper matrix (det = -1) with parity=None; pass parity=+1 "
                f"('{l}e') or parity=-1 ('{l}o'), or use Irreps('{l}e'/'{l}o').D"
            )
        return _proper_wigner_D(l, R)
    if parity not in (1, -1):
        raise ValueError(f"parity must be +1, -1 or None, got {parity}")
    det = torch.linalg.det(R).sign()[..., None, None]  # (..., 1, 1), +-1
    D = _proper_wigner_D(l, R * det)
    # D(R) = D^l(det(R) R) * det(R)^((1 - parity) / 2)
    return D if parity == 1 else D * det
