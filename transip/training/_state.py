"""Reproducibility: seeding, random-generator snapshots, and the loop position saved in checkpoints.

A CPU run is exactly reproducible, and a resumed run continues bit for bit, because every source of
randomness is either seeded from the config or saved in ``last.pt``:

- Python's ``random``, NumPy's global generator and torch's global generator (dropout) are seeded
  once and their states saved;
- the batch order depends only on ``(seed, epoch)`` (the samplers of :mod:`transip.data`) and the
  position inside the epoch is saved;
- rotations (TransIP pairs, TransAug) come from a dedicated CPU ``torch.Generator`` whose state is
  saved;
- the ``DataLoader`` gets its own generator so that creating an iterator (once per epoch, and once
  more on resume) never draws from the global one.
"""

from __future__ import annotations

import random
import signal
import threading
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict:
    """Snapshot of the global generators (Python, NumPy, torch CPU, and CUDA when initialised)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@dataclass
class LoopState:
    """Where the loop is: optimiser steps taken, epoch, batches consumed in that epoch, best so far.

    ``running`` holds the training sums since the last log line by name (``loss``,
    ``loss_<term>``, ``grad_norm``, ``count``), so that a resumed run logs the same averages.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    best_metric: float = float("inf")
    best_step: int = -1
    running: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0  # training seconds before this process started (resumed runs)
    cpu_seconds: float = 0.0  # CPU seconds spent in training steps (not validation): train.budget_seconds

    def __post_init__(self) -> None:
        if isinstance(self.running, (list, tuple)):  # checkpoints written before the sums had names
            self.running = dict(zip(_POSITIONAL_RUNNING, self.running, strict=True))

    def as_dict(self) -> dict:
        return asdict(self)


#: the order of the running sums in checkpoints that stored them as a list
_POSITIONAL_RUNNING = ("loss", "loss_energy", "loss_force", "loss_equivariance", "grad_norm", "count")


class StopRequest:
    """Turns SIGINT/SIGTERM into a request the loop polls after each step (a second SIGINT aborts).

    Used as a context manager; handlers are only installed in the main thread and are restored on exit.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
