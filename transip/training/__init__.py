"""Training TransIP: configuration, the objective, the schedule, EMA, and the resumable loop.

Entry points: :func:`load_config` (YAML + ``--section.key=value`` overrides) and :func:`train`.
The pieces are usable on their own: the objective's terms (:class:`EnergyTerm`,
:class:`ForceTerm`, :class:`LatentTerm`, :class:`ConsistencyTerm`, any :class:`Term`) and
:func:`compute_objective` /
:class:`TransIPObjective` (their weighted sum), :func:`train_step` (one optimisation step),
:func:`warmup_cosine` (the schedule), :class:`ExponentialMovingAverage`.
"""

from ._build import (
    LATENT_LOSSES,
    TAU_KINDS,
    build_latent_loss,
    build_model,
    build_objective,
    build_optimizer,
    build_tau,
    build_terms,
    load_datasets,
    resolve_model_config,
    resolve_path,
)
from ._checkpointing import load_trained, save_training_checkpoint
from ._config import (
    DEMO_OVERRIDES,
    DEMO_PRESET,
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
from ._finetune import RUNTIME_FIELDS, freeze, resolve_init
from ._finish import FinalReport
from ._labels import fit_references
from ._objective import LOGGED_TERMS, LossTerms, TransIPObjective, compute_objective
from ._schedule import make_scheduler, warmup_cosine
from ._state import seed_everything
from ._step import train_step, validation_metrics, validation_sums
from ._terms import (
    FORCES,
    ROTATED,
    TAU,
    ConsistencyTerm,
    EnergyTerm,
    ForceTerm,
    LatentTerm,
    ObjectiveInputs,
    Term,
    energy_loss,
    force_loss,
    pad_tokens,
)
from ._trainer import TrainResult, check_config, train

__all__ = [
    "DEMO_OVERRIDES",
    "DEMO_PRESET",
    "FORCES",
    "LATENT_LOSSES",
    "LOGGED_TERMS",
    "ROTATED",
    "RUNTIME_FIELDS",
    "TAU",
    "TAU_KINDS",
    "ConfigError",
    "ConsistencyTerm",
    "DataConfig",
    "DistributedEnv",
    "EnergyTerm",
    "EquivarianceConfig",
    "EvalConfig",
    "ExponentialMovingAverage",
    "FinalReport",
    "ForceTerm",
    "LatentTerm",
    "LoggingConfig",
    "LossConfig",
    "LossTerms",
    "ModelSection",
    "ObjectiveInputs",
    "OptimConfig",
    "Term",
    "TrainConfig",
    "TrainResult",
    "TrainingConfig",
    "TransIPObjective",
    "build_latent_loss",
    "build_model",
    "build_objective",
    "build_optimizer",
    "build_tau",
    "build_terms",
    "check_config",
    "compute_objective",
    "config_to_dict",
    "distributed_process_group",
    "energy_loss",
    "fit_references",
    "force_loss",
    "freeze",
    "load_config",
    "load_datasets",
    "load_trained",
    "make_scheduler",
    "pad_tokens",
    "merge_config",
    "parse_overrides",
    "resolve_model_config",
    "resolve_init",
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
