"""Checkpoints: round trip, element references, dtype, format guard and atomic writes."""

import ase.io
import pytest
import torch

from transip.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint
from transip.data import Batch, Molecule, bundled_dataset
from transip.model import TransIP, TransIPConfig


def _batch(dtype=torch.float32) -> Batch:
    frames = ase.io.read(bundled_dataset("g2_xtb"), ":200:40")
    mols = [Molecule(a.positions, a.numbers, charge=a.info["charge"], spin=a.info["spin"]) for a in frames]
    return Batch.from_molecules(mols, dtype=dtype)


def _model(dtype=torch.float32, **overrides) -> TransIP:
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny", **overrides)).to(dtype)
    refs = torch.zeros(119, dtype=torch.float64)
    refs[1:10] = torch.linspace(-2000.123456789, -10.987654321, 9, dtype=torch.float64)
    model.set_element_references(refs)
    model.set_energy_scale(0.37)
    return model.eval()


@pytest.mark.parametrize(
    ("dtype", "overrides"),
    [(torch.float32, {}), (torch.float64, {"pooling": "mean", "num_rbf": 0, "charge_range": (-3, 3)})],
)
def test_round_trip_gives_identical_outputs(tmp_path, dtype, overrides):
    model = _model(dtype, **overrides)
    batch = _batch(dtype)
    before = model(batch)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, step=12, metrics={"mae": 0.5})
    loaded = load_model(path)
    after = loaded(batch)
    assert loaded.config == model.config and not loaded.training
    assert next(loaded.parameters()).dtype == dtype
    assert torch.equal(after.energy, before.energy)
    assert torch.equal(after.forces, before.forces)
    assert torch.equal(loaded.element_energies, model.element_energies)
    assert loaded.element_energies.dtype == torch.float64
    assert float(loaded.energy_scale) == pytest.approx(0.37)


def test_checkpoint_contents_and_extra_state(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_batch(), training=True).energy.sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, optimizer=opt.state_dict(), epoch=2)
    payload = load_checkpoint(path)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["dtype"] == "float32"
    assert set(payload["versions"]) == {"transip", "torch"}
    assert torch.equal(payload["element_references"], model.element_energies)
    assert payload["extra"]["epoch"] == 2
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(payload["extra"]["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_atomic_write_leaves_previous_file_and_no_partial_file(tmp_path, monkeypatch):
    model = _model()
    path = save_checkpoint(tmp_path / "model.pt", model, step=1)
    real_save = torch.save

    def crashing_save(obj, f):
        real_save({"half": "written"}, f)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert load_checkpoint(path)["extra"]["step"] == 1


def test_rejects_foreign_files_and_newer_versions(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a TransIP checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    path = save_checkpoint(tmp_path / "model.pt", _model())
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(ValueError, match="format version"):
        load_model(path)
