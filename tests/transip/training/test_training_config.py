"""Config: YAML + typed overrides, and every bad config rejected up front with the key and file named."""

from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from transip.model import TransIP
from transip.training import (
    ConfigError,
    TrainingConfig,
    build_objective,
    check_config,
    config_to_dict,
    load_config,
    merge_config,
    parse_overrides,
    resolve_model_config,
    save_config,
)


def test_defaults_and_overrides_are_typed():
    cfg = load_config(
        None,
        [
            "--optim.lr=3e-4",
            "--train.steps=10",
            "--logging.progress=false",
            "--equivariance.mode=transaug",
            "--model.species_dim=none",
            "--model.charge_range=[-2, 2]",
            "--model.d_model=48",
        ],
    )
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.train.steps == 10 and isinstance(cfg.train.steps, int)
    assert cfg.logging.progress is False
    assert cfg.equivariance.mode == "transaug"
    model = resolve_model_config(cfg.model)
    assert model.species_dim is None and model.charge_range == (-2, 2) and model.d_model == 48
    assert model.n_layers == 3  # the default run's widened "tiny"


def test_yaml_then_command_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-3\ntrain:\n  steps: 50\nmodel:\n  preset: S\n  n_heads: 8\n")
    cfg = load_config(path, ["--train.steps=7"])
    assert cfg.optim.lr == 1e-3  # PyYAML reads "1e-3" as a string; the float field parses it
    assert cfg.train.steps == 7  # the command line wins
    model = resolve_model_config(cfg.model)
    # naming a preset drops the defaults' overrides; keys beside it apply
    assert (model.d_model, model.n_layers, model.num_rbf, model.n_heads) == (384, 8, 64, 8)
    later = resolve_model_config(load_config(path, ["--model.d_model=512"]).model)
    assert (later.d_model, later.n_heads) == (512, 8)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["--optim.learning_rate=1"], "optim.learning_rate"),
        (["--optimizer.lr=1"], "optimizer"),
        (["--train.steps=ten"], "train.steps expects an integer"),
        (["--train.steps=1.5"], "train.steps"),
        (["--optim.lr=fast"], "optim.lr expects a number"),
        (["--logging.progress=maybe"], "logging.progress expects a boolean"),
        (["--equivariance.mode=magic"], "equivariance.mode expects one of"),
        (["--equivariance.latent_pass=both"], "equivariance.latent_pass expects one of 'separate', 'joint'"),
        (["--model.d_modle=3"], "model.d_modle"),
        (["--model.preset=XXL"], "model.preset"),
        (["--model.charge_range=[1, 2, 3]"], "model.charge_range"),
        (["train.steps"], "--section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, needle):
    with pytest.raises(ConfigError, match="command line") as err:
        load_config(None, overrides)
    assert needle in str(err.value)


def test_latent_pass_reaches_the_objective():
    assert TrainingConfig().equivariance.latent_pass == "separate"
    for layout in ("separate", "joint"):
        cfg = load_config(None, [f"--equivariance.latent_pass={layout}", "--model.n_layers=1"])
        objective = build_objective(cfg, TransIP(resolve_model_config(cfg.model)))
        assert objective.latent_pass == layout


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        load_config(None, ["--train.step=3"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  steps: many\n")
    with pytest.raises(ConfigError, match="wrong.yaml: train.steps expects an integer"):
        load_config(wrong)
    section = tmp_path / "section.yaml"
    section.write_text("trian:\n  steps: 3\n")
    with pytest.raises(ConfigError, match="section.yaml: unknown section 'trian'.*did you mean 'train'"):
        load_config(section)


def test_check_config_catches_combinations_and_missing_data(tmp_path):
    with pytest.raises(ConfigError, match="data.train: file not found"):
        check_config(load_config(None, [f"--data.train={tmp_path / 'missing.extxyz'}"]))
    with pytest.raises(ConfigError, match="no bundled dataset 'nonsense'"):
        check_config(load_config(None, ["--data.train=bundled:nonsense"]))
    with pytest.raises(ConfigError, match="d_model=30 is not divisible"):
        check_config(load_config(None, ["--model.d_model=30", "--model.n_heads=4"]))
    with pytest.raises(ConfigError, match="amp=bf16 needs a CUDA device"):
        check_config(load_config(None, ["--train.amp=bf16"]))
    with pytest.raises(ConfigError, match="train.threads must be"):
        check_config(load_config(None, ["--train.threads=-1"]))
    with pytest.raises(ConfigError, match="contrastive needs equivariance.mode=transip"):
        check_config(load_config(None, ["--equivariance.loss=contrastive", "--equivariance.mode=none"]))


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["--optim.lr=2e-4", "--model.n_layers=3", "--eval.group_by=data_id"])
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert merge_config(TrainingConfig(), config_to_dict(cfg), "dict") == cfg


def test_packaged_default_yaml_matches_the_dataclasses():
    text = resources.files("transip").joinpath("configs", "default.yaml").read_text()
    assert merge_config(TrainingConfig(), yaml.safe_load(text), "default.yaml") == TrainingConfig()
    # every key of every section is spelled out in the packaged file
    assert yaml.safe_load(text) == config_to_dict(TrainingConfig())


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 10**7),
    lr=st.floats(1e-8, 1.0, allow_nan=False),
    flag=st.booleans(),
)
def test_override_values_parse_back_exactly(steps, lr, flag):
    cfg = load_config(None, [f"--train.steps={steps}", f"--optim.lr={lr!r}", f"--logging.plots={flag}"])
    assert (cfg.train.steps, cfg.optim.lr, cfg.logging.plots) == (steps, lr, flag)


def test_parse_overrides_keeps_equals_signs_in_values():
    assert parse_overrides(["--data.train=a=b.extxyz"]) == {"data": {"train": "a=b.extxyz"}}


def test_elements_missing_from_training_are_named(caplog):
    from transip.data import Molecule
    from transip.training._labels import warn_unseen_elements

    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.1]])
    val = [Molecule(pos, np.array([6, 8])), Molecule(pos, np.array([15, 9]))]
    with caplog.at_level("WARNING", logger="transip.training"):
        assert warn_unseen_elements(val, (1, 6, 8), "data.val") == [9, 15]
    assert "data.val contains elements absent from the training set: F, P" in caplog.text
    caplog.clear()
    assert warn_unseen_elements(val[:1], (6, 8), "data.val") == []
    assert warn_unseen_elements(None, (6, 8), "data.test") == []
    assert caplog.text == ""


def test_reference_fit_skips_the_mae_pass_beyond_the_limit(monkeypatch):
    from transip.data import Molecule
    from transip.training import _labels

    rng = np.random.default_rng(0)
    mols = []
    for _ in range(12):
        numbers = rng.choice([1, 6, 8], size=int(rng.integers(2, 6)))
        m = Molecule(rng.normal(size=(len(numbers), 3)) * 3, numbers)
        m.energy = float(numbers.sum() * -1.5 + rng.normal())
        mols.append(m)
    small = _labels.fit_references(mols)
    monkeypatch.setattr(_labels, "MAE_PASS_LIMIT", len(mols) - 1)
    large = _labels.fit_references(mols)
    assert np.isfinite(small.report.mae) and np.isnan(large.report.mae)
    assert large.references == small.references or np.allclose(
        large.references.energies, small.references.energies, rtol=0, atol=1e-9
    )
    assert large.energy_scale == pytest.approx(small.energy_scale, rel=1e-9)
