"""From a :class:`TrainingConfig` to objects: the one place where YAML names become classes.

The name maps below are the only string-to-class lookups of the project; library code takes the
objects themselves.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentequiv.losses import contrastive_latent_loss, latent_equivariance_loss
from latentequiv.representations import Irreps
from latentequiv.tau import HyperLinearTau, IdentityTau, MLPTau, RepresentationTau
from transip.data import (
    AtomBudgetSampler,
    bundled_dataset,
    read_dataset,
    split_dataset,
    subset,
)
from transip.model import TransIP, TransIPConfig

from ._config import ConfigError, DataConfig, EquivarianceConfig, ModelSection, OptimConfig, TrainingConfig
from ._ema import ExponentialMovingAverage
from ._finetune import freeze, init_model, init_references, init_tau, read_init
from ._labels import MAE_PASS_LIMIT, ReferenceFit, fit_references, warn_unseen_elements
from ._objective import TransIPObjective
from ._schedule import make_scheduler
from ._terms import ConsistencyTerm, EnergyTerm, ForceTerm, LatentTerm, Term

#: ``equivariance.tau`` -> tau-network class
TAU_KINDS: dict[str, type[nn.Module]] = {
    "mlp": MLPTau,
    "identity": IdentityTau,
    "hyperlinear": HyperLinearTau,
    "representation": RepresentationTau,
}
#: ``equivariance.loss`` -> latent loss function
LATENT_LOSSES = {"mse": latent_equivariance_loss, "contrastive": contrastive_latent_loss}
#: ``train.dtype`` -> torch dtype
DTYPES = {"float32": torch.float32, "float64": torch.float64}

BUNDLED_PREFIX = "bundled:"


def resolve_path(spec: str, *, key: str = "data") -> Path:
    """A data path, or ``bundled:<name>`` for a dataset shipped with the package.

    Raises:
        ConfigError: the file (or bundled name) does not exist.
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        try:
            return Path(bundled_dataset(name))
        except (KeyError, ValueError, FileNotFoundError) as e:
            raise ConfigError(f"{key}: no bundled dataset {name!r} ({e})") from None
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}: file not found: {path}")
    return path


def check_paths(config: TrainingConfig) -> None:
    """Fail early (before any work) if a configured data file is missing."""
    for key in ("train", "val", "test"):
        spec = getattr(config.data, key)
        if spec:
            resolve_path(spec, key=f"data.{key}")


def resolve_model_config(section: ModelSection) -> TransIPConfig:
    """The :class:`TransIPConfig` of a model section (:attr:`ModelSection.config`).

    Raises:
        ConfigError: the combination is invalid (e.g. ``d_model`` not divisible by ``n_heads``).
    """
    return section.config


def _read(spec: str, data: DataConfig, key: str, limits: dict):
    return read_dataset(
        resolve_path(spec, key=key),
        energy_key=data.energy_key or None,
        forces_key=data.forces_key or None,
        **limits,
    )


def _limit(dataset, n: int, seed: int):
    """At most ``n`` molecules, a seeded random subset (``n = 0``: all)."""
    if n <= 0 or n >= len(dataset):
        return dataset
    idx = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    return subset(dataset, idx)


def load_datasets(
    data: DataConfig,
    *,
    seed: int,
    max_atoms: int,
    charge_range: tuple[int, int] | None = None,
    spin_range: tuple[int, int] | None = None,
):
    """``(train, val, test)``: ``val`` is split off ``train`` when no file is given; ``test`` may be None.

    Molecules the model cannot represent are a :class:`~transip.data.DataError` naming the file, the
    row and the field: more than ``max_atoms`` atoms, a charge or spin multiplicity outside
    ``charge_range`` / ``spin_range`` (the model's; ``None``: not checked).
    """
    limits = {"max_atoms": max_atoms, "charge_range": charge_range, "spin_range": spin_range}
    train = _read(data.train, data, "data.train", limits)
    if data.val:
        val = _read(data.val, data, "data.val", limits)
    else:
        train, val = split_dataset(
            train, [1.0 - data.val_fraction, data.val_fraction], seed=seed, by=data.split_by
        )
    test = _read(data.test, data, "data.test", limits) if data.test else None
    return _limit(train, data.max_train, seed), _limit(val, data.max_val, seed + 1), test


def build_model(config: TrainingConfig, fit: ReferenceFit | None = None) -> TransIP:
    """A fresh TransIP with the fitted references and the head's unit (``loss.head_unit``)."""
    model = TransIP(config.model.config)
    if fit is not None:
        model.set_element_references(fit.references)
        model.set_energy_scale(fit.unit(config.loss.head_unit))
    return model


