"""Training checkpoints on top of :mod:`transip.checkpoint`: the model file plus the trainer's state.

``best.pt`` and ``last.pt`` are ordinary TransIP checkpoints (``transip.checkpoint.load_model`` reads
them). Their weights are the ones used for inference: the exponential moving average when EMA is
enabled, else the live weights. ``extra`` holds:

    training_config   the resolved run configuration (nested dict)
    tau               state dict of the tau-network (TransIP mode), matching the stored weights
    metrics           validation metrics at that step
    step              optimiser steps taken
    trainer           everything needed to resume: live weights (only with EMA), optimizer,
                      scheduler, EMA, loop position, random-generator states; for a multi-process
                      run also ``ranks``, each process's generators and running log sums

Only plain containers and tensors are stored, so files load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transip.checkpoint import load_checkpoint, load_model, save_checkpoint

from ._config import ConfigError, TrainingConfig, config_to_dict, merge_config
from ._state import LoopState, capture_rng, restore_rng


def _rng_to_plain(state: dict) -> dict:
    name, keys, pos, has_gauss, cached = state["numpy"]
    return {**state, "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}


def _rng_from_plain(state: dict) -> dict:
    name, keys, pos, has_gauss, cached = state["numpy"]
    return {**state, "numpy": (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)}


def _clone(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def save_training_checkpoint(
    path: Path,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    ema,
    state: LoopState,
    rotation_generator: torch.Generator,
    config: TrainingConfig,
    metrics: dict | None = None,
    ranks: list[dict] | None = None,
) -> Path:
    """Write a checkpoint that both serves inference and resumes training (call on rank 0 only).

    ``ranks`` (multi-process runs): every rank's :func:`rank_state`, in rank order.
    """
    live = _clone(objective.state_dict()) if ema is not None else None
    trainer = {
        "objective": live,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": None if ema is None else ema.state_dict(),
        "loop": state.as_dict(),
        "rng": _rng_to_plain(capture_rng()),
        "rotation_generator": rotation_generator.get_state(),
        "ranks": ranks,
    }
    swap = ema.swapped(objective) if ema is not None else contextlib.nullcontext()
    with swap:
        tau = None if objective.tau is None else _clone(objective.tau.state_dict())
        return save_checkpoint(
            path,
            objective.model,
            training_config=config_to_dict(config),
            tau=tau,
            metrics=metrics,
            step=state.step,
            trainer=trainer,
        )


def load_training_state(
    path: Path,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    ema,
    rotation_generator: torch.Generator,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> LoopState:
    """Restore everything :func:`save_training_checkpoint` wrote; returns the loop position.

    A multi-process checkpoint restores ``rank``'s own generators and log sums.

    Raises:
        ConfigError: the checkpoint was written by a run with another number of processes (the
            data order and the random streams are per process, so it could not continue exactly).
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    extra = ckpt["extra"]
    trainer = extra["trainer"]
    ranks = trainer.get("ranks")
    written_by = 1 if ranks is None else len(ranks)
    if written_by != world_size:
        raise ConfigError(
            f"{path} was written by a run of {written_by} process(es); resume it with {written_by} "
            f"(this run has {world_size}): data order and random streams are per process"
        )
    if trainer["objective"] is not None:
        objective.load_state_dict(trainer["objective"])
    else:
        objective.model.load_state_dict(ckpt["state_dict"])
        if objective.tau is not None:
            objective.tau.load_state_dict(extra["tau"])
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    if ema is not None:
        if trainer["ema"] is None:
            raise ValueError(f"{path} was written without EMA; resume with the same optim.ema_decay")
        ema.load_state_dict(trainer["ema"])
    own = trainer if ranks is None else ranks[rank]
    rotation_generator.set_state(own["rotation_generator"])
    restore_rng(_rng_from_plain(own["rng"]))
    loop = LoopState(**trainer["loop"])
    if ranks is not None:
        loop.running = LoopState(running=own["running"]).running
    return loop


def rank_state(rotation_generator: torch.Generator, running: dict[str, float]) -> dict:
    """This process's part of a multi-process checkpoint: its generators and running log sums."""
    return {
        "rng": _rng_to_plain(capture_rng()),
        "rotation_generator": rotation_generator.get_state(),
        "running": dict(running),
    }


def load_inference_weights(path: Path, objective: nn.Module) -> int:
    """Load a checkpoint's (inference) model and tau weights into ``objective``; returns its step."""
    ckpt = load_checkpoint(path, map_location="cpu")
    objective.model.load_state_dict(ckpt["state_dict"])
    if objective.tau is not None and ckpt["extra"].get("tau") is not None:
        objective.tau.load_state_dict(ckpt["extra"]["tau"])
    return int(ckpt["extra"].get("step", -1))


def load_trained(path: str | Path, device: str | torch.device = "cpu"):
    """A trained model with its tau-network and run configuration, for evaluation and probes.

    Returns:
        ``(model, tau, config)``: ``tau`` is ``None`` outside TransIP mode; ``config`` is the run's
        :class:`TrainingConfig`, or ``None`` for a checkpoint not written by the trainer.
    """
    from ._build import build_tau

    model = load_model(path, map_location=device)
    extra = load_checkpoint(path, map_location="cpu").get("extra", {})
    if "training_config" not in extra:
        return model, None, None
    config = merge_config(TrainingConfig(), extra["training_config"], f"{path} (training_config)")
    tau = build_tau(config.equivariance, model.config.d_model)
    if tau is not None and extra.get("tau") is not None:
        tau.load_state_dict(extra["tau"])
        tau = tau.to(device=device, dtype=next(model.parameters()).dtype).eval()
    return model, tau, config
