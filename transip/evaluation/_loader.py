"""Batches for inference: an atom-budget sampler in dataset order, each batch with its subset labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from transip.data import AtomBudgetSampler, Batch, Molecule, make_loader

GroupBy = Literal["source", "data_id", "none"]


def subset_key(mol: Molecule, group_by: GroupBy) -> str:
    """The subset a molecule is reported under: its ``source``, its ``data_id``, or ``"all"``."""
    if group_by == "source":
        return mol.source or "unknown"
    if group_by == "data_id":
        return mol.data_id or "unknown"
    return "all"


@dataclass
class LabelledBatch:
    """A packed batch with the dataset indices and subset keys of its molecules."""

    batch: Batch
    indices: list[int]
    keys: list[str]


def _collate(items: Sequence[tuple[int, Molecule]], group_by: GroupBy, dtype: torch.dtype) -> LabelledBatch:
    indices = [i for i, _ in items]
    mols = [m for _, m in items]
    return LabelledBatch(
        Batch.from_molecules(mols, dtype=dtype), indices, [subset_key(m, group_by) for m in mols]
    )


class _Indexed(torch.utils.data.Dataset):
    """Yields ``(index, molecule)`` so a batch remembers where its molecules came from."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Molecule]:
        return index, self.dataset[index]


def inference_batches(
    dataset,
    *,
    max_atoms: int = 1024,
    group_by: GroupBy = "source",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
) -> Iterator[LabelledBatch]:
    """Iterate over a dataset once, in order, in batches of at most ``max_atoms`` atoms.

    Args:
        dataset: a :class:`transip.data.MoleculeDataset` (anything with ``sizes`` and ``__getitem__``).
        max_atoms: atom budget per batch (a larger single molecule forms its own batch).
        group_by: how molecules are labelled for the per-subset breakdown.
        dtype: floating dtype of positions and forces.
        device: where the batches are moved.
        num_workers: DataLoader worker processes.
    """
    sampler = AtomBudgetSampler(dataset.sizes, max_atoms, shuffle=False)
    collate = partial(_collate, group_by=group_by, dtype=dtype)
    loader = make_loader(_Indexed(dataset), sampler, num_workers, collate=collate)
    for item in loader:
        item.batch = item.batch.to(device)
        yield item
