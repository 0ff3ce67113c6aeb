"""Casting inputs and callables to a working precision (shared by the probes and the Procrustes fits).

Probes measure in float64 by default so that what they report is the model's symmetry error, not
rounding. Floating tensors are cast; an ``nn.Module`` is evaluated on a cast *copy* so the caller's
model is never modified; anything else with a ``.to(dtype=...)`` method (e.g. a batch dataclass) is
asked to cast itself. ``dtype=None`` leaves everything as it is.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
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


def floating_dtypes(obj: Any, _depth: int = 0) -> set[torch.dtype]:
    """Floating dtypes of the tensors in ``obj``: a tensor, a module's parameters and buffers, or the
    values of a mapping, sequence or dataclass (two levels deep)."""
    if isinstance(obj, torch.Tensor):
        return {obj.dtype} if obj.is_floating_point() else set()
    if isinstance(obj, nn.Module):
        return {t.dtype for t in (*obj.parameters(), *obj.buffers()) if t.is_floating_point()}
    if _depth >= 2:
        return set()
    if isinstance(obj, Mapping):
        items = obj.values()
    elif isinstance(obj, list | tuple):
        items = obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    else:
        return set()
    return set().union(*(floating_dtypes(item, _depth + 1) for item in items))


def lowest_precision(dtypes: Iterable[torch.dtype | None]) -> torch.dtype | None:
    """The least precise of ``dtypes`` (largest machine epsilon); ``None`` if there are none."""
    found = [d for d in dtypes if d is not None]
    return max(found, key=lambda d: torch.finfo(d).eps) if found else None


def working_dtype(x: Any, dtype: torch.dtype | None) -> torch.dtype:
    """The dtype group elements are drawn in: ``dtype``, else the least precise floating dtype in ``x``."""
    if dtype is not None:
        return dtype
    return lowest_precision(floating_dtypes(x)) or torch.get_default_dtype()


def reported_dtype(dtype: torch.dtype | None, *objs: Any) -> torch.dtype:
    """The precision a probe reports: the least precise of the requested ``dtype`` and the floating
    tensors of ``objs`` (inputs, modules, outputs), so a float32 part is never reported as float64."""
    found = set().union(*(floating_dtypes(obj) for obj in objs))
    return lowest_precision([dtype, *found]) or torch.get_default_dtype()
