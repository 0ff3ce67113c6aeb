"""The Lie-algebra representation of so(3) on the real spin-``l`` irrep.

Construction (exact, float64, cached per ``l``):

1. In the complex basis ``|l, m>``, ``m = -l..l``, the angular-momentum matrices are
   ``Jz|m> = m|m>`` and ``J+-|m> = sqrt(l(l+1) - m(m+-1)) |m+-1>``, with ``Jx = (J+ + J-)/2`` and
   ``Jy = (J+ - J-)/(2i)``; these act on the Condon-Shortley spherical harmonics ``Y_l^m`` as
   ``L = -i r x grad``.
2. The unitary ``U`` to the real spherical harmonics (the usual table, all positive:
   ``Y_{1,-1}, Y_{1,0}, Y_{1,1} ~ y, z, x``) turns them into ``L_real = conj(U) L U^T``.
3. The infinitesimal rotation about ``e_k`` acts on functions as ``f -> grad f . (e_k x r) =
   i L_k f``, so in the convention ``Y(R r) = D(R) Y(r)`` (``d/dt Y(exp(t G_k) r) = A_k Y``) the
   generator is the transpose ``A_k = i L_real_k^T`` (real and antisymmetric).
4. The basis of ``latentequiv`` is that table evaluated at the relabelled point ``P r = (z, x, y)``
   (the polar axis becomes y), which makes ``l = 1`` exactly ``(x, y, z)``: ``D^1(R) = R``. As
   ``P hat(e_k) P^T = hat(P e_k)``, this only permutes the generators:
   ``(Jx, Jy, Jz) = (A_y, A_z, A_x)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def _complex_to_real(l: int) -> np.ndarray:
    """Unitary ``U`` with ``Y_real[a] = sum_m U[a, m] Y^m`` (rows and columns indexed by ``m + l``)."""
    U = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    U[l, l] = 1.0
    r = 1 / math.sqrt(2)
    for m in range(1, l + 1):
        sign = (-1) ** m
        # m > 0: (Y^{-m} + (-1)^m Y^m) / sqrt 2, proportional to cos(m phi)
        U[l + m, l - m] = r
        U[l + m, l + m] = sign * r
        # m < 0: i (Y^{-m} - (-1)^m Y^{m}) / sqrt 2 for |m|, proportional to sin(|m| phi)
        U[l - m, l - m] = 1j * r
        U[l - m, l + m] = -1j * sign * r
    return U


def _angular_momentum(l: int) -> np.ndarray:
    """Complex ``(Jx, Jy, Jz)`` in the ``|l, m>`` basis, ``(3, 2l+1, 2l+1)``."""
    m = np.arange(-l, l + 1, dtype=np.float64)
    raise_ = np.diag(np.sqrt(l * (l + 1) - m[:-1] * (m[:-1] + 1)), -1).astype(np.complex128)  # J+
    lower = raise_.T.copy()  # J- = (J+)^dagger, and J+ is real
    jx = (raise_ + lower) / 2
    jy = (raise_ - lower) / 2j
    jz = np.diag(m).astype(np.complex128)
    return np.stack([jx, jy, jz])


@functools.cache
def _generators_float64(l: int) -> torch.Tensor:
    U = _complex_to_real(l)
    L_real = np.conj(U)[None] @ _angular_momentum(l) @ U.T[None]  # (3, 2l+1, 2l+1)
    A = 1j * np.swapaxes(L_real, -1, -2)
    if np.abs(A.imag).max() > 1e-12:  # would mean a wrong phase in U; guarded by the tests too
        raise AssertionError("so(3) generators are not real")
    A = np.where(np.abs(A.real) < 1e-14, 0.0, A.real)  # exact zeros instead of round-off
    return torch.from_numpy(np.stack([A[1], A[2], A[0]]).copy())


def irrep_generators(
    l: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """The so(3) generators ``J_k`` on the real irrep of degree ``l`` (basis of ``wigner_D``).

    They are real antisymmetric, satisfy ``[J_x, J_y] = J_z`` cyclically (the same relations as
    :func:`latentequiv.groups.so3_generators`, which they equal for ``l = 1``), the Casimir
    ``sum_k J_k^2 = -l (l + 1) I``, and ``wigner_D(l, so3_exp(w)) = expm(sum_k w_k J_k)``.

    Args:
        l: degree, ``l >= 0``.

    Returns:
        ``(3, 2l+1, 2l+1)``.

    Example:
        >>> J = irrep_generators(2, dtype=torch.float64)
        >>> torch.allclose(sum(j @ j for j in J), -6 * torch.eye(5, dtype=torch.float64))
        True
    """
    if l < 0:
        raise ValueError(f"degree l must be >= 0, got {l}")
    return _generators_float64(l).to(dtype=dtype or torch.get_default_dtype(), device=device)
