"""Cross-check Wigner-D against e3nn (test-only dependency) up to a constant change of basis.

For each degree we *solve* for the intertwiner ``Q`` with ``Q D_ours(R) = D_e3nn(R) Q`` from a few
random rotations instead of assuming it, check that it is unique up to scale (Schur's lemma for a
real irrep), orthogonal after normalisation, and valid for fresh rotations. For the installed e3nn
(>= 0.5) it comes out as the identity: our basis *is* e3nn's (documented in
docs/latentequiv/conventions.md), with ``l = 1`` in ``(x, y, z)`` order.
"""

import numpy as np
import pytest
import torch
from e3nn import o3

from latentequiv.groups import O3, SO3
from latentequiv.representations import Irreps, wigner_D

f64 = torch.float64


@pytest.fixture(autouse=True)
def _float64_default():
    """e3nn builds its constants in the default dtype; float32 constants would cap its accuracy at 1e-6."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(f64)
    yield
    torch.set_default_dtype(previous)


def _rotations(n, seed):
    return SO3().sample(n, generator=torch.Generator().manual_seed(seed), dtype=f64)


def _e3nn_D(l, R, parity=None):
    p = (-1) ** l if parity is None else parity
    return o3.Irrep(l, p).D_from_matrix(R)


def solve_change_of_basis(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Null space of ``Q -> Q A_k - B_k Q`` over all k; returns (orthogonal Q, singular values)."""
    n = ours.shape[-1]
    eye = np.eye(n)
    # row-major vec: vec(Q A) = (I kron A^T) vec(Q), vec(B Q) = (B kron I) vec(Q)
    blocks = [np.kron(eye, a.T) - np.kron(b, eye) for a, b in zip(ours.numpy(), theirs.numpy(), strict=True)]
    _, sing, vt = np.linalg.svd(np.concatenate(blocks))
    Q = vt[-1].reshape(n, n)
    Q = Q / np.sqrt((Q @ Q.T).trace() / n)
    return Q, sing


@pytest.mark.parametrize("l", [1, 2, 3])
def test_change_of_basis_solver_recovers_a_known_basis_change(l):
    # e.g. for l = 1 the (y, z, x) order of older conventions is the permutation below
    n = 2 * l + 1
    M = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(l), dtype=f64))[0]
    if l == 1:
        M = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=f64)
    R = _rotations(6, seed=20 + l)
    D = wigner_D(l, R)
    Q, _ = solve_change_of_basis(D, M @ D @ M.T)
    Q = Q * np.sign((Q * M.numpy()).sum())
    assert np.allclose(Q, M.numpy(), atol=1e-10)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
def test_change_of_basis_to_e3nn_is_a_constant_orthogonal_matrix(l):
    R = _rotations(6, seed=l)
    Q, sing = solve_change_of_basis(wigner_D(l, R), _e3nn_D(l, R))
    assert sing[-1] < 1e-10  # an intertwiner exists ...
    if l > 0:
        assert sing[-2] > 1e-2  # ... and is unique up to scale
    assert np.allclose(Q @ Q.T, np.eye(2 * l + 1), atol=1e-10)
    fresh = _rotations(32, seed=100 + l)
    assert np.allclose(Q @ wigner_D(l, fresh).numpy(), _e3nn_D(l, fresh).numpy() @ Q, atol=1e-10)
    # e3nn >= 0.5 uses the very same basis, so Q is the identity (up to the overall sign).
    Q = Q * np.sign(Q[0, 0])
    assert np.allclose(Q, np.eye(2 * l + 1), atol=1e-10), np.round(Q, 3)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
def test_wigner_D_equals_e3nn_in_float32_and_float64(l):
    R = _rotations(16, seed=10 + l)
    assert torch.allclose(wigner_D(l, R), _e3nn_D(l, R), atol=1e-12)
    assert torch.allclose(wigner_D(l, R.float()).double(), _e3nn_D(l, R), atol=2e-5)


def test_parity_and_irreps_agree_with_e3nn_on_o3():
    g = O3().sample(32, generator=torch.Generator().manual_seed(0), dtype=f64)
    for l in range(4):
        for parity in (1, -1):
            assert torch.allclose(wigner_D(l, g, parity=parity), _e3nn_D(l, g, parity), atol=1e-12)
    spec = "2x0e + 1x0o + 3x1o + 1x1e + 2x2e + 1x3o"
    assert torch.allclose(Irreps(spec).D(g), o3.Irreps(spec).D_from_matrix(g), atol=1e-12)
