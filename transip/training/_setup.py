"""What a run starts from: its directory, its parts, its random streams, its position, its batches.

:func:`setup` builds a :class:`Run` once; the loop in ``_trainer.py`` then only reads and changes it.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transip.data import Batch, make_loader
from transip.evaluation import NamedSums

from ._build import DTYPES, RunParts, build_run
from ._checkpointing import load_training_state
from ._config import ConfigError, TrainingConfig, save_config
from ._distributed import Replicas, rank_seed
from ._logging import RunLogger
from ._objective import TransIPObjective
from ._state import LoopState, seed_everything

log = logging.getLogger("transip.training")


def default_run_dir(config: TrainingConfig) -> Path:
    """``<root>/<YYYYmmdd-HHMMSS>-<mode>``, with a numeric suffix if it exists already."""
    if config.logging.run_dir:
        return Path(config.logging.run_dir)
    base = Path(config.logging.root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.equivariance.mode}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


#: files whose presence makes a directory a run (a fresh start would replace or extend them)
RUN_FILES = ("last.pt", "best.pt", "metrics.json", "train.csv", "val.csv")


def existing_run(run_dir: Path) -> list[str]:
    """The :data:`RUN_FILES` that ``run_dir`` holds (empty: no run there)."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def clear_run(run_dir: Path) -> None:
    """Delete what a run writes into ``run_dir`` (``train(..., overwrite=True)``), nothing else."""
    for name in (*RUN_FILES, "config.yaml", "learning_curves.png"):
        (run_dir / name).unlink(missing_ok=True)
    for figure in run_dir.glob("parity_*.png"):
        figure.unlink()
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)


def _check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> str | None:
    """Why a run cannot start in ``run_dir`` (``None``: it can)."""
    if resume:
        return None if (run_dir / "last.pt").is_file() else f"cannot resume: no last.pt in {run_dir}"
    found = existing_run(run_dir)
    if found and not overwrite:
        return (
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with "
            f"`transip train --resume {run_dir}`, or pass --overwrite to replace it"
        )
    return None


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


def _device(config: TrainingConfig, replicas: Replicas) -> torch.device:
    """``train.device``; with several processes on CUDA, this process's GPU (``cuda:LOCAL_RANK``)."""
    device = torch.device(config.train.device)
    if replicas.distributed and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device


@dataclass
class Run:
    """Everything the loop reads and changes, built once by :func:`setup`.

    Attributes:
        parts: data, objective, optimiser, schedule, EMA, sampler, budget clock (:func:`build_run`).
        module: the module a step calls: the objective, or its ``DistributedDataParallel`` wrapper.
        state: the loop's position (saved in ``last.pt``).
        running: training sums since the last log line (``loss``, ``loss_<term>``, ``grad_norm``,
            ``count``), on the device.
        rotations: the generator of the TransIP/TransAug rotations (saved in ``last.pt``).
        loaders: the generator each epoch's ``DataLoader`` draws its seed from.
        start, start_elapsed: ``perf_counter`` when the loop started, and the training seconds
            before that (a resumed run's).
        cpu_mark: ``process_time`` when the current step's CPU clock started.
    """

    config: TrainingConfig
    run_dir: Path
    replicas: Replicas
    device: torch.device
    dtype: torch.dtype
    parts: RunParts
    module: nn.Module
    state: LoopState
    running: NamedSums
    rotations: torch.Generator
    loaders: torch.Generator
    logger: RunLogger
    history: list[dict]
    start: float
    start_elapsed: float
    cpu_mark: float = 0.0
    saved_at: float = 0.0  # the trainer's clock when last.pt was last written

    @property
    def objective(self) -> TransIPObjective:
        return self.parts.objective

    def elapsed(self) -> float:
        """Training seconds so far (wall clock, earlier processes of a resumed run included)."""
        return self.start_elapsed + time.perf_counter() - self.start

    def due(self, every: int) -> bool:
        return self.state.step % every == 0


