"""Orthogonal Procrustes: planted maps are recovered; agrees with scipy."""

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv.procrustes import procrustes

FAST = settings(max_examples=20, deadline=None)


def random_orthogonal(n, seed, *, batch=()):
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(*batch, n, n, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]


@FAST
@given(st.integers(1, 12), st.integers(0, 2**31), st.integers(0, 2**31))
def test_planted_orthogonal_map_is_recovered_exactly(width, seed_q, seed_a):
    q = random_orthogonal(width, seed_q)
    a = torch.randn(
        3 * width + 2, width, generator=torch.Generator().manual_seed(seed_a), dtype=torch.float64
    )
    fit = procrustes(a, a @ q)
    assert torch.allclose(fit.q, q, atol=1e-9)
    assert fit.rel_residual.item() < 1e-12


@FAST
@given(st.integers(2, 10), st.integers(0, 2**31))
def test_noisy_planted_map_is_recovered_approximately(width, seed):
    gen = torch.Generator().manual_seed(seed)
    q = random_orthogonal(width, seed + 1)
    a = torch.randn(400, width, generator=gen, dtype=torch.float64)
    noise = 0.01 * torch.randn(400, width, generator=gen, dtype=torch.float64)
    fit = procrustes(a, a @ q + noise)
    assert (fit.q - q).abs().max() < 0.02
    assert fit.rel_residual.item() == pytest.approx(0.01, rel=0.3)  # the residual is the noise


@FAST
@given(st.integers(1, 8), st.integers(1, 30), st.integers(0, 2**31))
def test_agrees_with_scipy_and_is_optimal(width, rows, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, width, generator=gen, dtype=torch.float64)
    b = torch.randn(rows, width, generator=gen, dtype=torch.float64)
    fit = procrustes(a, b)
    reference, _ = scipy.linalg.orthogonal_procrustes(a.numpy(), b.numpy())
    ref_residual = np.linalg.norm(a.numpy() @ reference - b.numpy())
    assert torch.allclose(fit.q.T @ fit.q, torch.eye(width, dtype=torch.float64), atol=1e-10)
    assert fit.residual.item() == pytest.approx(ref_residual, rel=1e-9, abs=1e-10)
    other = random_orthogonal(width, seed + 7)
    assert fit.residual.item() <= torch.linalg.norm(a @ other - b).item() + 1e-10


def test_special_restricts_to_rotations():
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    a = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    free = procrustes(a, a @ reflection)
    proper = procrustes(a, a @ reflection, special=True)
    assert torch.linalg.det(free.q).item() == pytest.approx(-1.0)
    assert torch.linalg.det(proper.q).item() == pytest.approx(1.0)
    assert proper.rel_residual.item() > free.rel_residual.item() + 0.1


def test_batched_fits_match_single_fits():
    q = random_orthogonal(4, 1, batch=(5,))
    a = torch.randn(5, 30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fit = procrustes(a, a @ q)
    assert fit.q.shape == (5, 4, 4) and fit.rel_residual.shape == (5,)
    assert torch.allclose(fit.q, q, atol=1e-10)
    assert "relative residual" in str(fit)


def test_dtype_follows_inputs():
    a = torch.randn(10, 3)
    assert procrustes(a, a).q.dtype == torch.float32
