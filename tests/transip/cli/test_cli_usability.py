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


def test_evaluate_reports_rmse_in_the_table_and_the_json(tmp_path, capsys):
    import json
    from pathlib import Path

    g2 = str(Path(__file__).resolve().parents[1] / "fixtures" / "g2_xtb_small.extxyz")
    tiny = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.num_rbf=8"]
    run = tmp_path / "run"
    args = [
        f"--data.train={g2}",
        *tiny,
        "--train.steps=1",
        "--eval.equivariance=false",
        "--logging.plots=false",
    ]
    assert main(["train", "--quiet", *args, f"--logging.run_dir={run}"]) == 0
    capsys.readouterr()
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run / "best.pt"), g2, "--group-by", "none", "--json", str(out)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split("  ")[-3:] == ["E RMSE meV", "E/atom RMSE meV", "F RMSE meV/Å"]
    overall = json.loads(out.read_text())["results"][g2]["overall"]
    assert overall["energy_rmse"] >= overall["energy_mae"] > 0  # RMSE >= MAE, always
    assert overall["force_rmse"] >= overall["force_mae"] > 0
    assert overall["energy_per_atom_rmse"] >= overall["energy_per_atom_mae"] > 0