def setup(
    config: TrainingConfig,
    replicas: Replicas,
    *,
    run_dir: str | Path | None,
    resume: bool,
    quiet: bool,
    overwrite: bool = False,
) -> Run:
    """Choose the run directory, build the parts, seed the streams, restore ``last.pt`` if resuming.

    The directory is created (or, with ``overwrite``, cleared) only once the data is read and the
    parts are built, so a start that fails leaves nothing behind.
    """
    device, dtype = _device(config, replicas), DTYPES[config.train.dtype]
    rank, world_size, writer = replicas.rank, replicas.world_size, replicas.is_writer
    if run_dir is None and writer:
        run_dir = default_run_dir(config)
    run_dir = Path(replicas.broadcast(None if run_dir is None else str(run_dir)))  # rank 0's choice
    problem = replicas.broadcast(
        _check_run_dir(run_dir, resume=resume, overwrite=overwrite) if writer else None
    )
    if problem is not None:  # every rank raises, none waits for the others
        raise (FileNotFoundError if resume else ConfigError)(problem)
    config = dataclasses.replace(config, model=config.model.spelled_out())
    seed_everything(config.train.seed)  # the same initial weights on every rank
    parts = build_run(
        config, device=device, dtype=dtype, rank=rank, world_size=world_size, share=replicas.broadcast
    )
    if writer:
        if overwrite and not resume:
            clear_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    if rank > 0:  # dropout differs between ranks; rank 0 keeps the single-process streams
        seed_everything(rank_seed(config.train.seed, rank))
    rotations = torch.Generator().manual_seed(rank_seed(config.train.seed + 1, rank))
    state = LoopState()
    if resume:
        state = load_training_state(
            run_dir / "last.pt",
            parts.objective,
            parts.optimizer,
            parts.scheduler,
            parts.ema,
            rotations,
            rank=rank,
            world_size=world_size,
        )
        if writer:
            log.info("resumed from %s at step %d", run_dir / "last.pt", state.step)
    parts.clock.cpu_seconds = state.cpu_seconds
    if (state.step >= config.train.steps or parts.clock.spent) and writer:
        log.info("nothing to do: the run already took %d of %d steps", state.step, config.train.steps)
    logger = RunLogger(
        run_dir,
        total_steps=config.train.steps,
        start_step=state.step,
        progress=config.logging.progress and not quiet,
        tensorboard=config.logging.tensorboard,
        enabled=writer,
    )
    names = ["loss", *(f"loss_{t}" for t in parts.objective.logged_terms), "grad_norm", "count"]
    running = NamedSums(names, device=device)
    running.add(**{n: state.running.get(n, 0.0) for n in names})
    parts.objective.train()
    return Run(
        config=config,
        run_dir=run_dir,
        replicas=replicas,
        device=device,
        dtype=dtype,
        parts=parts,
        module=replicas.wrap(parts.objective, device),
        state=state,
        running=running,
        rotations=rotations,
        loaders=torch.Generator(),
        logger=logger,
        history=_read_history(logger) if resume else [],
        start=time.perf_counter(),
        start_elapsed=state.elapsed,
    )


def batches(run: Run) -> Iterator[Batch]:
    """Training batches on the device, from the saved position on, epoch after epoch, until the end."""
    state, sampler = run.state, run.parts.sampler
    while state.step < run.config.train.steps and not run.parts.clock.spent:
        sampler.set_epoch(state.epoch)
        loader = make_loader(
            run.parts.train_set,
            _SkipFirst(sampler, state.position),
            run.config.data.num_workers,
            dtype=run.dtype,
            pin_memory=run.device.type == "cuda",
            generator=run.loaders,
        )
        run.cpu_mark = time.process_time()
        for batch in loader:
            yield batch.to(run.device)
        state.epoch += 1
        state.position = 0


def _read_history(logger: RunLogger) -> list[dict]:
    if logger.val is None:
        return []
    return [
        {
            k: (int(v) if k == "step" else (float(v) if v != "" else None))
            for k, v in r.items()
            if k != "cpu_time"  # a clock reading, not a metric: history holds metrics only
        }
        for r in logger.val.rows()
    ]
