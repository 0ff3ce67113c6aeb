"""Casting inputs and callables to the probe's working precision.

Probes measure in float64 by default so that what they report is the model's symmetry error, not
rounding. Floating tensors are cast; an ``nn.Module`` is evaluated on a cast *copy* so the caller's
model is never modified; anything else with a ``.to(dtype=...)`` method (e.g. a batch dataclass) is
asked to cast itself. ``dtype=None`` leaves everything as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def cast_input(x: Any, dtype: torch.dtype | None) -> Any:
    """``x`` in ``dtype``: floating tensors are cast, other tensors kept, objects use ``.to(dtype=)``."""
    if dtype is None:
        return x
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    to = getattr(x, "to", None)
    if callable(to):
        return to(dtype=dtype)
    return x


def cast_callable(fn: Callable, dtype: torch.dtype | None) -> Callable:
    """A copy of ``fn`` in ``dtype`` if it is an ``nn.Module``; plain functions are returned as they are."""
    if dtype is None or not isinstance(fn, nn.Module):
        return fn
    return copy.deepcopy(fn).to(dtype)


def batch_size_of(x: Any, batch_size: int | None) -> int:
    """How many group elements to draw per sample: one per leading entry of ``x``."""
    if batch_size is not None:
        return int(batch_size)
    if isinstance(x, torch.Tensor):
        return x.shape[0] if x.dim() > 0 else 1
    return len(x)


def device_of(x: Any) -> torch.device | None:
    """The device of a tensor, or of an object exposing ``.device``; ``None`` (default device) otherwise."""
    if isinstance(x, torch.Tensor):
        return x.device
    device = getattr(x, "device", None)
    return device if isinstance(device, torch.device) else None


def working_dtype(x: Any, dtype: torch.dtype | None) -> torch.dtype:
    """The dtype group elements are drawn in: ``dtype``, else that of a floating tensor ``x``."""
    if dtype is not None:
        return dtype
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.dtype
    return torch.get_default_dtype()
