"""The step-based training loop: setup, step, validate, checkpoint, finish.

:func:`train` is the entry point and ``_train`` the loop, read top to bottom: :func:`setup`
builds a :class:`~transip.training._setup.Run` (``_setup.py``); then for each batch one
:func:`step`, a :func:`validate` and a :func:`checkpoint` when due; :func:`finish` evaluates the best
checkpoint. The arithmetic lives in :func:`~transip.training.train_step` and
:func:`~transip.training.validation_sums`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latentequiv.groups import SO3
from transip.data import Batch
from transip.evaluation import STAT_COLUMNS, NamedSums, empty_statistics

from ._build import check_equivariance, check_paths
from ._checkpointing import rank_state, save_training_checkpoint
from ._config import ConfigError, TrainingConfig
from ._distributed import Replicas, ReplicaStopRequest
from ._finetune import resolve_init
from ._finish import FinalReport, finish_run
from ._setup import Run, batches, setup
from ._state import StopRequest
from ._step import train_step, validation_metrics, validation_sums

log = logging.getLogger("transip.training")

#: the wall clock of ``train.checkpoint_minutes`` (a module attribute so that tests can replace it)
clock = time.monotonic


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: the run directory (config, logs, checkpoints, plots, metrics.json).
        step: optimiser steps taken.
        interrupted: the run stopped early (signal or ``stop_at``); ``last.pt`` holds its state.
        history: validation rows ``{"step": ..., metric: value}`` in order (all ranks compute
            the same; a resumed run's earlier rows are read from ``val.csv`` on rank 0 only).
        final: final evaluation of the best checkpoint (``None`` when interrupted, and on ranks
            other than 0).
    """

    run_dir: Path
    step: int
    interrupted: bool
    history: list[dict] = field(default_factory=list)
    final: FinalReport | None = None


def check_config(config: TrainingConfig) -> None:
    """Problems that only show in combination; raised before any work starts."""
    check_paths(config)
    config.model.config  # noqa: B018 -- raises ConfigError for an invalid model
    if config.train.amp == "bf16" and not config.train.device.startswith("cuda"):
        raise ConfigError("train.amp=bf16 needs a CUDA device (train.device=cuda)")
    if config.train.steps < 1:
        raise ConfigError("train.steps must be at least 1")
    if config.train.budget_seconds < 0:
        raise ConfigError("train.budget_seconds must be 0 (no time budget) or positive")
    if config.train.threads < 0:
        raise ConfigError("train.threads must be 0 (torch's default) or positive")
    if config.train.checkpoint_minutes < 0:
        raise ConfigError("train.checkpoint_minutes must be 0 (steps only) or positive")
    check_device(config.train.device)
    if not 0.0 < config.data.val_fraction < 1.0 and not config.data.val:
        raise ConfigError("data.val_fraction must lie in (0, 1) when no data.val file is given")
    if config.equivariance.loss == "contrastive" and config.equivariance.mode != "transip":
        raise ConfigError("equivariance.loss=contrastive needs equivariance.mode=transip")
    check_equivariance(config)


