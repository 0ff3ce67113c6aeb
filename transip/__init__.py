"""TransIP: a Transformer interatomic potential with learned latent equivariance.

Atoms are tokens; energies come from a pooled readout and forces are ``-dE/dx``. Rotational
symmetry is learned through :mod:`latentequiv`'s latent objective rather than built in.
"""

__version__ = "0.1.0"  # before the imports below: checkpoint.py records it

from .calculator import TransIPCalculator
from .checkpoint import load_model, save_checkpoint
from .data import Batch, Molecule, bundled_dataset, read_dataset
from .model import TransIP, TransIPConfig

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