def tau_irreps(eq: EquivarianceConfig, dim: int) -> Irreps:
    """The irreps of ``tau: representation``: ``equivariance.tau_irreps``, or when empty
    :meth:`Irreps.filling(dim, lmax=2) <latentequiv.representations.Irreps.filling>` (``36x0 + 10x1 +
    6x2`` for ``D = 96``).

    Raises:
        ConfigError: the string does not parse, or its dimension is not the model width ``dim``.
    """
    if not eq.tau_irreps:
        return Irreps.filling(dim, lmax=2)
    try:
        irreps = Irreps(eq.tau_irreps)
    except ValueError as e:
        raise ConfigError(f"equivariance.tau_irreps={eq.tau_irreps!r}: {e}") from None
    if irreps.dim != dim:
        raise ConfigError(
            f"equivariance.tau_irreps={eq.tau_irreps!r} has dimension {irreps.dim}, but the embeddings "
            f"have model.d_model={dim}; e.g. {str(Irreps.filling(dim))!r}, or empty for that default"
        )
    return irreps


def check_equivariance(config: TrainingConfig) -> None:
    """The ``equivariance`` options that only make sense together (raised before any work).

    Raises:
        ConfigError: naming the keys of a combination that does not make sense.
    """
    eq = config.equivariance
    if eq.tau_rank < 0:
        raise ConfigError("equivariance.tau_rank must be 0 (a full matrix) or positive")
    if eq.tau_irreps and eq.tau != "representation":
        raise ConfigError("equivariance.tau_irreps is only read with equivariance.tau=representation")
    if eq.mode == "transip" and eq.tau == "representation":
        tau_irreps(eq, config.model.config.d_model)
    if eq.augment_task and eq.mode != "transip":
        raise ConfigError(
            f"equivariance.augment_task needs equivariance.mode=transip (got {eq.mode}; "
            "mode=transaug already trains on rotated copies)"
        )
    if not 0.0 < eq.latent_fraction <= 1.0:
        raise ConfigError(f"equivariance.latent_fraction must be in (0, 1], got {eq.latent_fraction}")
    if eq.latent_fraction < 1.0 and (eq.mode != "transip" or eq.augment_task):
        raise ConfigError(
            "equivariance.latent_fraction < 1 needs equivariance.mode=transip without augment_task "
            f"(got mode={eq.mode}, augment_task={eq.augment_task})"
        )
    if eq.consistency_weight < 0:
        raise ConfigError("equivariance.consistency_weight must be 0 (off) or positive")
    if eq.consistency_weight > 0:
        if eq.mode != "transip":
            raise ConfigError(
                f"equivariance.consistency_weight needs equivariance.mode=transip (got {eq.mode})"
            )
        if eq.target == "graph" and config.model.config.pooling == "sum":
            raise ConfigError(
                "equivariance.consistency_weight with equivariance.target=graph needs model.pooling=mean: "
                "with sum pooling the energy head reads atoms, not the pooled embedding tau acts on "
                "(use equivariance.target=node)"
            )


def build_tau(eq: EquivarianceConfig, dim: int) -> nn.Module | None:
    """The tau-network of TransIP mode (``None`` in the other modes).

    ``mlp``: :class:`MLPTau` (``tau_hidden``, ``tau_depth``, ``tau_residual``); ``hyperlinear``:
    :class:`HyperLinearTau` of rank ``tau_rank`` (0: full); ``representation``:
    :class:`RepresentationTau` of :func:`tau_irreps` in a learned orthonormal basis; ``identity``.
    """
    if eq.mode != "transip":
        return None
    cls = TAU_KINDS[eq.tau]
    hidden = eq.tau_hidden or 2 * dim
    if cls is MLPTau:
        return MLPTau(dim, group_dim=3, hidden=hidden, depth=eq.tau_depth, residual=eq.tau_residual)
    if cls is HyperLinearTau:
        rank = eq.tau_rank or None
        return HyperLinearTau(dim, group_dim=3, rank=rank, hidden=hidden, depth=eq.tau_depth)
    if cls is RepresentationTau:
        return RepresentationTau(tau_irreps(eq, dim), learn_basis=True)
    return cls()


def build_latent_loss(eq: EquivarianceConfig):
    """The latent loss with its options bound (``normalize`` or ``temperature``)."""
    fn = LATENT_LOSSES[eq.loss]
    if fn is contrastive_latent_loss:
        return functools.partial(fn, temperature=eq.temperature)
    return functools.partial(fn, normalize=eq.normalize)


def build_terms(config: TrainingConfig, fit: ReferenceFit | None = None) -> list[Term]:
    """The objective's terms with their weights, from ``loss`` and ``equivariance``.

    The energy error is divided by the energy RMS and the force error by ``loss.force_unit``
    (from ``fit``); without ``fit``, both by the model's ``energy_scale``. A new term is one line
    here, reading its own config key.
    """
    loss, eq = config.loss, config.equivariance
    terms: list[Term] = [
        EnergyTerm(loss.energy_weight, loss.energy, unit=None if fit is None else fit.energy_scale),
        ForceTerm(loss.force_weight, loss.force, unit=None if fit is None else fit.unit(loss.force_unit)),
    ]
    if eq.mode == "transip":
        terms.append(
            LatentTerm(eq.weight, build_latent_loss(eq), target=eq.target, padded=eq.loss == "contrastive")
        )
        if eq.consistency_weight > 0:
            unit = None if fit is None else fit.energy_scale  # the energy term's
            terms.append(ConsistencyTerm(eq.consistency_weight, loss.energy, unit=unit, target=eq.target))
    return terms


