"""A trained model as one self-contained file: energy and forces of a molecule, no transip needed.

:func:`export_model` traces the inference pass of one molecule, forces included (``F = -dE/dx``
by autograd, a first derivative only), into a graph of plain ATen operations
(``torch.fx.experimental.proxy_tensor.make_fx``: the backward pass is recorded as ordinary
operations) and hands that graph to :func:`torch.export.export`. The result is a ``.pt2`` file
(:func:`torch.export.save`) that any Python with torch loads::

    import torch
    program = torch.export.load("model.pt2").module()
    energy, forces = program(positions, numbers, charge, spin)

Inputs: ``positions`` ``(N, 3)`` in Å (the dtype the file was exported in), ``numbers`` ``(N,)``
int64, ``charge`` and ``spin`` (multiplicity) 0-d int64. Outputs: the total energy ``()`` float64 in
eV (element references included) and the forces ``(N, 3)`` in eV/Å.

**One atom count per file.** The model's RBF features are computed in chunks whose number depends
on the molecule's size (a Python loop), and torch.export cannot keep that size symbolic, so a file
is exported for ``N`` atoms (any elements, charge and spin) and rejects other sizes. Nor does it
check its inputs: atomic numbers, charge and spin outside the model's ranges are not reported, as
:class:`~transip.model.TransIP` would. Dropout is off (eval mode).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .data import Batch
from .model import TransIP
from .model._attention import AttentionLayout, Bucket

__all__ = ["EXPORT_FORMAT", "export_model", "load_exported", "save_exported"]

#: the name of the metadata entry of an exported file, and its ``format`` value
EXPORT_FORMAT = "transip-export"


class _OneMolecule(TransIP):
    """TransIP laid out for a single molecule without reading the host: one bucket of all atoms.

    The same weights and arithmetic as :class:`TransIP`; only :meth:`plan` differs, built from
    tensor operations so that tracing records it (the base class uses host integers and numpy).
    """

    def plan(self, batch: Batch) -> AttentionLayout:
        n = batch.positions.shape[0]
        index = torch.arange(n, device=batch.positions.device).unsqueeze(0)  # (1, N)
        mask = torch.ones_like(index, dtype=torch.bool)
        return AttentionLayout((Bucket(index, mask, False, 0),), index[0], n, None, (0,))


class _EnergyForces(nn.Module):
    """``(positions, numbers, charge, spin) -> (energy, forces)`` of one molecule."""

    def __init__(self, model: TransIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, positions, numbers, charge, spin):
        n = positions.shape[0]
        batch = Batch(
            positions=positions,
            numbers=numbers,
            ptr=torch.tensor([0, n], device=positions.device),
            batch=torch.zeros_like(numbers),
            charge=charge.reshape(1),
            spin=spin.reshape(1),
        )
        out = self.model(batch)  # eval: forces by autograd, no second derivative
        return out.energy[0], out.forces


def _single_molecule_model(model: TransIP) -> _OneMolecule:
    one = _OneMolecule(model.config)
    one.load_state_dict(model.state_dict())
    param = next(model.parameters())
    return one.to(device=param.device, dtype=param.dtype).eval()


def export_model(model: TransIP, num_atoms: int) -> torch.export.ExportedProgram:
    """The energy-and-forces pass of ``model`` for molecules of ``num_atoms`` atoms, exported.

    Args:
        model: a trained model (its dtype and device are the program's).
        num_atoms: ``N``, the size of the molecules the program takes.

    Returns:
        A :class:`torch.export.ExportedProgram`; ``program.module()(positions, numbers, charge,
        spin)`` returns ``(energy, forces)``.
    """
    if num_atoms < 1 or num_atoms > model.config.max_atoms:
        raise ValueError(f"num_atoms must be in 1..{model.config.max_atoms}, got {num_atoms}")
    from torch.fx.experimental.proxy_tensor import make_fx

    param = next(model.parameters())
    wrapper = _EnergyForces(_single_molecule_model(model))
    # a placeholder molecule: a row of hydrogens 1 Å apart (the values do not enter the graph)
    positions = torch.zeros(num_atoms, 3, dtype=param.dtype, device=param.device)
    positions[:, 0] = torch.arange(num_atoms, dtype=param.dtype)
    numbers = torch.ones(num_atoms, dtype=torch.long, device=param.device)
    charge = torch.zeros((), dtype=torch.long, device=param.device)
    spin = torch.ones((), dtype=torch.long, device=param.device)
    args = (positions, numbers, charge, spin)
    graph = make_fx(wrapper, tracing_mode="real")(*args)  # forward and backward as ATen operations
    return torch.export.export(graph, args)


def save_exported(program: torch.export.ExportedProgram, path: str | os.PathLike, **metadata) -> Path:
    """Write ``program`` with a JSON metadata entry (format, atoms, dtype, ``metadata``) to ``path``."""
    path = Path(path)
    positions = program.example_inputs[0][0]
    meta = {
        "format": EXPORT_FORMAT,
        "num_atoms": int(positions.shape[0]),
        "dtype": str(positions.dtype).removeprefix("torch."),
        "inputs": "positions (N, 3) Å, numbers (N,) int64, charge () int64, spin () int64",
        "outputs": "energy () float64 eV, forces (N, 3) eV/Å",
        **metadata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path, extra_files={"transip.json": json.dumps(meta)})
    return path


def load_exported(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """``(module, metadata)`` of a file written by :func:`save_exported` (torch only is needed)."""
    extra = {"transip.json": ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra["transip.json"] or "{}")
