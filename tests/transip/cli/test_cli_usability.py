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


def test_help_does_not_import_torch():
    # torch takes seconds to import: `transip --help` and the parser must not need it
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from transip.cli import main\n"
        "try:\n"
        "    main(['train', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'ase', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_package_names_still_resolve():
    import transip

    assert transip.TransIPCalculator.__name__ == "TransIPCalculator"
    assert {"TransIP", "read_dataset", "load_model"} <= set(dir(transip))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        transip.nope  # noqa: B018
