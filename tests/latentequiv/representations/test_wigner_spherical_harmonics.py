"""The basis of ``wigner_D`` is the documented real spherical-harmonic basis (checked with scipy).

docs/latentequiv/conventions.md: the degree-``l`` basis is the textbook real spherical harmonics
``Y_{l,m}``, ``m = -l..l`` (z polar axis, no Condon-Shortley sign in the real form, so the table is
all positive), evaluated at the relabelled point ``(z, x, y)``; then ``Y_l(R r) = D^l(R) Y_l(r)``.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from latentequiv.groups import SO3
from latentequiv.representations import wigner_D


def textbook_real_sh(l: int, points: np.ndarray) -> np.ndarray:
    """Real spherical harmonics (z polar axis, m = -l..l) of unit vectors ``(n, 3)`` -> ``(n, 2l+1)``."""
    x, y, z = points.T
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    out = []
    for m in range(-l, l + 1):
        Y = sph_harm_y(l, abs(m), theta, phi)  # complex, Condon-Shortley phase included
        if m > 0:
            out.append(math.sqrt(2) * (-1) ** m * Y.real)
        elif m < 0:
            out.append(math.sqrt(2) * (-1) ** m * Y.imag)
        else:
            out.append(Y.real)
    return np.stack(out, -1)


def our_sh(l: int, points: np.ndarray) -> np.ndarray:
    """The documented basis: the textbook harmonics at the relabelled point (z, x, y)."""
    return textbook_real_sh(l, points[:, [2, 0, 1]])


def _unit_vectors(n, seed):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
def test_spherical_harmonics_transform_with_wigner_D(l):
    R = SO3().sample(8, generator=torch.Generator().manual_seed(l), dtype=torch.float64)
    D = wigner_D(l, R).numpy()  # (8, 2l+1, 2l+1)
    r = _unit_vectors(50, seed=l)  # (50, 3)
    rotated = np.einsum("bij,nj->bni", R.numpy(), r)  # (8, 50, 3)
    lhs = our_sh(l, rotated.reshape(-1, 3)).reshape(8, 50, 2 * l + 1)  # Y(R r)
    rhs = np.einsum("bij,nj->bni", D, our_sh(l, r))  # D(R) Y(r)
    assert np.allclose(lhs, rhs, atol=1e-12)


def test_textbook_table_signs_are_positive():
    # Y_{1,-1}, Y_{1,0}, Y_{1,1} = c (y, z, x): the convention the relabelling starts from.
    r = _unit_vectors(20, seed=7)
    c = math.sqrt(3 / (4 * math.pi))
    assert np.allclose(textbook_real_sh(1, r), c * r[:, [1, 2, 0]], atol=1e-14)


def test_degree_one_and_two_bases_are_the_documented_polynomials():
    r = _unit_vectors(20, seed=8)
    x, y, z = r.T
    assert np.allclose(our_sh(1, r), math.sqrt(3 / (4 * math.pi)) * r, atol=1e-14)  # (x, y, z)
    s3 = math.sqrt(3)
    table = np.stack(
        [s3 * x * z, s3 * x * y, y**2 - (x**2 + z**2) / 2, s3 * y * z, s3 / 2 * (z**2 - x**2)], -1
    )
    assert np.allclose(our_sh(2, r), math.sqrt(5 / (4 * math.pi)) * table, atol=1e-14)


@pytest.mark.parametrize("l", [2, 3])
def test_textbook_z_polar_basis_transforms_with_conjugated_wigner_D(l):
    # D_textbook(R) = D(P^T R P) with P r = (z, x, y), the relation stated in the conventions doc.
    P = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    R = SO3().sample(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    D_textbook = wigner_D(l, P.T @ R @ P).numpy()
    r = _unit_vectors(30, seed=9)
    lhs = textbook_real_sh(l, np.einsum("bij,nj->bni", R.numpy(), r).reshape(-1, 3)).reshape(4, 30, -1)
    rhs = np.einsum("bij,nj->bni", D_textbook, textbook_real_sh(l, r))
    assert np.allclose(lhs, rhs, atol=1e-12)
