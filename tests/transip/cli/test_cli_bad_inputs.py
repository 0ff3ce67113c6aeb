"""Every bad input: exit 2 with one line naming the file, row, field or key and the fix, or a
one-line warning where the input is legal; never a traceback, a crash or silence."""

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from transip.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
G2 = str(FIXTURES / "g2_xtb_small.extxyz")

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
def files(tmp_path_factory):
    """A trained checkpoint and one bad input of each kind."""
    d = tmp_path_factory.mktemp("bad")
    assert main(["train", "--quiet", *TINY, f"--logging.run_dir={d / 'run'}"]) == 0
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=-10.0, forces=np.zeros((3, 3)))
    write(d / "water.extxyz", water)
    charged = molecule("H2O")
    charged.info["charge"] = 50
    write(d / "charge50.extxyz", charged)
    g2 = read(G2, ":")
    g2[3].info["charge"] = 50
    write(d / "g2_charge50.extxyz", g2)
    g2[3].info["charge"], g2[5].info["spin"] = 0, 12
    write(d / "g2_spin12.extxyz", g2)
    odd = molecule("H2O")
    odd.info["spin"] = 2
    write(d / "spin2.extxyz", odd)
    rng = np.random.default_rng(0)
    write(d / "big.extxyz", Atoms("C" * 1100, positions=rng.uniform(0, 60, (1100, 3))))
    write(d / "nolabels.extxyz", [molecule("H2O"), molecule("CH4")] * 5)
    write(d / "xe.extxyz", Atoms("XeU", positions=[[0, 0, 0], [0, 0, 3]]))
    write(d / "h.extxyz", Atoms("H", positions=[[0, 0, 0]]))
    (d / "empty.extxyz").write_text("")
    (d / "empty.pt").write_bytes(b"")
    (d / "garbage.pt").write_text("not a checkpoint at all")
    ckpt = (d / "run" / "best.pt").read_bytes()
    (d / "truncated.pt").write_bytes(ckpt[: len(ckpt) // 2])
    assert main(["data", "convert", G2, str(d / "g2.aselmdb")]) == 0
    lmdb = (d / "g2.aselmdb").read_bytes()
    (d / "truncated.aselmdb").write_bytes(lmdb[: len(lmdb) // 2])
    return d


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"transip {command}: error: "), err
    return err


def test_a_truncated_aselmdb_is_an_error_not_a_bus_error(files, capsys, tmp_path):
    lmdb = files / "truncated.aselmdb"
    assert main(["data", "inspect", str(lmdb)]) == 2
    err = _one_line_error(capsys, "data")
    assert f"{lmdb}: file: truncated: " in err and "copy it again" in err
    assert main(["evaluate", str(files / "run" / "best.pt"), str(lmdb)]) == 2
    assert "truncated" in _one_line_error(capsys, "evaluate")
    assert main(["train", *TINY, f"--data.train={lmdb}", f"--logging.run_dir={tmp_path / 'r'}"]) == 2
    assert "truncated" in _one_line_error(capsys, "train")
    assert not (tmp_path / "r").exists()
    (tmp_path / "x.aselmdb").write_text("hello")
    assert main(["data", "inspect", str(tmp_path / "x.aselmdb")]) == 2
    assert "not an LMDB (.aselmdb) file" in _one_line_error(capsys, "data")


def test_an_empty_extxyz_is_an_error(files, capsys):
    assert main(["data", "inspect", str(files / "empty.extxyz")]) == 2
    assert f"{files / 'empty.extxyz'}: file: the file is empty" in _one_line_error(capsys, "data")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.pt", "is empty (0 bytes), not a checkpoint"),
        ("garbage.pt", "cannot be read as a checkpoint, truncated or corrupt?"),
        ("truncated.pt", "cannot be read as a checkpoint, truncated or corrupt?"),
        ("water.extxyz", "cannot be read as a checkpoint"),
    ],
)
def test_a_bad_checkpoint_is_an_error(files, capsys, name, message):
    assert main(["evaluate", str(files / name), G2]) == 2
    assert f"{files / name}" in (err := _one_line_error(capsys, "evaluate")) and message in err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("big.extxyz", "big.extxyz[0]: numbers: 1100 atoms exceed the model's context, max_atoms=1024"),
        ("charge50.extxyz", "charge50.extxyz[0]: charge: 50 is outside the model's charge_range [-10, 10]"),
    ],
)
def test_a_molecule_the_model_cannot_take_is_an_error(files, capsys, tmp_path, name, message):
    out = tmp_path / "p.extxyz"
    assert main(["predict", str(files / "run" / "best.pt"), str(files / name), "-o", str(out)]) == 2
    assert message in _one_line_error(capsys, "predict")
    assert not out.exists()


