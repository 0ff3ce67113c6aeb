"""latentequiv: learned latent equivariance for any PyTorch encoder.

The core knows nothing about molecules: groups and their samplers, tau-networks that learn how a
group acts on an embedding, the latent-equivariance loss, probes that measure equivariance, Procrustes
diagnostics, and a test kit (``latentequiv.testing``) for property-based equivariance tests.
"""

from .groups import O3, SO2, SO3, Group
from .representations import Irreps, wigner_D

__version__ = "0.1.0"

__all__ = ["Group", "Irreps", "O3", "SO2", "SO3", "__version__", "wigner_D"]
