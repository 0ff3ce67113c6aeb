"""Structures in, packed batches out: molecules, readers, samplers and element references."""

from ._batch import Batch
from ._molecule import Molecule

__all__ = ["Batch", "Molecule"]
