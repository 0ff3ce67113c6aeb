"""Casting inputs and callables to a working precision (shared by the probes and the Procrustes fits).

Probes measure in float64 by default so that what they report is the model's symmetry error, not
rounding. Floating tensors are cast; an ``nn.Module`` is evaluated on a cast *copy* so the caller's
model is never modified; anything else with a ``.to(dtype=...)`` method (e.g. a batch dataclass) is
asked to cast itself. ``dtype=None`` leaves everything as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import types
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
    if isinstance(x, tuple) and not hasattr(x, "_fields"):  # several inputs (not a named tuple)
        return tuple(cast_input(item, dtype) for item in x)
    to = getattr(x, "to", None)
    if callable(to):
        return to(dtype=dtype)
    return x


def cast_callable(fn: Callable, dtype: torch.dtype | None) -> Callable:
    """A copy of ``fn`` in ``dtype`` if it is an ``nn.Module`` or a method bound to one (``model.energy``
    runs on a cast copy of ``model``); plain functions are returned as they are."""
    if dtype is None:
        return fn
    if isinstance(fn, nn.Module):
        return copy.deepcopy(fn).to(dtype)
    if inspect.ismethod(fn) and isinstance(fn.__self__, nn.Module):
        return types.MethodType(fn.__func__, copy.deepcopy(fn.__self__).to(dtype))
    return fn


def call_in_precision(fn: Callable, args: tuple, dtype: torch.dtype | None) -> Any:
    """``fn(*args)``, turning torch's dtype-mismatch error into one that says what to do."""
    try:
        return fn(*args)
    except RuntimeError as error:
        text = str(error)
        if dtype is None or not any(k in text for k in ("dtype", "scalar type", "Double", "Float")):
            raise
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        raise RuntimeError(
            f"{name} failed on inputs cast to {dtype} ({text}). A plain function is called as it is, "
            f"so the modules it uses keep their own precision: pass the module or a method bound to it "
            f"(cast on a copy), cast the modules yourself, or pass dtype=None to test in their precision"
        ) from error


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
