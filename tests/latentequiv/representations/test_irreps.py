"""``Irreps``: parsing, bookkeeping and block-diagonal representation matrices."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentequiv.groups import O3, SO3, so3_exp
from latentequiv.representations import Irreps, wigner_D

f64 = torch.float64


def _sample(group, seed, n=3):
    return group.sample(n, generator=torch.Generator().manual_seed(seed), dtype=f64)


def test_parsing_and_bookkeeping():
    irreps = Irreps("4x0 + 2x1 + 1x2")
    assert list(irreps) == [(4, 0, 1), (2, 1, -1), (1, 2, 1)]
    assert irreps.dim == 4 + 6 + 5 and irreps.num_irreps == 7 and irreps.lmax == 2
    assert irreps.ls == [0, 0, 0, 0, 1, 1, 2]
    assert irreps.slices() == [slice(0, 4), slice(4, 10), slice(10, 15)]
    assert irreps == Irreps([(4, 0), (2, 1), (1, 2)]) == Irreps("4x0e+2x1o+1x2e") == Irreps(irreps)
    assert Irreps(repr(irreps)[8:-2]) == irreps and str(irreps) == "4x0e+2x1o+1x2e"
    assert Irreps("1e") != Irreps("1o") and Irreps("1") == Irreps("1x1o")
    assert Irreps("0e") + "2x1o" == Irreps("0e + 2x1o") and len(Irreps("0e + 2x1o")) == 2
    assert Irreps([(3, 2, -1)])[0] == (3, 2, -1) and hash(Irreps("1")) == hash(Irreps("1o"))
    empty = Irreps("")
    assert empty.dim == 0 and empty.ls == [] and empty.D(torch.eye(3)[None]).shape == (1, 0, 0)


@pytest.mark.parametrize("bad", ["2y1", "x1", "1x-1", "1xa", "2x1p"])
def test_unparseable_strings_raise(bad):
    with pytest.raises(ValueError):
        Irreps(bad)


@pytest.mark.parametrize("bad", [[(1, -1)], [(-1, 0)], [(1, 1, 0)], [(1, 2, 3, 4)]])
def test_invalid_tuples_raise(bad):
    with pytest.raises(ValueError):
        Irreps(bad)


def test_D_is_block_diagonal_with_wigner_blocks_in_order():
    irreps = Irreps("2x0 + 1x1 + 2x2")
    R = _sample(SO3(), 0)
    D = irreps.D(R)
    assert D.shape == (3, 15, 15) and D.dtype == f64
    expected = [wigner_D(l, R) for l in irreps.ls]
    start = 0
    for block in expected:
        n = block.shape[-1]
        assert torch.equal(D[:, start : start + n, start : start + n], block)
        start += n
    mask = torch.block_diag(*[torch.ones(b.shape[-2:]) for b in expected]).bool()
    assert torch.equal(D[:, ~mask], torch.zeros_like(D[:, ~mask]))


irreps_lists = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 4), st.sampled_from([1, -1])), min_size=1, max_size=4
).map(Irreps)


@settings(max_examples=25, deadline=None)
@given(irreps=irreps_lists, seed=st.integers(0, 2**31 - 1))
def test_D_is_an_orthogonal_representation_of_o3(irreps, seed):
    g, h = _sample(O3(), seed), _sample(O3(), seed + 1)
    Dg = irreps.D(g)
    eye = torch.eye(irreps.dim, dtype=f64).expand_as(Dg)
    assert torch.allclose(irreps.D(g @ h), Dg @ irreps.D(h), atol=1e-12)
    assert torch.allclose(Dg @ Dg.mT, eye, atol=1e-12)
    assert torch.allclose(irreps.D(torch.eye(3, dtype=f64).expand(3, 3, 3)), eye, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(irreps=irreps_lists, omega=st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_generators_exponentiate_to_D(irreps, omega):
    omega = torch.tensor(omega, dtype=f64)
    G = irreps.generators(dtype=f64)
    assert G.shape == (3, irreps.dim, irreps.dim)
    expected = torch.linalg.matrix_exp(torch.einsum("k,kij->ij", omega, G))
    assert torch.allclose(irreps.D(so3_exp(omega)), expected, atol=1e-10)


def test_inversion_acts_by_parity():
    irreps = Irreps("1x0e + 1x0o + 1x1o + 1x1e + 1x2e + 1x2o")
    D = irreps.D(-torch.eye(3, dtype=f64)[None])[0]
    signs = torch.tensor([1, -1] + [-1] * 3 + [1] * 3 + [1] * 5 + [-1] * 5, dtype=f64)
    assert torch.equal(D, torch.diag(signs))


def test_dtype_and_leading_shape_follow_input():
    R = SO3().sample(6, generator=torch.Generator().manual_seed(0)).reshape(2, 3, 3, 3)
    D = Irreps("1x0 + 1x1 + 1x3").D(R)
    assert D.shape == (2, 3, 11, 11) and D.dtype == torch.float32


def test_gradients_flow_through_D():
    omega = torch.tensor([[0.4, -0.2, 1.3]], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: Irreps("1x0 + 2x1 + 1x2").D(so3_exp(w)), (omega,))


@pytest.mark.parametrize("irreps", ["3x0e", "2x1o + 1x1e", "1x0o + 2x1o + 1x2e + 1x2o + 1x3o", ""])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_act_is_the_matrix_product_for_proper_and_improper_elements(irreps, seed):
    irreps = Irreps(irreps)
    R = _sample(O3(), seed, n=6)  # about half of them improper
    x = torch.randn(6, irreps.dim, dtype=f64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(irreps.act(R, x), (irreps.D(R) @ x[..., None])[..., 0])
    # batch axes broadcast: one element for every token of a sample
    tokens = torch.randn(6, 4, irreps.dim, dtype=f64, generator=torch.Generator().manual_seed(seed + 1))
    expected = torch.einsum("bij,bnj->bni", irreps.D(R), tokens)
    torch.testing.assert_close(irreps.act(R[:, None], tokens), expected)


def test_act_rejects_a_wrong_width():
    with pytest.raises(ValueError, match="width 4"):
        Irreps("1x1").act(torch.eye(3)[None], torch.zeros(1, 4))


@pytest.mark.parametrize("dim", [1, 7, 32, 96, 384])
@pytest.mark.parametrize("lmax", [0, 1, 2, 3])
def test_filling_fills_dim_with_every_degree_its_share(dim, lmax):
    irreps = Irreps.filling(dim, lmax)
    assert irreps.dim == dim
    muls = {l: mul for mul, l, _ in irreps}
    for l in range(1, lmax + 1):
        assert muls.get(l, 0) == dim // ((lmax + 1) * (2 * l + 1))
    assert muls[0] >= dim / (lmax + 1)
    assert Irreps.filling(96) == Irreps("36x0 + 10x1 + 6x2")
    with pytest.raises(ValueError):
        Irreps.filling(0)
