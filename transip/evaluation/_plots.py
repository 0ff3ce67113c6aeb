"""Figures of a run: learning curves and parity plots (matplotlib is optional).

Every function returns the path it wrote, or ``None`` when matplotlib is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is an optional extra
        return None
    return plt


def _column(rows: Sequence[Mapping[str, str]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs, strict=True)
    return np.asarray(steps), np.asarray(values)


def plot_learning_curves(
    train_rows: Sequence[Mapping[str, str]], val_rows: Sequence[Mapping[str, str]], path: str | Path
) -> Path | None:
    """Training losses (log scale) and validation metrics against the step.

    Args:
        train_rows: rows of ``train.csv`` (``step``, ``loss``, ``loss_energy``, ...).
        val_rows: rows of ``val.csv`` (``step``, ``energy_mae``, ``force_mae``, ...).
        path: the image to write.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "loss_energy", "loss_force", "loss_equivariance"):
        x, y = _column(train_rows, key)
        if len(x):
            axes[0].plot(x, y, label=key)
    axes[0].set(xlabel="step", ylabel="training loss", yscale="log")
    axes[0].legend()
    for key, label in (
        ("energy_mae", "energy MAE (meV)"),
        ("energy_per_atom_mae", "energy MAE (meV/atom)"),
        ("force_mae", "force MAE (meV/Å)"),
    ):
        x, y = _column(val_rows, key)
        if len(x):
            axes[1].plot(x, y, marker="o", label=label)
    axes[1].set(xlabel="step", ylabel="validation", yscale="log")
    axes[1].legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_parity(
    predicted: np.ndarray, reference: np.ndarray, path: str | Path, *, quantity: str, unit: str
) -> Path | None:
    """Predicted against reference values with the diagonal and the MAE in the title.

    Args:
        predicted, reference: arrays of the same shape (flattened).
        path: the image to write.
        quantity: e.g. ``"energy"``; unit: e.g. ``"eV"``.
    """
    plt = _pyplot()
    if plt is None:
        return None
    p, r = np.ravel(predicted), np.ravel(reference)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(r, p, s=4, alpha=0.5)
    if len(r):
        lo, hi = float(min(r.min(), p.min())), float(max(r.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_title(f"{quantity}: MAE {np.abs(p - r).mean():.4g} {unit}")
    ax.set(xlabel=f"true {quantity} ({unit})", ylabel=f"predicted {quantity} ({unit})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
