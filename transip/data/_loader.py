"""``make_loader``: a ``DataLoader`` that turns batches of indices into packed :class:`Batch` objects.

The one place a ``DataLoader`` is built: training, validation and evaluation all read through it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from ._batch import Batch


def make_loader(
    dataset: Dataset,
    sampler,
    num_workers: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    generator: torch.Generator | None = None,
    collate: Callable | None = None,
) -> DataLoader:
    """Build a ``DataLoader`` over ``dataset`` driven by a batch sampler.

    Args:
        dataset: a dataset of :class:`Molecule` (any :class:`MoleculeDataset`).
        sampler: a batch sampler yielding lists of indices (:class:`AtomBudgetSampler`,
            :class:`FixedCountSampler`). Call ``sampler.set_epoch(e)`` before each epoch.
        num_workers: worker processes (0 reads in the main process). Lazy datasets open their
            files once per worker.
        dtype: floating dtype of positions and forces in the batches (energies stay float64).
        pin_memory: pin batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (needs ``num_workers > 0``).
        generator: the generator each new iterator draws its worker seed from; ``None`` draws
            from torch's global generator (the trainer passes its own, so that starting an epoch
            leaves dropout's stream alone).
        collate: how a list of items becomes a batch (default :meth:`Batch.from_molecules` in
            ``dtype``).

    Returns:
        A ``DataLoader`` yielding :class:`Batch`.

    Example:
        >>> import numpy as np
        >>> from transip.data import FixedCountSampler, InMemoryDataset, Molecule
        >>> ds = InMemoryDataset([Molecule(np.eye(3), [1, 6, 8]) for _ in range(3)])
        >>> [b.num_molecules for b in make_loader(ds, FixedCountSampler(3, 2, shuffle=False))]
        [2, 1]
    """
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate or partial(Batch.from_molecules, dtype=dtype),
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        generator=generator,
    )