def test_unknown_elements_and_odd_spin_are_warnings(files, capsys, tmp_path):
    ckpt = str(files / "run" / "best.pt")
    assert main(["predict", ckpt, str(files / "xe.extxyz"), "-o", str(tmp_path / "a.extxyz")]) == 0
    err = capsys.readouterr().err
    assert "transip predict: warning: the model has no reference energy for Xe, U" in err
    assert main(["evaluate", ckpt, str(files / "spin2.extxyz"), "--no-forces"]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("transip evaluate: warning: ") and len(err.splitlines()) == 1
    assert "spin multiplicity 2 with 10 electrons" in err and "need an odd multiplicity" in err


def test_training_without_energies_fails_before_the_run_directory(files, capsys, tmp_path):
    run = tmp_path / "run"
    assert (
        main(["train", *TINY, f"--data.train={files / 'nolabels.extxyz'}", f"--logging.run_dir={run}"]) == 2
    )
    err = _one_line_error(capsys, "train")
    assert "nolabels.extxyz: energy: no molecule has an energy" in err and "energy_key" in err
    assert not run.exists()


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("data.train", "g2_charge50.extxyz", "g2_charge50.extxyz[3]: charge: 50 is outside the model's "),
        ("data.val", "g2_spin12.extxyz", "g2_spin12.extxyz[5]: spin: 12 is outside the model's spin_range"),
    ],
)
def test_training_data_outside_the_models_charge_or_spin_range_fails_before_the_run_directory(
    files, capsys, tmp_path, option, name, message
):
    # was a traceback from the model's embedding at the first step, after the run directory was made
    run = tmp_path / "run"
    assert main(["train", *TINY, f"--{option}={files / name}", f"--logging.run_dir={run}"]) == 2
    err = _one_line_error(capsys, "train")
    assert message in err and "widen model." in err
    assert not run.exists()


def test_md_index_out_of_range_and_a_single_atom(files, capsys, tmp_path):
    ckpt = str(files / "run" / "best.pt")
    assert main(["md", G2, ckpt, "-o", str(tmp_path / "a.extxyz"), "--index", "99999"]) == 2
    assert "--index 99999: index 99999 out of range for 20 structures" in _one_line_error(capsys, "md")
    assert main(["md", str(files / "h.extxyz"), ckpt, "-o", str(tmp_path / "b.extxyz")]) == 2
    assert "a single atom; MD needs at least 2" in _one_line_error(capsys, "md")
    assert not (tmp_path / "a.extxyz").exists() and not (tmp_path / "b.extxyz").exists()


def test_an_energy_key_that_finds_nothing_names_the_key_and_the_file(capsys):
    assert main(["data", "inspect", G2, "--energy-key", "nope"]) == 2
    err = _one_line_error(capsys, "data")
    assert f"{G2}[0] has no 'nope' (--energy-key nope)" in err and "method" in err


def test_probe_needs_a_rotation(files, capsys):
    assert main(["probe", str(files / "run" / "best.pt"), G2, "--n-rotations", "0"]) == 2
    assert "--n-rotations must be at least 1" in _one_line_error(capsys, "probe")


