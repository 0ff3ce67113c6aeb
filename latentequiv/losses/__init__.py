"""Latent-equivariance losses: the squared error of TransIP, its InfoNCE variant, and a wrapper module."""

from ._contrastive import contrastive_latent_loss
from ._latent import latent_equivariance_loss
from ._wrapper import LatentEquivariance, LatentEquivarianceOutput

__all__ = [
    "LatentEquivariance",
    "LatentEquivarianceOutput",
    "contrastive_latent_loss",
    "latent_equivariance_loss",
]
