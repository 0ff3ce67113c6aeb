"""Training TransIP: configuration, the objective, the schedule, EMA, and the resumable loop.

Entry points: :func:`load_config` (YAML + ``--section.key=value`` overrides) and :func:`train`.
The pieces are usable on their own: :func:`compute_objective` / :class:`TransIPObjective` (the
loss), :func:`train_step` (one optimisation step), :func:`warmup_cosine` (the schedule),
:class:`ExponentialMovingAverage`.
"""

from ._build import (
    LATENT_LOSSES,
    TAU_KINDS,
    build_latent_loss,
    build_model,
    build_objective,
    build_optimizer,
    build_tau,
    fit_references,
    load_datasets,
    resolve_model_config,
    resolve_path,
)
from ._checkpointing import load_trained, save_training_checkpoint
from ._config import (
    ConfigError,
    DataConfig,
    EquivarianceConfig,
    EvalConfig,
    LoggingConfig,
    LossConfig,
    ModelSection,
    OptimConfig,
    TrainConfig,
    TrainingConfig,
    config_to_dict,
    load_config,
    merge_config,
    parse_overrides,
    save_config,
)
from ._distributed import DistributedEnv, distributed_process_group, torchrun_env
from ._ema import ExponentialMovingAverage
from ._finish import FinalReport
from ._objective import LossTerms, TransIPObjective, compute_objective, energy_loss, force_loss
from ._schedule import make_scheduler, warmup_cosine
from ._state import seed_everything
from ._step import train_step, validation_metrics, validation_sums
from ._trainer import TrainResult, check_config, train

__all__ = [
    "LATENT_LOSSES",
    "TAU_KINDS",
    "ConfigError",
    "DataConfig",
    "DistributedEnv",
    "EquivarianceConfig",
    "EvalConfig",
    "ExponentialMovingAverage",
    "FinalReport",
    "LoggingConfig",
    "LossConfig",
    "LossTerms",
    "ModelSection",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingConfig",
    "TransIPObjective",
    "build_latent_loss",
    "build_model",
    "build_objective",
    "build_optimizer",
    "build_tau",
    "check_config",
    "compute_objective",
    "config_to_dict",
    "distributed_process_group",
    "energy_loss",
    "fit_references",
    "force_loss",
    "load_config",
    "load_datasets",
    "load_trained",
    "make_scheduler",
    "merge_config",
    "parse_overrides",
    "resolve_model_config",
    "resolve_path",
    "save_config",
    "save_training_checkpoint",
    "seed_everything",
    "train",
    "torchrun_env",
    "train_step",
    "validation_metrics",
    "validation_sums",
    "warmup_cosine",
]