#: the cases of docs/transip/errors.md, in its order: (what, command line with {d} the folder of bad files)
DOC_CASES = [
    ("training into a finished run", "train {tiny} --logging.run_dir={d}/run"),
    ("--resume with --overwrite", "train --resume {d}/run --overwrite"),
    ("an existing output", "predict {d}/run/best.pt {d}/water.extxyz -o {d}/water.extxyz"),
    (
        "an output over a checkpoint",
        "predict {d}/run/best.pt {d}/water.extxyz -o {d}/run/last.pt --overwrite",
    ),
    ("a truncated .aselmdb", "data inspect {d}/truncated.aselmdb"),
    ("an empty extxyz", "data inspect {d}/empty.extxyz"),
    ("an empty checkpoint", "evaluate {d}/empty.pt {d}/water.extxyz"),
    ("a garbage checkpoint", "evaluate {d}/garbage.pt {d}/water.extxyz"),
    ("a molecule larger than max_atoms", "predict {d}/run/best.pt {d}/big.extxyz -o {d}/p.extxyz"),
    ("charge 50", "predict {d}/run/best.pt {d}/charge50.extxyz -o {d}/p.extxyz"),
    (
        "charge 50 in the training data",
        "train {tiny} --data.train={d}/g2_charge50.extxyz --logging.run_dir={d}/r3",
    ),
    (
        "training data without energies",
        "train {tiny} --data.train={d}/nolabels.extxyz --logging.run_dir={d}/r2",
    ),
    ("md --index out of range", "md {d}/water.extxyz {d}/run/best.pt -o {d}/md.extxyz --index 99999"),
    ("md on a single atom", "md {d}/h.extxyz {d}/run/best.pt -o {d}/md.extxyz"),
    ("--energy-key that finds nothing", "data inspect {d}/water.extxyz --energy-key nope"),
    ("probe --n-rotations 0", "probe {d}/run/best.pt {d}/water.extxyz --n-rotations 0"),
    ("an unknown key", "train --train.mode=transip"),
    ("an override without a value", "train --train.seed"),
    (
        "elements the model was not trained on (warning)",
        "predict {d}/run/best.pt {d}/xe.extxyz -o {d}/xe-p.extxyz",
    ),
    (
        "spin parity against the electron count (warning)",
        "predict {d}/run/best.pt {d}/spin2.extxyz -o {d}/s-p.extxyz",
    ),
]

ERRORS_MD = Path(__file__).resolve().parents[3] / "docs" / "transip" / "errors.md"
BEGIN, END = "<!-- generated by tests/transip/cli/test_cli_bad_inputs.py: begin -->", "<!-- end -->"


def _doc_block(files, capsys) -> str:
    tiny = " ".join(TINY[1:])  # without --data.train, which the cases give themselves when they need to
    out = []
    for what, line in DOC_CASES:
        argv = line.format(d=files, tiny=f"--data.train={G2} {tiny}").split()
        code = main(argv)
        err = capsys.readouterr().err.strip().replace(str(files), "D").replace(G2, "g2.extxyz")
        shown = line.format(d="D", tiny="...")
        out += [f"**{what}** (exit {code})", "", "```text", f"$ transip {shown}", err, "```", ""]
    return "\n".join(out)


def test_errors_md_shows_the_messages_the_commands_give(files, capsys):
    """docs/transip/errors.md, between its markers, is what these commands print; rewrite it with
    TRANSIP_WRITE_DOCS=1 after changing a message."""
    import os

    block = _doc_block(files, capsys)
    text = ERRORS_MD.read_text()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    if os.environ.get("TRANSIP_WRITE_DOCS"):
        ERRORS_MD.write_text(f"{head}{BEGIN}\n\n{block}\n{END}{tail}")
    assert text == f"{head}{BEGIN}\n\n{block}\n{END}{tail}"
