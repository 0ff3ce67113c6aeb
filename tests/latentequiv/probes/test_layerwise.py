"""Per-layer probe: which layers are invariant, which equivariant in some basis, which neither."""

import math

import torch
from torch import nn

from latentequiv.groups import SO3
from latentequiv.probes import layerwise_equivariance


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
    report = layerwise_equivariance(Backbone(), x, group=SO3(), generator=torch.Generator().manual_seed(0))
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


def test_too_few_rows_for_a_procrustes_fit_is_nan():
    model = nn.Sequential(nn.Linear(3, 16))
    report = layerwise_equivariance(model, torch.randn(1, 4, 3), group=SO3())
    assert math.isnan(report["0"].procrustes)
    assert report["0"].n_rows == 4 and report["0"].width == 16
