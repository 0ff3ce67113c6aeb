"""TransIP: a Transformer interatomic potential with learned latent equivariance.

Atoms are tokens; energies come from a pooled readout and forces are ``-dE/dx``. Rotational
symmetry is learned through :mod:`latentequiv`'s latent objective rather than built in.
"""

from .data import Batch, Molecule

__version__ = "0.1.0"

__all__ = ["Batch", "Molecule", "__version__"]
