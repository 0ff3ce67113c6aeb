"""The ``transip`` command, driven through ``main([...])`` on tiny runs and the real-data fixtures."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest

from transip.cli import main
from transip.data import read_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
G2 = str(FIXTURES / "g2_xtb_small.extxyz")
ETHANOL = str(FIXTURES / "ethanol_small.extxyz")

TINY = [
    f"--data.train={G2}",
    "--data.val_fraction=0.25",
    "--data.split_by=frame",
    "--data.max_atoms_per_batch=48",
    "--model.d_model=32",
    "--model.n_layers=1",
    "--model.n_heads=2",
    "--model.num_rbf=8",
    "--train.steps=4",
    "--train.val_every=2",
    "--train.checkpoint_every=2",
    "--train.log_every=2",
    "--logging.tensorboard=false",
    "--logging.plots=false",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny training run shared by the commands that need a checkpoint."""
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--quiet", *TINY, f"--data.test={ETHANOL}", f"--logging.run_dir={path}"]) == 0
    return path


def test_train_prints_the_metrics_table(run_dir, capsys, tmp_path):
    # the module fixture already trained; a second short run shows the printed summary
    assert main(["train", "--quiet", *TINY, f"--logging.run_dir={tmp_path / 'r'}"]) == 0
    out = capsys.readouterr().out
    assert "E MAE meV" in out and "F MAE meV/Å" in out and "\nval " in out
    assert "latent |tau(R,z) - z_R|" in out
    assert (tmp_path / "r" / "metrics.json").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["overall"]["n_molecules"] == 10  # the ethanol test file


def test_train_with_a_yaml_file_and_print_config(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("optim:\n  lr: 2e-3\nequivariance:\n  mode: transaug\n")
    assert main(["train", str(cfg), "--print-config", "--train.steps=9"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.002" in out and "mode: transaug" in out and "steps: 9" in out


def test_configuration_errors_stop_before_any_work(tmp_path, capsys):
    assert main(["train", "--train.stepz=3", f"--logging.run_dir={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err
    assert "unknown key train.stepz" in err and "did you mean 'steps'" in err
    assert main(["train", "--data.train=/no/such/file.extxyz", f"--logging.run_dir={tmp_path / 'x'}"]) == 2
    assert "data.train: file not found: /no/such/file.extxyz" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing was created


def test_resume_a_finished_run_is_a_no_op_that_reports(run_dir, capsys):
    assert main(["train", "--quiet", "--resume", str(run_dir)]) == 0
    assert "E MAE meV" in capsys.readouterr().out


def test_evaluate_table_and_json(run_dir, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    assert main(["evaluate", str(run_dir / "best.pt"), G2, ETHANOL, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert G2 in out and ETHANOL in out and "  ethanol" not in out  # ethanol has one source: no breakdown
    payload = json.loads(out_json.read_text())
    assert payload["results"][ETHANOL]["overall"]["n_molecules"] == 10
    assert set(payload["results"][G2]["subsets"]) == {m.source for m in read_dataset(G2)}


def test_predict_writes_extxyz(run_dir, tmp_path, capsys):
    out = tmp_path / "pred.extxyz"
    assert main(["predict", str(run_dir / "best.pt"), ETHANOL, "-o", str(out), "--index", ":3"]) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) == 3 and "ref_energy" in frames[0].info
    assert np.isfinite(frames[0].get_forces()).all()
    assert "predicted 3 structures" in capsys.readouterr().out


def test_md_nve_and_langevin(run_dir, tmp_path, capsys):
    for ensemble in ("nve", "langevin"):
        out = tmp_path / f"{ensemble}.extxyz"
        args = [
            "md",
            ETHANOL,
            str(run_dir / "best.pt"),
            "-o",
            str(out),
            "--ensemble",
            ensemble,
            "--steps",
            "6",
            "--interval",
            "2",
            "--dt",
            "0.25",
        ]
        assert main(args) == 0
        frames = ase.io.read(out, ":")
        assert [f.info["md_step"] for f in frames] == [0, 2, 4, 6]
        assert "total energy" in capsys.readouterr().out
    assert main(["md", ETHANOL, str(run_dir / "best.pt"), "-o", str(tmp_path / "x.extxyz"), "--dt", "0"]) == 2


def test_probe_reports_symmetry_errors(run_dir, tmp_path, capsys):
    out_json = tmp_path / "probe.json"
    assert (
        main(["probe", str(run_dir / "best.pt"), ETHANOL, "--n-rotations", "2", "--json", str(out_json)]) == 0
    )
    text = capsys.readouterr().out
    assert "MLPTau" in text and "float64" in text
    report = json.loads(out_json.read_text())
    assert report["n_molecules"] == 10 and report["latent_rel_mean"] > 0


def test_data_subcommands(tmp_path, capsys):
    assert main(["data", "inspect", G2]) == 0
    assert "molecules        20" in capsys.readouterr().out
    refs = tmp_path / "refs.json"
    assert main(["data", "fit-references", G2, "-o", str(refs)]) == 0
    assert " C (Z=  6)" in capsys.readouterr().out
    assert "6" in json.loads(refs.read_text())["energies"]
    lmdb = tmp_path / "g2.aselmdb"
    assert main(["data", "convert", G2, str(lmdb)]) == 0
    again = read_dataset(lmdb)
    assert len(again) == 20 and again[3].energy == pytest.approx(read_dataset(G2)[3].energy)


def test_convert_to_a_directory_writes_metadata_sizes(tmp_path, capsys, monkeypatch):
    from transip.data import _aselmdb as fmt

    out = tmp_path / "g2"
    assert main(["data", "convert", G2, str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["data.aselmdb", "metadata.npz"]  # no temporary left
    truth = read_dataset(G2)
    assert np.load(out / "metadata.npz")["natoms"].tolist() == [len(m) for m in truth]
    decoded = []
    real = fmt.decode_value
    monkeypatch.setattr(fmt, "decode_value", lambda raw: decoded.append(1) or real(raw))
    ds = read_dataset(out)
    decoded.clear()
    assert ds.sizes.tolist() == truth.sizes.tolist() and not decoded  # from metadata.npz, no row read
    assert [m.energy for m in ds] == [m.energy for m in truth]
    monkeypatch.undo()

    capsys.readouterr()
    assert main(["data", "convert", G2, str(out), "--index", ":5"]) == 2
    assert "exists (pass --overwrite" in capsys.readouterr().err
    assert main(["data", "convert", G2, str(out), "--index", ":5", "--overwrite"]) == 0
    assert np.load(out / "metadata.npz")["natoms"].tolist() == truth.sizes[:5].tolist()
    assert read_dataset(out).sizes.tolist() == truth.sizes[:5].tolist()
    (out / "other.aselmdb").write_bytes(b"")
    assert main(["data", "convert", G2, str(out), "--overwrite"]) == 2
    assert "already holds other .aselmdb files (other.aselmdb)" in capsys.readouterr().err
    assert main(["data", "convert", G2, str(tmp_path / "g2.xyz")]) == 2
    assert "must be a directory or a *.aselmdb file" in capsys.readouterr().err


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("train", "evaluate", "predict", "md", "probe", "data"))
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "x.pt", "y.xyz", "--frobnicate"])
    assert e.value.code == 2
    assert main(["evaluate", "missing.pt", G2]) == 2
    assert "checkpoint not found: missing.pt" in capsys.readouterr().err
