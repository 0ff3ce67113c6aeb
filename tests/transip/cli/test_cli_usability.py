"""Command-line conveniences: space-separated overrides, the nearest key suggested."""

import pytest

from transip.cli import main


def test_an_override_may_take_its_value_after_a_space(capsys):
    assert main(["train", "--train.steps", "5", "--optim.lr", "2e-3", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "steps: 5" in out and "lr: 0.002" in out
    assert main(["train", "--train.seed", "--print-config"]) == 2
    assert "--train.seed needs a value (--train.seed=VALUE)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("--train.mode=transip", "unknown key train.mode (did you mean 'equivariance.mode'?)"),
        ("--train.stepz=3", "unknown key train.stepz (did you mean 'steps'?)"),
        ("--model.n_layer=2", "unknown key model.n_layer (did you mean 'n_layers'?)"),
        ("--optim.preset=S", "unknown key optim.preset (did you mean 'model.preset'?)"),
    ],
)
def test_an_unknown_key_suggests_the_nearest(capsys, override, hint):
    assert main(["train", override, "--print-config"]) == 2
    assert hint in capsys.readouterr().err