def build_objective(
    config: TrainingConfig, model: TransIP, fit: ReferenceFit | None = None
) -> TransIPObjective:
    """Model + tau + the objective's terms (:func:`build_terms`), as one module."""
    eq = config.equivariance
    return TransIPObjective(
        model,
        build_terms(config, fit),
        tau=build_tau(eq, model.config.d_model),
        augment=eq.mode == "transaug" or (eq.mode == "transip" and eq.augment_task),
        latent_pass=eq.latent_pass,
        latent_fraction=eq.latent_fraction,
    )


def build_optimizer(module: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (biases, norms and 1-d parameters are not decayed).

    The fused implementation (one kernel over all parameters) when the parameters' device and
    dtype allow it: on CPU a TransIP-S step of the optimiser took 14 ms instead of 49 ms
    (``examples/benchmark.py optimizer``), the same arithmetic up to rounding.
    """
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    params = decay + no_decay
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params
    )
    return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), fused=fused)


@dataclass
class BudgetClock:
    """The fraction of ``train.budget_seconds`` used, which the learning-rate schedule reads.

    The loop sets ``cpu_seconds`` after every step (0 and unused without a budget)."""

    budget: float
    cpu_seconds: float = 0.0

    def fraction(self) -> float:
        return self.cpu_seconds / self.budget if self.budget > 0 else 0.0

    @property
    def spent(self) -> bool:
        return self.budget > 0 and self.cpu_seconds >= self.budget


@dataclass
class RunParts:
    """Everything a run is made of, built from its configuration."""

    train_set: object
    val_set: object
    test_set: object | None
    fit: ReferenceFit
    objective: TransIPObjective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: ExponentialMovingAverage | None
    sampler: AtomBudgetSampler
    clock: BudgetClock


def build_run(
    config: TrainingConfig,
    *,
    device: torch.device,
    dtype: torch.dtype,
    rank: int = 0,
    world_size: int = 1,
    share: Callable[[object], object] | None = None,
) -> RunParts:
    """Read the data, fit the references, build model, tau, optimiser, schedule, EMA and sampler.

    Call after seeding: the model's initial weights come from torch's global generator.

    Args:
        config: the resolved configuration.
        device, dtype: where and in which precision the model lives.
        rank, world_size: this process's share of the training data (the sampler's).
        share: with several processes, a collective that returns rank 0's object on every rank;
            the element references are then fitted on rank 0 only (a full pass over the training
            set) and sent to the others.
    """
    shape = config.model.config  # reject molecules beyond its context, charges and spins it cannot embed
    train_set, val_set, test_set = load_datasets(
        config.data,
        seed=config.train.seed,
        max_atoms=shape.max_atoms,
        charge_range=shape.charge_range,
        spin_range=shape.spin_range,
    )
    source = read_init(config.train.init) if config.train.init else None
    if rank == 0 or share is None:
        fit = fit_references(train_set) if source is None else init_references(config, source, train_set)
    else:
        fit = None
    if share is not None and world_size > 1:
        fit = share(fit)
    if rank == 0:
        report = fit.report
        mae = (
            f"residual MAE {report.mae:.4f} eV"
            if math.isfinite(report.mae)
            else f"residual MAE not computed (more than {MAE_PASS_LIMIT} molecules)"
        )
        logging.getLogger("transip.training").info(
            "element references on %d molecules: %s, RMSE %.4f eV (the energy unit); force RMS %.4f eV/Å",
            report.n,
            mae,
            report.rmse,
            fit.force_rms,
        )
        for name, dataset in (("data.val", val_set), ("data.test", test_set)):
            warn_unseen_elements(dataset, fit.report.elements, name)
    model = build_model(config, fit) if source is None else init_model(config, source, fit)
    model = model.to(device=device, dtype=dtype)
    frozen = freeze(model, config.train.freeze)
    objective = build_objective(config, model, fit).to(device=device, dtype=dtype)
    if source is not None:
        init_tau(config, source, objective.tau)
        if rank == 0:
            logging.getLogger("transip.training").info(
                "fine-tuning from %s (%d of %d parameter tensors frozen)",
                source.path,
                len(frozen),
                len(list(model.parameters())),
            )
    optimizer = build_optimizer(objective, config.optim)
    o = config.optim
    clock = BudgetClock(config.train.budget_seconds)
    scheduler = make_scheduler(
        optimizer,
        config.train.steps,
        warmup_fraction=o.warmup_fraction,
        final_fraction=o.final_lr_fraction,
        progress=clock.fraction if clock.budget > 0 else None,
    )
    ema = ExponentialMovingAverage(objective, o.ema_decay) if o.ema_decay > 0 else None
    sampler = AtomBudgetSampler(
        train_set.sizes,
        config.data.max_atoms_per_batch,
        shuffle=True,
        seed=config.train.seed,
        num_replicas=world_size,
        rank=rank,
    )
    return RunParts(train_set, val_set, test_set, fit, objective, optimizer, scheduler, ema, sampler, clock)
