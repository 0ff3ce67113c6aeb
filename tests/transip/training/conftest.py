"""Tiny training runs on the real-data fixtures (``tests/transip/fixtures``), a few seconds each."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def tiny_overrides(run_dir: Path, *extra: str) -> list[str]:
    """A run of a few steps of a one-layer model on 15 GFN2-xTB frames, validated on 5."""
    return [
        f"--data.train={FIXTURES / 'g2_xtb_small.extxyz'}",
        "--data.val_fraction=0.25",
        "--data.split_by=frame",
        "--data.max_atoms_per_batch=48",
        "--model.d_model=32",
        "--model.n_layers=1",
        "--model.n_heads=2",
        "--model.num_rbf=8",
        "--train.steps=6",
        "--train.val_every=3",
        "--train.checkpoint_every=3",
        "--train.log_every=2",
        "--eval.max_atoms_per_batch=64",
        "--logging.progress=false",
        "--logging.tensorboard=false",
        "--logging.plots=false",
        f"--logging.run_dir={run_dir}",
        *extra,
    ]


@pytest.fixture
def fixtures() -> Path:
    """The real-data fixture folder."""
    return FIXTURES


@pytest.fixture
def tiny():
    """``tiny(run_dir, *extra)``: the overrides of a tiny run (see :func:`tiny_overrides`)."""
    return tiny_overrides
