"""The step-based training loop: validation, checkpoints, resume, signals, logs.

:func:`train` is the entry point. The loop owns the bookkeeping; the arithmetic lives in
:func:`~transip.training.train_step` and :func:`~transip.training.validation_sums`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latentequiv.groups import SO3
from transip.data import Batch

from ._build import DTYPES, build_run, check_paths, full_model_section
from ._checkpointing import load_training_state, rank_state, save_training_checkpoint
from ._config import ConfigError, TrainingConfig, save_config
from ._distributed import Replicas, ReplicaStopRequest, rank_seed
from ._finish import FinalReport, finish_run
from ._logging import RunLogger
from ._state import LoopState, StopRequest, seed_everything
from ._step import train_step, validation_metrics, validation_sums

log = logging.getLogger("transip.training")


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


def default_run_dir(config: TrainingConfig) -> Path:
    """``<root>/<YYYYmmdd-HHMMSS>-<mode>``, with a numeric suffix if it exists already."""
    if config.logging.run_dir:
        return Path(config.logging.run_dir)
    base = Path(config.logging.root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.equivariance.mode}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


class _SkipFirst:
    """A batch sampler without its first ``k`` batches (to continue an epoch on resume)."""

    def __init__(self, sampler, k: int) -> None:
        self.sampler, self.k = sampler, k

    def __iter__(self):
        for i, indices in enumerate(self.sampler):
            if i >= self.k:
                yield indices

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.k)


def check_config(config: TrainingConfig) -> None:
    """Problems that only show in combination; raised before any work starts."""
    check_paths(config)
    full_model_section(config.model)  # raises ConfigError for an invalid model
    if config.train.amp == "bf16" and not config.train.device.startswith("cuda"):
        raise ConfigError("train.amp=bf16 needs a CUDA device (train.device=cuda)")
    if config.train.steps < 1:
        raise ConfigError("train.steps must be at least 1")
    if config.train.budget_seconds < 0:
        raise ConfigError("train.budget_seconds must be 0 (no time budget) or positive")
    if config.train.threads < 0:
        raise ConfigError("train.threads must be 0 (torch's default) or positive")
    if not 0.0 < config.data.val_fraction < 1.0 and not config.data.val:
        raise ConfigError("data.val_fraction must lie in (0, 1) when no data.val file is given")
    if config.equivariance.loss == "contrastive" and config.equivariance.mode != "transip":
        raise ConfigError("equivariance.loss=contrastive needs equivariance.mode=transip")


def train(
    config: TrainingConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
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
    check_config(config)
    replicas = Replicas.current(rank, world_size)
    threads = torch.get_num_threads()
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    try:
        return _train(config, run_dir, resume, quiet, stop_at, on_step, replicas)
    finally:
        torch.set_num_threads(threads)


def _device(config: TrainingConfig, replicas: Replicas) -> torch.device:
    """``train.device``; with several processes on CUDA, this process's GPU (``cuda:LOCAL_RANK``)."""
    device = torch.device(config.train.device)
    if replicas.distributed and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _train(config, run_dir, resume, quiet, stop_at, on_step, replicas: Replicas) -> TrainResult:
    device, dtype = _device(config, replicas), DTYPES[config.train.dtype]
    rank, world_size, writer = replicas.rank, replicas.world_size, replicas.is_writer
    if run_dir is None and writer:
        run_dir = default_run_dir(config)
    run_dir = Path(replicas.broadcast(None if run_dir is None else str(run_dir)))  # rank 0's choice
    if resume and not (run_dir / "last.pt").is_file():
        raise FileNotFoundError(f"cannot resume: no last.pt in {run_dir}")
    config = dataclasses.replace(config, model=full_model_section(config.model))
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    seed_everything(config.train.seed)  # the same initial weights on every rank

    parts = build_run(
        config, device=device, dtype=dtype, rank=rank, world_size=world_size, share=replicas.broadcast
    )
    objective, optimizer, scheduler, ema = parts.objective, parts.optimizer, parts.scheduler, parts.ema
    sampler, train_set, val_set, total = parts.sampler, parts.train_set, parts.val_set, config.train.steps
    if rank > 0:  # dropout differs between ranks; rank 0 keeps the single-process streams
        seed_everything(rank_seed(config.train.seed, rank))
    rot_gen = torch.Generator().manual_seed(rank_seed(config.train.seed + 1, rank))
    state = LoopState()
    if resume:
        state = load_training_state(
            run_dir / "last.pt",
            objective,
            optimizer,
            scheduler,
            ema,
            rot_gen,
            rank=rank,
            world_size=world_size,
        )
        if writer:
            log.info("resumed from %s at step %d", run_dir / "last.pt", state.step)
    clock = parts.clock
    clock.cpu_seconds = state.cpu_seconds
    if (state.step >= total or clock.spent) and writer:
        log.info("nothing to do: the run already took %d of %d steps", state.step, total)
    step_module = replicas.wrap(objective, device)  # DDP with several processes

    logger = RunLogger(
        run_dir,
        total_steps=total,
        start_step=state.step,
        progress=config.logging.progress and not quiet,
        tensorboard=config.logging.tensorboard,
        enabled=writer,
    )
    history = [r for r in _read_history(logger)] if resume else []

    def save(name: str, metrics: dict | None = None) -> None:
        # collective with several processes: every rank calls it at the same steps
        state.running = running.cpu().tolist()
        ranks = replicas.gather(rank_state(rot_gen, state.running)) if replicas.distributed else None
        if writer:
            state.elapsed = elapsed0 + time.perf_counter() - t0
            save_training_checkpoint(
                run_dir / name, objective, optimizer, scheduler, ema, state, rot_gen, config, metrics, ranks
            )

    def validate() -> dict:
        objective.eval()
        swap = ema.swapped(objective) if ema is not None else contextlib.nullcontext()
        with swap:
            acc, losses, sym = validation_sums(
                objective,
                val_set,
                max_atoms=config.eval.max_atoms_per_batch,
                dtype=dtype,
                device=device,
                equivariance=config.eval.equivariance,
                seed=config.train.seed + 2,
                rank=rank,
                world_size=world_size,
            )
        objective.train()
        totals, losses, sym = replicas.reduce_validation(
            acc.state(), losses, sym, equivariance=config.eval.equivariance
        )
        acc.totals = totals
        return validation_metrics(objective, acc, losses, sym)

    interrupted = False
    # sums since the last log line: total, energy, force, equivariance, gradient norm, count
    running = torch.tensor(state.running, dtype=torch.float64, device=device)
    one = torch.ones((), dtype=torch.float64, device=device)
    loader_gen = torch.Generator()
    t0, elapsed0 = time.perf_counter(), state.elapsed
    objective.train()
    with ReplicaStopRequest() if replicas.distributed else StopRequest() as stop:
        while state.step < total and not clock.spent and not interrupted:
            sampler.set_epoch(state.epoch)
            loader = torch.utils.data.DataLoader(
                train_set,
                batch_sampler=_SkipFirst(sampler, state.position),
                collate_fn=functools.partial(Batch.from_molecules, dtype=dtype),
                num_workers=config.data.num_workers,
                pin_memory=device.type == "cuda",
                generator=loader_gen,
            )
            cpu0 = time.process_time()
            for batch in loader:
                batch = batch.to(device)
                rotations = None
                if objective.needs_rotations:
                    rotations = SO3().sample(batch.num_molecules, generator=rot_gen, dtype=torch.float64)
                    rotations = rotations.to(device=device, dtype=dtype)
                lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
                terms, grad_norm = train_step(
                    step_module,
                    optimizer,
                    scheduler,
                    batch,
                    rotations,
                    grad_clip=config.optim.grad_clip,
                    amp=config.train.amp,
                )
                if ema is not None:
                    ema.update(objective)
                cpu = time.process_time()
                state.cpu_seconds += cpu - cpu0
                clock.cpu_seconds = state.cpu_seconds
                state.step += 1
                state.position += 1
                step_values = (terms.total, terms.energy, terms.force, terms.equivariance, grad_norm, one)
                running += torch.stack([_f(t, device) for t in step_values])
                logger.advance()
                if state.step % config.train.log_every == 0 or state.step == total:
                    values = replicas.sum(running).cpu().tolist()  # means over steps and ranks
                    n = max(values[5], 1.0)
                    logger.log_train(
                        state.step,
                        {
                            "lr": lr,
                            "loss": values[0] / n,
                            "loss_energy": values[1] / n,
                            "loss_force": values[2] / n if terms.force is not None else None,
                            "loss_equivariance": values[3] / n if terms.equivariance is not None else None,
                            "grad_norm": values[4] / n if grad_norm is not None else None,
                            "time": elapsed0 + time.perf_counter() - t0,
                            "cpu_time": state.cpu_seconds,
                        },
                    )
                    running.zero_()
                    if not math.isfinite(values[0]):
                        raise FloatingPointError(f"training loss is {values[0]} at step {state.step}")
                if on_step is not None:
                    on_step(state.step)
                # with a CPU budget all ranks must agree that it is spent (their clocks differ)
                spent = (
                    clock.spent
                    if not replicas.distributed or clock.budget <= 0
                    else replicas.any(clock.spent)
                )
                last = state.step >= total or spent
                # all ranks stop after the same step, whichever got the signal
                stopping = replicas.any(stop.requested or (stop_at is not None and state.step >= stop_at))
                metrics = None
                if state.step % config.train.val_every == 0 or last:
                    metrics = validate()
                    logger.log_val(state.step, {**metrics, "cpu_time": state.cpu_seconds})
                    history.append({"step": state.step, **metrics})
                    score = _score(metrics, config.eval.best_metric)
                    # rank 0 decides (the metrics agree on every rank; this guards against a
                    # rank seeing another rounding, which would hang the collective save)
                    if replicas.broadcast(score is not None and score < state.best_metric):
                        state.best_metric, state.best_step = score, state.step
                        save("best.pt", metrics)
                if state.step % config.train.checkpoint_every == 0 or last or stopping:
                    save("last.pt", metrics)
                if last or stopping:
                    interrupted = stopping and not last
                    break
                cpu0 = time.process_time()  # validation and checkpoints are not training time
            else:
                state.epoch += 1
                state.position = 0
    logger.close()
    replicas.check_in_sync(objective)
    replicas.barrier()  # rank 0's checkpoints are complete before any rank returns
    if interrupted:
        if writer:
            log.warning("stopped at step %d; continue with: transip train --resume %s", state.step, run_dir)
        return TrainResult(run_dir, state.step, True, history)
    final = (
        finish_run(
            config,
            run_dir,
            objective,
            ema,
            val_set,
            parts.test_set,
            device=device,
            dtype=dtype,
            enabled=writer,
        )
        if writer
        else None
    )
    return TrainResult(run_dir, state.step, False, history, final)


def _f(t: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if t is None:
        return torch.zeros((), dtype=torch.float64, device=device)
    return t.detach().to(torch.float64)


def _score(metrics: dict, name: str) -> float | None:
    """The value that picks ``best.pt`` (falls back to the energy MAE when forces are missing)."""
    value = metrics.get(name)
    if value is None:
        value = metrics.get("energy_mae")
    return value


def _read_history(logger: RunLogger) -> list[dict]:
    if logger.val is None:
        return []
    rows = []
    for r in logger.val.rows():
        rows.append(
            {
                k: (int(v) if k == "step" else (float(v) if v != "" else None))
                for k, v in r.items()
                if k != "cpu_time"  # a clock reading, not a metric: history holds metrics only
            }
        )
    return rows
