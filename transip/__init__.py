"""TransIP: a Transformer interatomic potential with learned latent equivariance.

Atoms are tokens; energies come from a pooled readout and forces are ``-dE/dx``. Rotational
symmetry is learned through :mod:`latentequiv`'s latent objective rather than built in.
"""

__version__ = "0.1.0"  # before the imports below: checkpoint.py records it

import importlib
from typing import TYPE_CHECKING

#: where each public name lives; imported on first use (PEP 562), so that ``import transip.cli``
#: and ``transip --help`` do not load torch
_LAZY = {
    "TransIPCalculator": ".calculator",
    "load_model": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "Batch": ".data",
    "Molecule": ".data",
    "bundled_dataset": ".data",
    "read_dataset": ".data",
    "TransIP": ".model",
    "TransIPConfig": ".model",
}

if TYPE_CHECKING:
    from .calculator import TransIPCalculator
    from .checkpoint import load_model, save_checkpoint
    from .data import Batch, Molecule, bundled_dataset, read_dataset
    from .model import TransIP, TransIPConfig


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Batch",
    "Molecule",
    "TransIP",
    "TransIPCalculator",
    "TransIPConfig",
    "__version__",
    "bundled_dataset",
    "load_model",
    "read_dataset",
    "save_checkpoint",
]
