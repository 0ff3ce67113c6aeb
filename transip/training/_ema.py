"""Exponential moving average of a module's weights, used for validation and checkpoints when enabled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def ema_update(shadow: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """In place ``shadow <- decay * shadow + (1 - decay) * params`` for every pair of tensors."""
    if shadow:
        torch._foreach_lerp_(shadow, params, 1.0 - decay)


def ema_decay_at(step: int, decay: float) -> float:
    """The decay used at update ``step``: ``min(decay, (1 + step) / (10 + step))``.

    The ramp keeps the average from being dominated by the random initial weights early on.

    Example:
        >>> ema_decay_at(0, 0.999), ema_decay_at(10**6, 0.999)
        (0.1, 0.999)
    """
    return min(decay, (1.0 + step) / (10.0 + step))


class ExponentialMovingAverage:
    """A shadow copy of a module's floating-point parameters, updated after each optimiser step.

    Buffers are not averaged; :meth:`swapped` copies the averaged parameters into the module for
    the duration of a ``with`` block (validation, checkpointing) and restores the live ones after.

    Args:
        module: the module to average (its parameters are read, never replaced).
        decay: the target decay, e.g. ``0.999``.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> ema = ExponentialMovingAverage(lin, decay=0.9)
        >>> with torch.no_grad():
        ...     _ = lin.weight.add_(1.0)
        >>> ema.update(lin)
        >>> with ema.swapped(lin):
        ...     pass
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = [p.detach().clone() for p in self._params(module)]

    @staticmethod
    def _params(module: nn.Module) -> list[torch.Tensor]:
        return [p for p in module.parameters() if p.is_floating_point()]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the module's current parameters into the average."""
        params = [p.detach() for p in self._params(module)]
        ema_update(self.shadow, params, ema_decay_at(self.num_updates, self.decay))
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged parameters into ``module``."""
        params = self._params(module)
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield module
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup, strict=True):
                    p.copy_(b)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged parameters into ``module`` for good."""
        for p, s in zip(self._params(module), self.shadow, strict=True):
            p.copy_(s)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": list(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for s, v in zip(self.shadow, state["shadow"], strict=True):
                s.copy_(v)
