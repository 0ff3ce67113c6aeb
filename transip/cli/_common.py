"""Options shared by several subcommands and how they map to library arguments."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the package load when a command runs, not for --help
    import torch
    from torch import nn

    from transip.model import TransIP
    from transip.training import TrainingConfig

#: the --dtype choices, named (torch is imported only when a command runs)
DTYPES = ("float32", "float64")


class UsageError(Exception):
    """A bad combination of command-line values (reported as ``transip <command>: error: ...``)."""


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--energy-key``, ``--forces-key``, ``--index`` for reading structure files."""
    p.add_argument("--energy-key", default=None, help="info key of the energy (default: the calculator's)")
    p.add_argument("--forces-key", default=None, help="array key of the forces (default: the calculator's)")
    p.add_argument("--index", default=None, help="frames to read, ASE style, e.g. ':100' or '::10'")


def add_device_options(p: argparse.ArgumentParser, *, default_dtype: str = "float32") -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", choices=DTYPES, default=default_dtype, help=f"default: {default_dtype}")
    p.add_argument("--max-atoms", type=int, default=1024, help="atoms per inference batch (default: 1024)")


def add_symmetry_option(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """``--symmetry`` (and ``--seed`` of its rotations): :class:`transip.symmetrize.Symmetry`."""
    p.add_argument(
        "--symmetry",
        type=_symmetry,
        default="none",
        metavar="MODE",
        help="none (default), random (a fresh rotation per call), average:K (mean over K rotations) "
        "or frames (exact, 4 principal-axes frames); with 2+ orientations the rotation spread is "
        "reported too",
    )
    if seed:
        p.add_argument("--seed", type=int, default=0, help="seed of the random rotations (default: 0)")


def _symmetry(spec: str) -> str:
    """Checked here without importing torch (``transip --help`` stays fast)."""
    import re

    if spec in ("none", "random", "frames") or (re.fullmatch(r"average:\d+", spec) and int(spec[8:]) >= 1):
        return spec
    raise argparse.ArgumentTypeError(f"{spec!r}: choose none, random, average:K (K >= 1) or frames")


def read(spec: str, args: argparse.Namespace, trained: Trained | None = None):
    """Read a dataset given on the command line (a path or ``bundled:<name>``).

    With ``trained``, every molecule is checked against its model as it is read
    (:class:`transip.applicability.InputCheck`): errors name the file and row, warnings are given once.
    """
    from transip.applicability import CheckedDataset, InputCheck
    from transip.data import read_dataset
    from transip.training import resolve_path

    try:
        dataset = read_dataset(
            resolve_path(spec, key="data"),
            energy_key=args.energy_key,
            forces_key=args.forces_key,
            index=args.index,
        )
    except IndexError as e:
        raise UsageError(f"{spec}: --index {args.index}: {e}") from None
    if len(dataset) == 0:
        raise UsageError(f"{spec}: no structure selected (--index {args.index})")
    _check_label_keys(dataset[0], spec, args)
    if trained is None:
        return dataset
    return CheckedDataset(dataset, InputCheck(trained.model, who=f"transip {args.command}: warning"), spec)


def _check_label_keys(first, spec: str, args: argparse.Namespace) -> None:
    """A key given with --energy-key/--forces-key must find labels (the first structure is asked)."""
    for option, key, value in (
        ("--energy-key", args.energy_key, first.energy),
        ("--forces-key", args.forces_key, first.forces),
    ):
        if key is not None and value is None:
            keys = ", ".join(sorted(str(k) for k in first.info)) or "none"
            raise UsageError(
                f"{spec}[0] has no {key!r} ({option} {key}); its other per-structure keys: {keys}"
            )


@dataclass(frozen=True)
class Trained:
    """``--checkpoint`` as the commands use it: the model and its tau on ``--device`` in ``--dtype``.

    Attributes:
        config: the run configuration (``None`` for a checkpoint not written by the trainer).
    """

    model: TransIP
    tau: nn.Module | None
    config: TrainingConfig | None
    device: torch.device
    dtype: torch.dtype


def open_checkpoint(args: argparse.Namespace) -> Trained:
    """The preamble of every command that reads a checkpoint (``--checkpoint``, ``--device``,
    ``--dtype``); the data comes from :func:`read`."""
    check_file(args.checkpoint, "checkpoint")
    import torch

    from transip.training import load_trained

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    model, tau, config = load_trained(args.checkpoint, device=device)
    return Trained(model.to(dtype), None if tau is None else tau.to(dtype), config, device, dtype)


def add_overwrite_option(p: argparse.ArgumentParser) -> None:
    """``--overwrite``: the one flag, on every command that writes a file, that lets it replace one."""
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a file ``torch.save`` wrote (a zip archive holding ``data.pkl``)."""
    import zipfile

    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_output(path: str | Path, args: argparse.Namespace, what: str = "output") -> Path:
    """Refuse to write ``path`` over an existing file without ``--overwrite``, and over a checkpoint
    ever (a checkpoint is replaced only by the trainer, never by another command's output)."""
    p = Path(path)
    if is_checkpoint(p):
        raise UsageError(f"{p} is a checkpoint: refusing to write the {what} over it (choose another path)")
    if p.is_dir():
        raise UsageError(f"{p} is a directory: the {what} must be a file")
    if p.exists() and not getattr(args, "overwrite", False):
        raise UsageError(f"{p} exists (pass --overwrite to replace it)")
    return p


def check_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def write_json(path: str | Path, payload) -> None:
    """Write JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
