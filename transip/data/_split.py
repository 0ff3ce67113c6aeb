"""Train/validation/test splits, by frame or by source (all frames of a molecule on one side)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._dataset import MoleculeDataset, SubsetDataset


def _targets(parts: Sequence[float] | Sequence[int], n: int) -> list[int]:
    """Frame counts per split from fractions (summing to at most 1) or sizes (summing to at most n)."""
    if not parts:
        raise ValueError("need at least one fraction or size")
    if all(isinstance(p, int | np.integer) for p in parts):
        sizes = [int(p) for p in parts]
        if min(sizes) < 0 or sum(sizes) > n:
            raise ValueError(f"sizes {sizes} do not fit a dataset of {n}")
        return sizes
    fractions = np.asarray(parts, dtype=np.float64)
    if (fractions < 0).any() or fractions.sum() > 1 + 1e-9:
        raise ValueError(f"fractions {fractions.tolist()} must be >= 0 and sum to at most 1")
    # Cumulative rounding: sizes add up to round(sum * n) exactly.
    edges = np.rint(np.cumsum(fractions) * n).astype(int)
    return np.diff(np.concatenate([[0], edges])).tolist()


def split_dataset(
    dataset: MoleculeDataset,
    parts: Sequence[float] | Sequence[int],
    *,
    seed: int = 0,
    by: Literal["frame", "source"] = "frame",
) -> list[SubsetDataset]:
    """Split a dataset into disjoint random subsets.

    Args:
        dataset: the data.
        parts: fractions (floats summing to at most 1, e.g. ``[0.8, 0.1, 0.1]``) or sizes (ints),
            counted in frames. Frames not covered by the parts are left out.
        seed: the split is a function of the seed only.
        by: ``"frame"`` splits frames independently (measures interpolation); ``"source"`` keeps all
            frames of one ``Molecule.source`` together (measures generalisation to new molecules),
            filling each split with whole groups in random order until its frame count is reached,
            so sizes are approximate.

    Returns:
        One :class:`SubsetDataset` per part, indices sorted within each.

    Example:
        >>> import numpy as np
        >>> from transip.data import InMemoryDataset, Molecule
        >>> ds = InMemoryDataset([Molecule(np.zeros((1, 3)), [1], source=s) for s in "aabbbc"])
        >>> [len(p) for p in split_dataset(ds, [0.5, 0.5], seed=0)]
        [3, 3]
        >>> parts = split_dataset(ds, [0.5, 0.5], seed=0, by="source")
        >>> set(parts[0].sources()).isdisjoint(parts[1].sources())
        True
    """
    n = len(dataset)
    targets = _targets(parts, n)
    rng = np.random.default_rng(seed)
    if by == "frame":
        order = rng.permutation(n)
        edges = np.cumsum([0, *targets])
        return [
            SubsetDataset(dataset, np.sort(order[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    if by != "source":
        raise ValueError(f"by must be 'frame' or 'source', got {by!r}")
    sources = np.asarray(dataset.sources(), dtype=object)
    names = sorted(set(sources.tolist()))
    groups = [np.flatnonzero(sources == name) for name in names]
    chosen: list[list[np.ndarray]] = [[] for _ in targets]
    filled = [0] * len(targets)
    part = 0
    for g in rng.permutation(len(groups)):
        while part < len(targets) and filled[part] >= targets[part]:
            part += 1
        if part == len(targets):
            break
        chosen[part].append(groups[g])
        filled[part] += len(groups[g])
    return [
        SubsetDataset(dataset, np.sort(np.concatenate(c)) if c else np.zeros(0, dtype=np.int64))
        for c in chosen
    ]
