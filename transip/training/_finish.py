"""The end of a run: evaluate the best checkpoint, draw the figures, write ``metrics.json``."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from transip.evaluation import (
    EquivarianceMetrics,
    EvaluationReport,
    equivariance_report,
    evaluate,
    plot_learning_curves,
    plot_parity,
)

from ._checkpointing import load_inference_weights
from ._config import TrainingConfig
from ._logging import CSVLog

log = logging.getLogger("transip.training")


@dataclass(frozen=True)
class FinalReport:
    """Evaluation of the best checkpoint of a finished run.

    Attributes:
        best_step: the step ``best.pt`` was written at.
        val: validation-set report (with per-subset metrics).
        test: test-set report, if a test set was configured.
        equivariance: symmetry errors on the validation set (float64), if enabled.
        figures: paths of the figures written (empty without matplotlib).
    """

    best_step: int
    val: EvaluationReport
    test: EvaluationReport | None
    equivariance: EquivarianceMetrics | None
    figures: tuple[Path, ...] = ()

    def as_dict(self) -> dict:
        return {
            "best_step": self.best_step,
            "val": self.val.as_dict(),
            "test": None if self.test is None else self.test.as_dict(),
            "equivariance": None if self.equivariance is None else self.equivariance.as_dict(),
            "figures": [str(p) for p in self.figures],
        }


def _parity(report: EvaluationReport, run_dir: Path, name: str) -> list[Path]:
    p = report.predictions
    out = []
    if p is not None and p.energy_true is not None and len(p.energy):
        # referenced energies: the element references would make any parity plot look perfect
        out.append(
            plot_parity(
                p.energy - p.energy_reference,
                p.energy_true - p.energy_reference,
                run_dir / f"parity_energy_{name}.png",
                quantity="referenced energy",
                unit="eV",
            )
        )
    if p is not None and p.forces is not None and p.forces_true is not None:
        out.append(
            plot_parity(
                p.forces,
                p.forces_true,
                run_dir / f"parity_forces_{name}.png",
                quantity="force component",
                unit="eV/Å",
            )
        )
    return [f for f in out if f is not None]


def finish_run(
    config: TrainingConfig,
    run_dir: Path,
    objective,
    ema,
    val_set,
    test_set,
    *,
    device: torch.device,
    dtype: torch.dtype,
    enabled: bool = True,
) -> FinalReport:
    """Load ``best.pt`` into the model, evaluate, plot, and write ``metrics.json``."""
    best = run_dir / "best.pt"
    best_step = -1
    if best.is_file():
        best_step = load_inference_weights(best, objective)
    elif ema is not None:
        ema.copy_to(objective)  # no best.pt (no labels): evaluate the averaged weights
    model = objective.model
    kwargs = dict(
        max_atoms=config.eval.max_atoms_per_batch,
        group_by=config.eval.group_by,
        device=device,
        dtype=dtype,
        keep_predictions=True,
    )
    val = evaluate(model, val_set, **kwargs)
    test = evaluate(model, test_set, **kwargs) if test_set is not None else None
    eq = None
    if config.eval.equivariance:
        eq = equivariance_report(
            model,
            val_set,
            tau=objective.tau,
            target=config.equivariance.target,
            n_rotations=config.eval.n_rotations,
            seed=config.train.seed + 3,
            device=device,
            max_atoms=config.eval.max_atoms_per_batch,
        )
    figures: list[Path] = []
    if enabled and config.logging.plots:
        curves = plot_learning_curves(
            CSVLog(run_dir / "train.csv").rows(),
            CSVLog(run_dir / "val.csv").rows(),
            run_dir / "learning_curves.png",
        )
        figures += [curves] if curves is not None else []
        figures += _parity(test if test is not None else val, run_dir, "test" if test is not None else "val")
    report = FinalReport(best_step, val, test, eq, tuple(figures))
    if enabled:
        tmp = run_dir / f".metrics.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(report.as_dict(), indent=2))
        os.replace(tmp, run_dir / "metrics.json")
        log.info("final metrics written to %s", run_dir / "metrics.json")
    return report
