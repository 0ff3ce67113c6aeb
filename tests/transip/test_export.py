"""transip.export: the exported file computes the checkpoint's energies and forces, loaded by torch alone."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transip.checkpoint import save_checkpoint
from transip.data import Batch, bundled_dataset, read_dataset
from transip.export import export_model, load_exported, save_exported
from transip.model import TransIP, TransIPConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = TransIPConfig.preset(
        "tiny", d_model=32, n_layers=2, n_heads=2, num_rbf=8, neighbour_channels=4, angular_channels=4
    )
    model = TransIP(config).double().eval()
    with torch.no_grad():  # references as a trained model has them: energies of realistic size
        model.set_element_references(torch.linspace(-20.0, -1.0, 119, dtype=torch.float64))
        model.set_energy_scale(2.5)
    return model


def _inputs(mol, dtype):
    return (
        torch.tensor(mol.positions, dtype=dtype),
        torch.tensor(mol.numbers, dtype=torch.long),
        torch.tensor(int(mol.charge)),
        torch.tensor(int(mol.spin)),
    )


@pytest.mark.parametrize("dataset", ["ethanol_test", "acac_test_300K"])
def test_exported_file_matches_the_model_on_bundled_molecules(tmp_path, model, dataset):
    mols = list(read_dataset(bundled_dataset(dataset), index="::200"))[:3]
    path = save_exported(export_model(model, len(mols[0].numbers)), tmp_path / "m.pt2")
    program, meta = load_exported(path)
    assert meta["num_atoms"] == len(mols[0].numbers) and meta["dtype"] == "float64"
    for mol in mols:  # several frames: the file is not tied to the structure it was traced on
        energy, forces = program(*_inputs(mol, torch.float64))
        ref = model(Batch.from_molecules([mol], dtype=torch.float64))
        assert energy.dtype == torch.float64
        torch.testing.assert_close(energy, ref.energy[0], rtol=0, atol=1e-9)
        torch.testing.assert_close(forces, ref.forces, rtol=0, atol=1e-9)


def test_exported_file_loads_without_transip(tmp_path, model):
    mol = read_dataset(FIXTURES / "g2_xtb_small.extxyz")[0]  # PH3, charged and spin states vary in the set
    path = save_exported(export_model(model, len(mol.numbers)), tmp_path / "m.pt2")
    torch.save(_inputs(mol, torch.float64), tmp_path / "inputs.pt")
    script = (
        "import sys, torch\n"
        "sys.modules['transip'] = None  # any import of transip fails\n"
        f"program = torch.export.load({str(path)!r}).module()\n"
        f"e, f = program(*torch.load({str(tmp_path / 'inputs.pt')!r}))\n"
        f"torch.save((e, f), {str(tmp_path / 'out.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    energy, forces = torch.load(tmp_path / "out.pt")
    ref = model(Batch.from_molecules([mol], dtype=torch.float64))
    torch.testing.assert_close(energy, ref.energy[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(forces, ref.forces, rtol=0, atol=1e-9)


def test_cli_export_refuses_to_overwrite(tmp_path, model):
    from transip.cli import main

    ckpt = save_checkpoint(tmp_path / "model.pt", model)
    out = tmp_path / "model.pt2"
    assert main(["export", str(ckpt), "-o", str(out), "--atoms", "4"]) == 0
    program, meta = load_exported(out)
    assert meta["num_atoms"] == 4 and meta["checkpoint"] == str(ckpt)
    assert main(["export", str(ckpt), "-o", str(out), "--atoms", "4"]) == 2  # exists
    assert main(["export", str(ckpt), "-o", str(out), "--atoms", "5", "--overwrite"]) == 0
    assert load_exported(out)[1]["num_atoms"] == 5
    before = ckpt.read_bytes()
    assert main(["export", str(ckpt), "-o", str(ckpt), "--atoms", "4", "--overwrite"]) == 2
    assert ckpt.read_bytes() == before  # never over a checkpoint
