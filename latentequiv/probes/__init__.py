"""Probes: measure how equivariant a function, an encoder or each layer of a network is.

Probes return frozen dataclass reports and never print or raise on large errors; they work in
float64 by default and record the precision used. Assertions built on them live in
``latentequiv.testing``.
"""

from ._actions import (
    OutputAction,
    as_output_action,
    representation_action,
    scalar_action,
    vector_action,
)
from ._equivariance import equivariance_error, invariance_error, latent_equivariance_error
from ._infinitesimal import InfinitesimalReport, infinitesimal_error, lie_derivative
from ._layerwise import LayerEquivariance, LayerwiseReport, layerwise_equivariance
from ._report import EquivarianceReport
from ._translation import translation_error

__all__ = [
    "EquivarianceReport",
    "InfinitesimalReport",
    "LayerEquivariance",
    "LayerwiseReport",
    "OutputAction",
    "as_output_action",
    "equivariance_error",
    "infinitesimal_error",
    "invariance_error",
    "latent_equivariance_error",
    "layerwise_equivariance",
    "lie_derivative",
    "representation_action",
    "scalar_action",
    "translation_error",
    "vector_action",
]
