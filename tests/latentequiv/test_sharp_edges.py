"""Sharp edges of issue 12, item 5: each case used to fail silently or with an unhelpful error."""

import pytest
import torch

from latentequiv.groups import O3, SO2, SO3
from latentequiv.losses import LatentEquivariance
from latentequiv.probes import as_output_action
from latentequiv.procrustes import estimate_irreps
from latentequiv.representations import Irreps, wigner_D
from latentequiv.tau import HyperLinearTau, MLPTau, RepresentationTau

f64 = torch.float64


def _improper(n=3):
    return -SO3().sample(n, generator=torch.Generator().manual_seed(0), dtype=f64)


@pytest.mark.parametrize("l", [2, 3])
def test_wigner_D_refuses_improper_matrices_without_a_parity(l):
    with pytest.raises(ValueError, match="parity"):
        wigner_D(l, _improper())
    r = _improper()
    torch.testing.assert_close(wigner_D(l, r, parity=1), wigner_D(l, -r))
    torch.testing.assert_close(wigner_D(l, r, parity=-1), -wigner_D(l, -r))


def test_wigner_D_keeps_the_natural_parity_for_degrees_0_and_1():
    r = _improper()
    assert torch.equal(wigner_D(1, r), r)
    assert torch.equal(wigner_D(0, r), torch.ones(3, 1, 1, dtype=f64))


@pytest.mark.parametrize("group", [SO3(), O3(), SO2()])
def test_sampling_follows_the_default_dtype(group):
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(f64)
        assert group.sample(2).dtype == f64 and group.identity(2).dtype == f64
    finally:
        torch.set_default_dtype(previous)
    assert group.sample(2).dtype == previous
    assert group.sample(2, dtype=torch.float16).dtype == torch.float16


@pytest.mark.parametrize("tau_class", [MLPTau, HyperLinearTau])
def test_tau_takes_its_group_dimension_from_the_group(tau_class):
    tau = tau_class(8, group_dim=SO2())
    assert tau.group_dim == 2
    g = SO2().sample(4, dtype=torch.float32)
    assert tau(g, torch.randn(4, 8)).shape == (4, 8)
    step = LatentEquivariance(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 8)), tau, SO2())
    assert step(torch.randn(4, 5, 2)).loss.isfinite()


@pytest.mark.parametrize("tau_class", [MLPTau, HyperLinearTau])
def test_a_tau_built_for_another_group_is_refused_with_the_fix(tau_class):
    with pytest.raises(ValueError, match=r"group_dim=SO2\(\)"):
        LatentEquivariance(torch.nn.Flatten(), tau_class(8), SO2())
    with pytest.raises(ValueError, match="group_dim=2"):
        tau_class(8)(SO2().sample(4), torch.randn(4, 8))


def test_e3nn_irreps_are_accepted_in_the_same_basis():
    o3 = pytest.importorskip("e3nn.o3")
    theirs = o3.Irreps("2x0e + 1x1o + 1x2e + 1x1e")
    ours = Irreps(theirs)
    assert ours == Irreps("2x0e + 1x1o + 1x2e + 1x1e")
    g = O3().sample(5, generator=torch.Generator().manual_seed(1), dtype=f64)
    y = torch.randn(5, ours.dim, dtype=f64)
    torch.testing.assert_close(as_output_action(theirs)(g, y), as_output_action(ours)(g, y))
    assert RepresentationTau(theirs).dim == ours.dim


def test_estimate_irreps_accepts_tensors_that_require_grad():
    g = SO3().sample(32, generator=torch.Generator().manual_seed(2), dtype=f64)
    action = g.clone().requires_grad_(True)
    assert estimate_irreps(action, g.requires_grad_(True), max_l=2).multiplicities == (0, 1, 0)
