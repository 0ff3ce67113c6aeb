"""No command replaces an existing file without ``--overwrite``, none ever writes over a checkpoint,
and an interrupted ``transip md`` leaves a readable trajectory."""

import signal
from pathlib import Path

import ase.io
import pytest

from transip.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
G2 = str(FIXTURES / "g2_xtb_small.extxyz")
ETHANOL = str(FIXTURES / "ethanol_small.extxyz")

TINY = [
    f"--data.train={G2}",
    "--data.val_fraction=0.25",
    "--model.d_model=32",
    "--model.n_layers=1",
    "--model.n_heads=2",
    "--model.num_rbf=8",
    "--train.steps=2",
    "--train.val_every=2",
    "--eval.equivariance=false",
    "--logging.tensorboard=false",
    "--logging.plots=false",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--quiet", *TINY, f"--logging.run_dir={path}"]) == 0
    return path


def test_train_into_a_finished_run_is_refused_and_changes_nothing(run_dir, capsys):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert main(["train", "--quiet", *TINY, f"--logging.run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{run_dir} already holds a run" in err
    assert f"--resume {run_dir}" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert main(["train", "--resume", str(run_dir), "--overwrite"]) == 2
    assert "pass one of them" in capsys.readouterr().err


def test_train_overwrite_starts_afresh(tmp_path, capsys):
    path = tmp_path / "run"
    assert main(["train", "--quiet", *TINY, f"--logging.run_dir={path}"]) == 0
    assert (
        main(["train", "--quiet", *TINY, "--train.seed=3", f"--logging.run_dir={path}", "--overwrite"]) == 0
    )
    assert "seed: 3" in (path / "config.yaml").read_text()
    assert (path / "val.csv").read_text().count("\n") == 2  # header and one row: the old rows are gone


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "{ckpt}", ETHANOL, "-o", "{out}", "--index", ":2"],
        ["evaluate", "{ckpt}", ETHANOL, "--index", ":2", "--json", "{out}"],
        ["probe", "{ckpt}", ETHANOL, "--index", ":1", "--n-rotations", "1", "--json", "{out}"],
        ["md", ETHANOL, "{ckpt}", "-o", "{out}", "--steps", "2", "--interval", "1"],
        ["data", "fit-references", G2, "-o", "{out}"],
    ],
    ids=lambda c: " ".join(c[:2]) if c[0] == "data" else c[0],
)
def test_an_existing_output_needs_overwrite_and_a_checkpoint_is_never_replaced(
    command, run_dir, tmp_path, capsys
):
    ckpt = run_dir / "best.pt"
    out = tmp_path / "out"
    out.write_text("keep me")

    def args(target):
        return [a.format(ckpt=ckpt, out=target) for a in command]

    assert main(args(out)) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"transip {command[0]}: error: {out} exists (pass --overwrite to replace it)"
    )
    assert out.read_text() == "keep me"
    assert main([*args(out), "--overwrite"]) == 0
    assert out.read_text() != "keep me"
    capsys.readouterr()
    checkpoint = ckpt.read_bytes()
    assert main([*args(ckpt), "--overwrite"]) == 2
    assert f"{ckpt} is a checkpoint: refusing to write" in capsys.readouterr().err
    assert ckpt.read_bytes() == checkpoint


def test_data_convert_onto_an_existing_file_names_overwrite(tmp_path, capsys):
    out = tmp_path / "g2.aselmdb"
    assert main(["data", "convert", G2, str(out)]) == 0
    assert main(["data", "convert", G2, str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{out} exists (pass --overwrite to replace it)")
    assert main(["data", "convert", G2, str(out), "--overwrite", "--index", ":3"]) == 0


def test_md_interrupted_leaves_the_frames_so_far(run_dir, tmp_path, capsys, monkeypatch):
    from transip.calculator import TransIPCalculator

    out = tmp_path / "md.extxyz"
    calls, on_disk = [0], []
    real = TransIPCalculator.calculate

    def calculate(self, *a, **k):
        calls[0] += 1
        if calls[0] == 6:  # what a kill would find, then Ctrl-C
            on_disk.append(len(ase.io.read(out, ":")))
            signal.raise_signal(signal.SIGINT)
        return real(self, *a, **k)

    monkeypatch.setattr(TransIPCalculator, "calculate", calculate)
    args = ["md", ETHANOL, str(run_dir / "best.pt"), "-o", str(out), "--steps", "50", "--interval", "2"]
    assert main(args) == 130
    captured = capsys.readouterr()
    frames = ase.io.read(out, ":")
    assert on_disk == [3]  # steps 0, 2, 4 were flushed as they were computed
    assert [f.info["md_step"] for f in frames] == [0, 2, 4]
    assert "interrupted at step" in captured.err and "3 frames" in captured.out
    assert "md: step" not in captured.err  # no progress line before a tenth of the run


def test_md_progress_lines_without_a_terminal(run_dir, tmp_path, capsys):
    args = ["md", ETHANOL, str(run_dir / "best.pt"), "-o", str(tmp_path / "md.extxyz"), "--steps", "20"]
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("md: step")]
    assert [line.split(",")[0] for line in lines] == [f"md: step {k}/20" for k in range(2, 21, 2)]


def test_md_killed_with_sigkill_leaves_whole_frames(run_dir, tmp_path):
    """A real ``kill -9`` of ``transip md`` in a subprocess, after a few frames reached the disk."""
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "md.extxyz"
    command = [sys.executable, "-m", "transip.cli", "md", ETHANOL, str(run_dir / "best.pt"), "-o", str(out)]
    command += ["--steps", "100000", "--interval", "1"]  # far more than it runs before the kill
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # a bound on a stuck start, not a measurement
    try:
        while not (out.exists() and out.read_text().count("md_step=") >= 4):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "md wrote no frames"
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no handler runs, nothing is written on the way out
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    frames = ase.io.read(out, ":")
    assert len(frames) >= 4
    assert [f.info["md_step"] for f in frames] == list(range(len(frames)))
    assert all(len(f) == 9 and f.get_forces().shape == (9, 3) for f in frames)  # whole frames
    assert out.read_text().endswith("\n")
