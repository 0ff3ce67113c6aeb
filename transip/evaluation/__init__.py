"""Evaluation: OMol25 accuracy metrics, symmetry errors on data, and the prediction writer.

Metrics are pure functions on tensors plus an accumulator of sums and counts (so they can be
summed over batches, subsets and processes); :func:`evaluate` runs a model over a dataset,
:func:`equivariance_report` measures how far it is from rotational symmetry, and
:func:`write_predictions` writes its predictions as extended XYZ.
"""

from ._equivariance import (
    ROTATION_STATISTICS,
    EquivarianceMetrics,
    empty_statistics,
    equivariance_report,
    rotation_statistics,
    summarise_statistics,
)
from ._evaluate import EvaluationReport, Predictions, evaluate
from ._loader import inference_batches, subset_key
from ._metrics import (
    STAT_COLUMNS,
    MetricAccumulator,
    Metrics,
    energy_mae,
    energy_per_atom_mae,
    force_cosine,
    force_mae,
    molecule_statistics,
)
from ._plots import plot_learning_curves, plot_parity
from ._predict import write_predictions
from ._sums import NamedSums
from ._table import format_equivariance, format_table
from ._uncertainty import SpreadRanking, spearman, spread_ranking

__all__ = [
    "ROTATION_STATISTICS",
    "STAT_COLUMNS",
    "EquivarianceMetrics",
    "EvaluationReport",
    "MetricAccumulator",
    "Metrics",
    "NamedSums",
    "Predictions",
    "SpreadRanking",
    "empty_statistics",
    "energy_mae",
    "energy_per_atom_mae",
    "equivariance_report",
    "evaluate",
    "force_cosine",
    "force_mae",
    "format_equivariance",
    "format_table",
    "inference_batches",
    "molecule_statistics",
    "plot_learning_curves",
    "plot_parity",
    "rotation_statistics",
    "spearman",
    "spread_ranking",
    "subset_key",
    "summarise_statistics",
    "write_predictions",
]
