"""Saving and loading TransIP models: one file, written atomically, readable without the trainer.

A checkpoint is a ``torch.save`` dict::

    format            "transip-checkpoint"
    format_version    int, bumped on incompatible changes (this code reads <= FORMAT_VERSION)
    config            TransIPConfig.to_dict()
    state_dict        weights and buffers (CPU tensors), element references and energy scale included
    dtype             the parameters' dtype, e.g. "float32"
    element_references (119,) float64 eV, a readable copy of the buffer
    energy_scale      float, eV
    versions          {"transip": ..., "torch": ...} that wrote the file
    extra             whatever the caller passed (optimizer / scheduler / trainer state, metrics)

The file is written to a temporary sibling, flushed to disk, then renamed over the target with
``os.replace``: a crash mid-write leaves the previous checkpoint intact and no partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import __version__
from .model import TransIP, TransIPConfig

__all__ = ["FORMAT_VERSION", "CheckpointError", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT_VERSION = 1
_FORMAT = "transip-checkpoint"


class CheckpointError(ValueError):
    """A file that is not a readable TransIP checkpoint (empty, truncated, corrupt, another format)."""


def save_checkpoint(path: str | os.PathLike, model: TransIP, **extra) -> Path:
    """Write ``model`` (and any ``extra`` state) to ``path`` atomically.

    Args:
        path: target file; parent directories are created.
        model: the model to store.
        **extra: anything ``torch.save`` can pickle and :func:`load_checkpoint` may read back
            (with ``weights_only=True``: tensors, numbers, strings, lists, tuples and dicts of them,
            which covers ``optimizer.state_dict()``).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "element_references": model.element_energies.detach().cpu().clone(),
        "energy_scale": float(model.energy_scale),
        "versions": {"transip": __version__, "torch": str(torch.__version__)},
        "extra": extra,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu", *, weights_only: bool = True) -> dict:
    """Read a checkpoint dict (see the module docstring for its keys).

    Args:
        path: file written by :func:`save_checkpoint`.
        map_location: passed to ``torch.load``.
        weights_only: refuse arbitrary pickled objects (safe default; set ``False`` only for
            files you trust whose ``extra`` holds custom classes).

    Raises:
        CheckpointError: an empty, truncated or corrupt file, not a TransIP checkpoint, or written by
            a newer format version.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:  # torch raises EOFError, RuntimeError, UnpicklingError, KeyError... here
        detail = f"{type(e).__name__}: {str(e).split('. ')[0]}" if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path} ({size} bytes) cannot be read as a checkpoint, truncated or corrupt? ({detail})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a TransIP checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this transip reads up to {FORMAT_VERSION}"
        )
    return payload


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> TransIP:
    """Rebuild the stored model in eval mode on ``map_location`` (a device) in its saved dtype.

    Example:
        >>> import tempfile, os
        >>> model = TransIP(TransIPConfig.preset("tiny"))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_checkpoint(os.path.join(d, "model.pt"), model, step=3)
        ...     load_checkpoint(path)["extra"]["step"], load_model(path).config == model.config
        (3, True)
    """
    payload = load_checkpoint(path, map_location="cpu")
    model = TransIP(TransIPConfig.from_dict(payload["config"]))
    dtype = getattr(torch, payload.get("dtype", "float32"))
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{path}: unknown dtype {payload.get('dtype')!r}")
    model.to(dtype)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()
