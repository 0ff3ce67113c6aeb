"""Fine-tuning (``train.init``): step 0 is the checkpoint, frozen weights stay, new elements, resume."""

from pathlib import Path

import pytest
import torch
from ase.data import atomic_numbers

from transip.checkpoint import load_checkpoint, load_model
from transip.data import Batch, read_dataset
from transip.training import ConfigError, fit_references, load_config, resolve_init, train
from transip.training._build import build_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ETHANOL = FIXTURES / "ethanol_small.extxyz"
G2 = FIXTURES / "g2_xtb_small.extxyz"


def _overrides(run_dir, *extra):
    """A run of 4 steps on a fixture, no model keys (as the conftest's tiny run, which sets a model)."""
    return [
        "--data.val_fraction=0.25",
        "--data.max_atoms_per_batch=48",
        "--train.steps=4",
        "--train.val_every=2",
        "--train.checkpoint_every=2",
        "--train.log_every=2",
        "--eval.max_atoms_per_batch=64",
        "--logging.progress=false",
        "--logging.tensorboard=false",
        "--logging.plots=false",
        f"--logging.run_dir={run_dir}",
        *extra,
    ]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A two-layer model trained 4 steps on ethanol frames: it knows H, C and O only."""
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    model = ["--model.d_model=32", "--model.n_layers=2", "--model.n_heads=2", "--model.num_rbf=8"]
    train(load_config(None, _overrides(run_dir, f"--data.train={ETHANOL}", *model)), quiet=True)
    return run_dir / "last.pt"


def _finetune(run_dir, ckpt, *extra):
    """Overrides of a fine-tuning run on the G2 fixture (which has elements the checkpoint lacks)."""
    return load_config(None, _overrides(run_dir, f"--data.train={G2}", f"--train.init={ckpt}", *extra))


def _ethanol_batch():
    return Batch.from_molecules(list(read_dataset(ETHANOL)))


def test_step_zero_predicts_exactly_what_the_checkpoint_predicts(tmp_path, pretrained):
    config = resolve_init(_finetune(tmp_path / "ft", pretrained))
    parts = build_run(config, device=torch.device("cpu"), dtype=torch.float32)
    model = parts.objective.model.eval()
    reference = load_model(pretrained)
    batch = _ethanol_batch()
    mine, theirs = model(batch), reference(batch)
    assert torch.equal(mine.energy, theirs.energy)
    assert torch.equal(mine.forces, theirs.forces)
    # the checkpoint's tau (same kind of tau in both runs) comes along
    saved_tau = load_checkpoint(pretrained)["extra"]["tau"]
    assert all(torch.equal(v, saved_tau[k]) for k, v in parts.objective.tau.state_dict().items())


def test_new_elements_get_references_and_known_ones_stay(tmp_path, pretrained):
    config = resolve_init(_finetune(tmp_path / "ft", pretrained))
    parts = build_run(config, device=torch.device("cpu"), dtype=torch.float32)
    refs = parts.objective.model.element_energies
    old = load_checkpoint(pretrained)["element_references"]
    known = [atomic_numbers[s] for s in ("H", "C", "O")]
    assert torch.equal(refs[known], old[known])
    g2_elements = set(fit_references(read_dataset(G2)).report.elements)
    new = sorted(g2_elements - set(known))
    assert new and all(float(old[z]) == 0.0 for z in new)
    assert all(float(refs[z]) != 0.0 for z in new), new  # every new element got a reference
    assert set(parts.fit.report.elements) == g2_elements | set(known)
    # refit: every reference comes from the new data, the known ones move
    refit = resolve_init(_finetune(tmp_path / "rf", pretrained, "--train.init_references=refit"))
    parts2 = build_run(refit, device=torch.device("cpu"), dtype=torch.float32)
    refs2 = parts2.objective.model.element_energies
    assert torch.equal(refs2, fit_references(parts2.train_set).references.energies.to(refs2))
    assert not torch.equal(refs2[known], old[known])


def test_frozen_parameters_stay_bit_identical(tmp_path, pretrained):
    run_dir = tmp_path / "ft"
    train(_finetune(run_dir, pretrained, "--train.freeze=[tokens, blocks.0]"), quiet=True)
    before, after = (
        load_checkpoint(pretrained)["state_dict"],
        load_checkpoint(run_dir / "last.pt")["state_dict"],
    )
    frozen = [k for k in before if k.startswith(("tokens.", "blocks.0.")) and before[k].is_floating_point()]
    trained = [k for k in before if k.startswith("blocks.1.") and before[k].is_floating_point()]
    assert frozen and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)


def test_a_fine_tuning_run_resumes_exactly(tmp_path, pretrained):
    extra = ("--train.freeze=[blocks.0]", "--train.checkpoint_every=100")
    train(_finetune(tmp_path / "full", pretrained, *extra), quiet=True)
    stopped = train(_finetune(tmp_path / "part", pretrained, *extra), quiet=True, stop_at=2)
    assert stopped.interrupted and stopped.step == 2
    resumed = load_config(tmp_path / "part" / "config.yaml")
    assert resumed.train.init == str(pretrained) and resumed.model.config.n_layers == 2
    result = train(resumed, run_dir=tmp_path / "part", resume=True, quiet=True)
    assert result.step == 4
    a = load_checkpoint(tmp_path / "full" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "part" / "last.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_overrides_that_change_the_weights_are_refused(tmp_path, pretrained):
    with pytest.raises(ConfigError, match=r"model\.d_model=64 \(the checkpoint has 32\)"):
        resolve_init(_finetune(tmp_path / "ft", pretrained, "--model.d_model=64"))
    # dropout does not change the weights: kept, with the checkpoint's shape
    config = resolve_init(_finetune(tmp_path / "ft", pretrained, "--model.dropout=0.2"))
    assert config.model.config.dropout == 0.2 and config.model.config.d_model == 32
    assert config.model.config.n_layers == 2  # the checkpoint's, not the default's 3


def test_bad_init_and_freeze_are_config_errors(tmp_path, pretrained):
    with pytest.raises(ConfigError, match="train.init: checkpoint not found"):
        resolve_init(_finetune(tmp_path / "ft", tmp_path / "missing.pt"))
    config = resolve_init(_finetune(tmp_path / "ft", pretrained, "--train.freeze=[block.0]"))
    with pytest.raises(ConfigError, match=r"train.freeze: 'block.0' names no parameter; .*blocks"):
        train(config, quiet=True)
    assert not (tmp_path / "ft").exists()  # refused before the run directory was made