def check_device(name: str) -> None:
    """``train.device`` names a device this torch can use (a CPU-only build has no ``cuda``)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type != "cuda":
        return
    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"train.device={name}: {why}; use --train.device=cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device={name}: only {torch.cuda.device_count()} CUDA device(s) are visible")


def train(
    config: TrainingConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    stop_at: int | None = None,
    on_step: Callable[[int], None] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> TrainResult:
    """Train TransIP as configured; see ``docs/transip/training.md``.

    Args:
        config: the resolved configuration.
        run_dir: where to write (default :func:`default_run_dir`); must hold ``last.pt`` to resume.
        resume: continue from ``run_dir/last.pt`` (same result as an uninterrupted run on CPU).
        overwrite: start afresh in a ``run_dir`` that holds a run, deleting its checkpoints, logs
            and metrics; without it such a directory is refused (:class:`ConfigError`).
        quiet: no progress bar.
        stop_at: stop after this many steps as if interrupted (``last.pt`` written), for tests and
            time-sliced jobs.
        on_step: called with the step number after every optimiser step.
        rank, world_size: distributed position (default: that of the initialised
            ``torch.distributed`` process group, else a single process). With several processes
            the model and tau are trained with ``DistributedDataParallel``, each rank reads its
            share of every epoch and of the validation set, and only rank 0 writes files; see
            ``docs/transip/cluster.md``. On CUDA each process trains on its current device
            (``distributed_process_group`` selects ``cuda:LOCAL_RANK``).

    Returns:
        A :class:`TrainResult`.
    """
    config = resolve_init(config)
    check_config(config)
    replicas = Replicas.current(rank, world_size)
    threads = torch.get_num_threads()
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    try:
        return _train(
            config,
            replicas,
            run_dir=run_dir,
            resume=resume,
            overwrite=overwrite,
            quiet=quiet,
            stop_at=stop_at,
            on_step=on_step,
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    config: TrainingConfig,
    replicas: Replicas,
    *,
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    stop_at: int | None,
    on_step: Callable[[int], None] | None,
) -> TrainResult:
    run = setup(config, replicas, run_dir=run_dir, resume=resume, quiet=quiet, overwrite=overwrite)
    total, interrupted = config.train.steps, False
    run.saved_at = clock()
    if not resume:  # a hard kill from here on leaves a run to resume
        checkpoint(run, "last.pt")
    with ReplicaStopRequest() if replicas.distributed else StopRequest() as stop:
        for batch in batches(run):
            step(run, batch)
            if on_step is not None:
                on_step(run.state.step)
            last = run.state.step >= total or budget_spent(run)
            # all ranks stop after the same step, whichever got the signal
            stopping = replicas.any(stop.requested or (stop_at is not None and run.state.step >= stop_at))
            metrics = validate(run) if run.due(config.train.val_every) or last else None
            if run.due(config.train.checkpoint_every) or last or stopping or checkpoint_time(run):
                checkpoint(run, "last.pt", metrics)
            if last or stopping:
                interrupted = stopping and not last
                break
            run.cpu_mark = time.process_time()  # validation and checkpoints are not training time
    return finish(run, interrupted)


def step(run: Run, batch: Batch) -> None:
    """One optimiser step, its CPU seconds, its sums for the log; a log line when one is due."""
    objective, state, parts, config = run.objective, run.state, run.parts, run.config
    rotations = None
    if objective.needs_rotations:
        rotations = SO3().sample(batch.num_molecules, generator=run.rotations, dtype=torch.float64)
        rotations = rotations.to(device=run.device, dtype=run.dtype)
    lr = parts.optimizer.param_groups[0]["lr"]  # the rate this step uses
    terms, grad_norm = train_step(
        run.module,
        parts.optimizer,
        parts.scheduler,
        batch,
        rotations,
        grad_clip=config.optim.grad_clip,
        amp=config.train.amp,
    )
    if parts.ema is not None:
        parts.ema.update(objective)
    state.cpu_seconds += time.process_time() - run.cpu_mark
    parts.clock.cpu_seconds = state.cpu_seconds
    state.step += 1
    state.position += 1
    logged = objective.logged_terms
    zero = 0.0
    run.running.add(
        loss=terms.total,
        **{f"loss_{k}": zero if terms.parts.get(k) is None else terms.parts[k] for k in logged},
        grad_norm=zero if grad_norm is None else grad_norm,
        count=1.0,
    )
    run.logger.advance()
    if run.due(config.train.log_every) or state.step == config.train.steps:
        (sums,) = run.replicas.reduce(run.running)
        values = sums.to_dict()  # means over steps and ranks
        n = max(values["count"], 1.0)

        def mean(key: str, present: bool) -> float | None:
            return values[key] / n if present else None

        run.logger.log_train(
            state.step,
            {
                "lr": lr,
                "loss": values["loss"] / n,
                **{f"loss_{k}": mean(f"loss_{k}", terms.parts.get(k) is not None) for k in logged},
                "grad_norm": mean("grad_norm", grad_norm is not None),
                "time": run.elapsed(),
                "cpu_time": state.cpu_seconds,
            },
        )
        run.running.zero_()
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(f"training loss is {values['loss']} at step {state.step}")


def checkpoint_time(run: Run) -> bool:
    """Whether ``train.checkpoint_minutes`` have passed since ``last.pt`` was written (all ranks agree)."""
    minutes = run.config.train.checkpoint_minutes
    if minutes <= 0:
        return False
    return run.replicas.any(clock() - run.saved_at >= 60.0 * minutes)


def budget_spent(run: Run) -> bool:
    """Whether the CPU budget is used up; with several processes all ranks must agree (clocks differ)."""
    clock = run.parts.clock
    if not run.replicas.distributed or clock.budget <= 0:
        return clock.spent
    return run.replicas.any(clock.spent)


def validate(run: Run) -> dict:
    """Validation metrics (EMA weights if any), logged; ``best.pt`` when the score improves."""
    objective, config, replicas, state = run.objective, run.config, run.replicas, run.state
    objective.eval()
    swap = run.parts.ema.swapped(objective) if run.parts.ema is not None else contextlib.nullcontext()
    with swap:
        acc, losses, sym = validation_sums(
            objective,
            run.parts.val_set,
            max_atoms=config.eval.max_atoms_per_batch,
            dtype=run.dtype,
            device=run.device,
            equivariance=config.eval.equivariance,
            target=config.equivariance.target,
            seed=config.train.seed + 2,
            rank=replicas.rank,
            world_size=replicas.world_size,
        )
    objective.train()
    if config.eval.equivariance and sym is None:  # this rank's shard was empty
        sym = empty_statistics(run.device)
    totals = NamedSums(STAT_COLUMNS, values=acc.state())
    totals, losses, *rest = replicas.reduce(totals, losses, *([sym] if sym is not None else []))
    acc.totals = totals.values
    metrics = validation_metrics(objective, acc, losses, rest[0] if rest else None)
    run.logger.log_val(state.step, {**metrics, "cpu_time": state.cpu_seconds})
    run.history.append({"step": state.step, **metrics})
    score = _score(metrics, config.eval.best_metric)
    # rank 0 decides (the metrics agree on every rank; this guards against a rank seeing another
    # rounding, which would hang the collective save)
    if replicas.broadcast(score is not None and score < state.best_metric):
        state.best_metric, state.best_step = score, state.step
        checkpoint(run, "best.pt", metrics)
    return metrics


def checkpoint(run: Run, name: str, metrics: dict | None = None) -> None:
    """Write ``run_dir/name`` (rank 0); collective with several processes: all ranks call it."""
    state, replicas, parts = run.state, run.replicas, run.parts
    if name == "last.pt":
        run.saved_at = clock()
    state.running = run.running.to_dict()
    ranks = replicas.gather(rank_state(run.rotations, state.running)) if replicas.distributed else None
    if replicas.is_writer:
        state.elapsed = run.elapsed()
        save_training_checkpoint(
            run.run_dir / name,
            parts.objective,
            parts.optimizer,
            parts.scheduler,
            parts.ema,
            state,
            run.rotations,
            run.config,
            metrics,
            ranks,
        )


def finish(run: Run, interrupted: bool) -> TrainResult:
    """Close the logs, check the replicas agree; unless interrupted, evaluate ``best.pt`` (rank 0)."""
    replicas, state = run.replicas, run.state
    run.logger.close()
    replicas.check_in_sync(run.objective)
    replicas.barrier()  # rank 0's checkpoints are complete before any rank returns
    if interrupted:
        if replicas.is_writer:
            log.warning(
                "stopped at step %d; continue with: transip train --resume %s", state.step, run.run_dir
            )
        return TrainResult(run.run_dir, state.step, True, run.history)
    final = None
    if replicas.is_writer:
        final = finish_run(
            run.config,
            run.run_dir,
            run.objective,
            run.parts.ema,
            run.parts.val_set,
            run.parts.test_set,
            device=run.device,
            dtype=run.dtype,
            enabled=True,
        )
    return TrainResult(run.run_dir, state.step, False, run.history, final)


def _score(metrics: dict, name: str) -> float | None:
    """The value that picks ``best.pt`` (falls back to the energy MAE when forces are missing)."""
    value = metrics.get(name)
    if value is None:
        value = metrics.get("energy_mae")
    return value
