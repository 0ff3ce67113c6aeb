"""latentequiv: learned latent equivariance for any PyTorch encoder.

The core knows nothing about molecules: groups and their samplers, tau-networks that learn how a
group acts on an embedding, the latent-equivariance loss, probes that measure equivariance, Procrustes
diagnostics, and a test kit (``latentequiv.testing``) for property-based equivariance tests.
"""

from .groups import O3, SO2, SO3, Group
from .losses import LatentEquivariance, contrastive_latent_loss, latent_equivariance_loss
from .representations import Irreps, wigner_D
from .tau import HyperLinearTau, IdentityTau, MLPTau, RepresentationTau

__version__ = "0.1.0"

__all__ = [
    "Group",
    "HyperLinearTau",
    "IdentityTau",
    "Irreps",
    "LatentEquivariance",
    "MLPTau",
    "O3",
    "RepresentationTau",
    "SO2",
    "SO3",
    "__version__",
    "contrastive_latent_loss",
    "latent_equivariance_loss",
    "wigner_D",
]
