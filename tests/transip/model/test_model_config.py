"""TransIPConfig: presets, validation, parameter counts against the paper's Table 3."""

import pytest
import torch

from transip.model import TransIP, TransIPConfig

PAPER_PARAMS = {"S": 14e6, "M": 85e6, "L": 302e6}


def _count(config: TransIPConfig) -> int:
    with torch.device("meta"):  # no memory: L has ~300M parameters
        model = TransIP(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["S", "M", "L"])
def test_preset_parameter_count_within_10_percent_of_paper(name):
    count = _count(TransIPConfig.preset(name))
    assert abs(count - PAPER_PARAMS[name]) / PAPER_PARAMS[name] < 0.10, count


@pytest.mark.parametrize(("name", "shape"), [("S", (384, 8, 6)), ("M", (768, 12, 12)), ("L", (1024, 24, 16))])
def test_presets_match_paper_table_3(name, shape):
    c = TransIPConfig.preset(name)
    assert (c.d_model, c.n_layers, c.n_heads) == shape
    assert (c.dropout, c.attn_dropout, c.max_atoms) == (0.01, 0.0, 1024)


def test_tiny_preset_is_small():
    assert _count(TransIPConfig.preset("tiny")) < 200_000


def test_preset_overrides_and_unknown_name():
    assert TransIPConfig.preset("tiny", num_rbf=0, pooling="mean").pooling == "mean"
    with pytest.raises(ValueError, match="unknown preset"):
        TransIPConfig.preset("XL")


@pytest.mark.parametrize(
    "bad",
    [
        dict(d_model=65, n_heads=4),
        dict(pooling="max"),
        dict(num_rbf=-1),
        dict(charge_range=(3, -3)),
        dict(spin_range=(0, 3)),
        dict(bucket_growth=0.5),
    ],
)
def test_invalid_configs_raise(bad):
    with pytest.raises(ValueError):
        TransIPConfig.preset("tiny", **bad)


def test_dict_round_trip_and_unknown_keys():
    c = TransIPConfig.preset("tiny", charge_range=[-2, 2])
    assert c.charge_range == (-2, 2)
    assert TransIPConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown TransIPConfig fields"):
        TransIPConfig.from_dict({**c.to_dict(), "n_experts": 4})


def test_token_split_projection_only_when_needed():
    assert TransIP(TransIPConfig.preset("tiny")).tokens.project is None
    model = TransIP(TransIPConfig.preset("tiny", species_dim=16, position_dim=16))
    assert model.tokens.project is not None
    assert model.tokens.project.out_features == 64
