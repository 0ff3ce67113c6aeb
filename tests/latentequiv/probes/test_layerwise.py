"""Per-layer probe: which layers are invariant, which equivariant in some basis, which neither."""

import math
import warnings

import pytest
import torch
from torch import nn

from latentequiv.groups import SO3
from latentequiv.probes import layerwise_equivariance
from latentequiv.procrustes import DiagnosticWarning


class VectorGate(nn.Module):
    """Equivariant: scales each vector by a function of its length."""

    def forward(self, v):
        return v * torch.sigmoid(v.norm(dim=-1, keepdim=True))


class Norms(nn.Module):
    """Invariant: per-point lengths."""

    def forward(self, v):
        return v.norm(dim=-1)


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(3, 3)  # declared first, called last
        self.norm = Norms()
        self.gate = VectorGate()

    def forward(self, x):
        v = self.gate(x)
        s = self.norm(v)
        return s.sum(-1) + self.mix(v).sum(dim=(-1, -2))


def test_layers_are_reported_in_forward_order_with_the_right_character():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 3)
    with pytest.warns(DiagnosticWarning, match=r"norm \(4 rows, rank 4\)$"):  # (4, 16): 4 rows only
        report = layerwise_equivariance(
            Backbone(), x, group=SO3(), generator=torch.Generator().manual_seed(0)
        )
    assert [layer.name for layer in report.layers] == ["gate", "norm", "mix"]
    gate, norm, mix = report["gate"], report["norm"], report["mix"]
    assert gate.procrustes < 1e-12 and gate.invariance > 0.1  # equivariant, not invariant
    assert norm.invariance < 1e-12  # invariant
    assert mix.procrustes > 1e-2  # a generic affine map of vectors is not equivariant
    assert gate.shape == (4, 16, 3) and gate.n_rows == 64 and gate.width == 3
    assert report.dtype == torch.float64
    assert "procrustes" in str(report)


def test_module_filter_and_reused_modules():
    gate = VectorGate()
    model = nn.Sequential(gate, nn.Identity(), gate)
    x = torch.randn(2, 8, 3)
    report = layerwise_equivariance(model, x, group=SO3(), modules=["0"])
    assert [layer.name for layer in report.layers] == ["0", "0#1"]  # the same module called twice


class Widen(nn.Module):
    """Equivariant in a non-orthonormal basis of a wide latent: rows ``v A`` with ``A`` (3, 64)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("a", torch.randn(3, 64, generator=torch.Generator().manual_seed(1)))

    def forward(self, v):
        return VectorGate()(v) @ self.a


def test_a_wide_low_rank_layer_is_fitted_on_its_span_with_fewer_rows_than_features():
    # 16 rows in width 64: a full-width fit is undetermined (it was nan); on the rank-3 span it is not
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 16 rows for rank 3: enough, no warning
        report = layerwise_equivariance(
            nn.Sequential(Widen()), x, group=SO3(), generator=torch.Generator().manual_seed(0)
        )
    layer = report.layers[0]
    assert (layer.n_rows, layer.width, layer.rank) == (16, 64, 3)
    assert layer.linear < 1e-10  # equivariant through a linear map of its span
    assert layer.procrustes > 1e-2  # not through an orthogonal one (the basis is not orthonormal)
    assert "rank 3/64" in str(report)


def test_a_generic_layer_stays_non_equivariant_on_its_span():
    x = torch.randn(4, 16, 3, dtype=torch.float64)
    torch.manual_seed(0)
    report = layerwise_equivariance(nn.Sequential(nn.Linear(3, 32), nn.Tanh()), x, group=SO3())
    assert report["1"].rank == 32 and report["1"].linear > 1e-2 and report["1"].procrustes > 1e-2


def test_too_few_rows_for_the_span_warn_and_still_report_a_number():
    model = nn.Sequential(nn.Linear(3, 16))
    with pytest.warns(DiagnosticWarning, match=r"0 \(4 rows, rank 4\)"):
        report = layerwise_equivariance(model, torch.randn(1, 4, 3), group=SO3())
    assert math.isfinite(report["0"].procrustes) and math.isfinite(report["0"].linear)
    assert report["0"].n_rows == 4 and report["0"].width == 16 and report["0"].rank == 4


def test_an_all_zero_layer_has_rank_zero_and_no_residual():
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        model[0].weight.zero_(), model[0].bias.fill_(-1.0)  # every ReLU dead
    report = layerwise_equivariance(model, torch.randn(2, 8, 3), group=SO3())
    assert report["1"].rank == 0 and report["1"].procrustes == 0.0 and report["1"].invariance == 0.0
