"""latentequiv: learned latent equivariance for any PyTorch encoder.

The core knows nothing about molecules: groups and their samplers, tau-networks that learn how a
group acts on an embedding, the latent-equivariance loss, probes that measure equivariance, Procrustes
diagnostics, frame averaging for exact symmetry (``latentequiv.frames``), and a test kit
(``latentequiv.testing``) for property-based equivariance tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Names are imported on first use, so ``import latentequiv`` (done by the pytest plugin in every
# suite where the package is installed) does not load torch until something needs it.
_EXPORTS = {
    "FrameAveraging": "frames",
    "Group": "groups",
    "O3": "groups",
    "SO2": "groups",
    "SO3": "groups",
    "LatentEquivariance": "losses",
    "contrastive_latent_loss": "losses",
    "latent_equivariance_loss": "losses",
    "Irreps": "representations",
    "wigner_D": "representations",
    "HyperLinearTau": "tau",
    "IdentityTau": "tau",
    "MLPTau": "tau",
    "RepresentationTau": "tau",
}

if TYPE_CHECKING:
    from .frames import FrameAveraging
    from .groups import O3, SO2, SO3, Group
    from .losses import LatentEquivariance, contrastive_latent_loss, latent_equivariance_loss
    from .representations import Irreps, wigner_D
    from .tau import HyperLinearTau, IdentityTau, MLPTau, RepresentationTau


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'latentequiv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "FrameAveraging",
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
