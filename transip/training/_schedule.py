"""Learning-rate schedule: linear warm-up, then cosine decay to a floor (TransIP paper, Sec. training)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def warmup_cosine(
    step: int, total_steps: int, *, warmup_fraction: float = 0.01, final_fraction: float = 0.01
) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warm-up over the first ``W = max(1, round(warmup_fraction * total_steps))`` steps,
    ``(step + 1) / W``, reaching 1 at step ``W - 1``; then a half cosine from 1 down to
    ``final_fraction`` at ``step = total_steps``:

    ``m(s) = f + (1 - f) * (1 + cos(pi * (s - W + 1) / (total - W + 1))) / 2``.

    Steps past ``total_steps`` stay at the floor ``f``.

    Args:
        step: optimiser steps taken so far.
        total_steps: the run's step budget.
        warmup_fraction: fraction of the budget spent warming up.
        final_fraction: the floor, as a fraction of the peak learning rate.

    Example:
        >>> [round(warmup_cosine(s, 200), 3) for s in (0, 1, 2, 101, 200)]
        [0.5, 1.0, 1.0, 0.501, 0.01]
    """
    warmup = max(1, round(warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total_steps - warmup + 1)
    progress = min(1.0, (step - warmup + 1) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    *,
    warmup_fraction: float = 0.01,
    final_fraction: float = 0.01,
    progress: Callable[[], float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`warmup_cosine`.

    Args:
        progress: for a run with a time budget, a callable giving the fraction of the budget used;
            the schedule then stands at ``max(step, progress() * total_steps)``, so warm-up and decay
            follow whichever of the two budgets runs out first.
    """

    def multiplier(step: int) -> float:
        if progress is not None:
            step = max(step, int(progress() * total_steps))
        return warmup_cosine(
            step, total_steps, warmup_fraction=warmup_fraction, final_fraction=final_fraction
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
